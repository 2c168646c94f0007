"""Replacing an output directory swaps whole trees; stale staging folders are cleaned.

Issue 14, item 9 of "Why": into an existing ``--out`` files were renamed one by one, so an
interruption left new files beside old ones, and staging folders of killed runs stayed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cytosafe import _atomic
from cytosafe._atomic import atomic_directory, clean_stale


def _old_tree(out):
    out.mkdir()
    for name in ("a.csv", "b.csv", "c.csv"):
        (out / name).write_text(f"old {name}\n")
    (out / "notes.txt").write_text("mine\n")


def _contents(out):
    return {p.name: p.read_text() for p in sorted(out.iterdir())}


OLD = {
    "a.csv": "old a.csv\n",
    "b.csv": "old b.csv\n",
    "c.csv": "old c.csv\n",
    "notes.txt": "mine\n",
}
NEW = {"a.csv": "new a\n", "b.csv": "new b\n", "c.csv": "new c\n", "notes.txt": "mine\n"}


def _write_new(staging):
    for name in ("a", "b", "c"):
        (staging / f"{name}.csv").write_text(f"new {name}\n")


def _dead_pid() -> int:
    """The id of a process that has just ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_replaced_directory_is_entirely_new_and_nothing_is_left_beside_it(tmp_path):
    out = tmp_path / "results"
    _old_tree(out)
    with atomic_directory(out, ["a.csv", "b.csv", "c.csv"]) as staging:
        _write_new(staging)
        assert _contents(out) == OLD  # the old tree stays whole while the new one is written
    assert _contents(out) == NEW
    assert [p.name for p in tmp_path.iterdir()] == ["results"]  # no staging, no aside


def test_a_failure_inside_the_block_leaves_the_old_tree_entirely(tmp_path):
    out = tmp_path / "results"
    _old_tree(out)
    with pytest.raises(RuntimeError), atomic_directory(out, ["a.csv", "b.csv", "c.csv"]) as st:
        (st / "a.csv").write_text("new a\n")
        raise RuntimeError("interrupted after the first file")
    assert _contents(out) == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["results"]


@pytest.mark.parametrize("failing_call", [1, 2])
def test_a_rename_failing_at_the_swap_leaves_the_old_tree_entirely(
    tmp_path, monkeypatch, failing_call
):
    """The swap is two renames (old aside, staging in); either may fail."""
    out = tmp_path / "results"
    _old_tree(out)
    real_rename = os.rename
    calls = []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == failing_call:
            raise OSError("disk pulled at the swap")
        return real_rename(src, dst)

    monkeypatch.setattr(_atomic.os, "rename", rename)
    monkeypatch.setattr(_atomic.os, "replace", rename)
    with pytest.raises(OSError, match="disk pulled"):
        with atomic_directory(out, ["a.csv", "b.csv", "c.csv"]) as staging:
            _write_new(staging)
    assert len(calls) >= failing_call
    assert _contents(out) == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["results"]


def test_out_is_never_a_mix_at_any_rename(tmp_path, monkeypatch):
    """Observed at every rename the swap makes, ``out`` is absent, all old or all new."""
    out = tmp_path / "results"
    _old_tree(out)
    seen = []
    real_rename = os.rename

    def rename(src, dst):
        seen.append(_contents(out) if out.exists() else None)
        real_rename(src, dst)
        seen.append(_contents(out) if out.exists() else None)

    monkeypatch.setattr(_atomic.os, "rename", rename)
    monkeypatch.setattr(_atomic.os, "replace", rename)
    with atomic_directory(out, ["a.csv", "b.csv", "c.csv"]) as staging:
        _write_new(staging)
    assert seen and all(state in (None, OLD, NEW) for state in seen)
    assert _contents(out) == NEW


def test_a_stale_staging_folder_of_a_dead_process_is_removed_and_a_live_ones_kept(tmp_path):
    out = tmp_path / "results"
    dead = tmp_path / f".results.partial-{_dead_pid()}-0"
    live = tmp_path / f".results.partial-{os.getppid()}-0"  # our parent is alive
    for folder in (dead, live):
        folder.mkdir()
        (folder / "a.csv").write_text("half\n")
    with atomic_directory(out, ["a.csv"]) as staging:
        (staging / "a.csv").write_text("new\n")
    assert not dead.exists()
    assert (live / "a.csv").read_text() == "half\n"
    assert (out / "a.csv").read_text() == "new\n"


def test_only_our_own_naming_pattern_is_ever_cleaned(tmp_path):
    out = tmp_path / "results"
    pid = _dead_pid()
    keep = [
        tmp_path / f".other.partial-{pid}-0",  # another output's folder
        tmp_path / f"results.partial-{pid}-0",  # no leading dot
        tmp_path / f".results.partial-{pid}",  # no counter
        tmp_path / f".results.partial-x{pid}-0",
        tmp_path / ".results.backup",
    ]
    for folder in keep:
        folder.mkdir()
    stale_file = tmp_path / f".results.partial-{pid}-1"
    stale_file.write_text("a file, not our folder\n")
    aside = tmp_path / f".results.old-{pid}-0"
    aside.mkdir()
    out.mkdir()
    removed = clean_stale(out)
    assert removed == [aside]
    assert all(folder.exists() for folder in keep)
    assert stale_file.exists()


def test_a_swap_killed_between_its_renames_gets_the_old_tree_back(tmp_path):
    """Killed after ``out`` went aside: the aside tree is the only whole one left."""
    out = tmp_path / "results"
    pid = _dead_pid()
    aside = tmp_path / f".results.old-{pid}-0"
    _old_tree(aside)
    (tmp_path / f".results.partial-{pid}-0").mkdir()
    clean_stale(out)
    assert _contents(out) == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["results"]


def test_a_symlinked_out_keeps_its_link_and_gets_the_new_tree(tmp_path):
    real = tmp_path / "real"
    _old_tree(real)
    link = tmp_path / "results"
    link.symlink_to(real)
    with atomic_directory(link, ["a.csv", "b.csv", "c.csv"]) as staging:
        _write_new(staging)
    assert link.is_symlink()
    assert _contents(link) == NEW
