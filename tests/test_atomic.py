"""Whole-or-nothing output directories, shared by every command that writes one."""

from __future__ import annotations

import os

import pytest

from cytosafe._atomic import atomic_directory


def test_a_new_directory_appears_complete_with_ordinary_permissions(tmp_path):
    out = tmp_path / "results"
    mask = os.umask(0o022)
    try:
        with atomic_directory(out, ["a.csv", "b.csv"]) as staging:
            (staging / "a.csv").write_text("a\n")
            (staging / "b.csv").write_text("b\n")
            assert not out.exists()  # nothing visible before the block ends
    finally:
        os.umask(mask)
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "b.csv"]
    assert out.stat().st_mode & 0o777 == 0o755  # not mkdtemp's 0o700
    assert [p.name for p in tmp_path.iterdir()] == ["results"]  # no staging left


def test_a_failure_leaves_an_existing_directory_as_it_was(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "a.csv").write_text("old\n")
    (out / "notes.txt").write_text("mine\n")
    with pytest.raises(RuntimeError), atomic_directory(out, ["a.csv"]) as staging:
        (staging / "a.csv").write_text("new\n")
        raise RuntimeError("the report failed")
    assert (out / "a.csv").read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results"]
    with atomic_directory(out, ["a.csv"]) as staging:
        (staging / "a.csv").write_text("new\n")
    assert (out / "a.csv").read_text() == "new\n"
    assert (out / "notes.txt").read_text() == "mine\n"  # other files are kept
