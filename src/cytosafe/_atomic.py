"""Whole-or-nothing file writes, shared by every package that writes files."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Write ``path`` through a temporary file in the same folder, then rename it.

    ``write`` receives the temporary path and writes the whole file. A reader never sees
    a half-written file, and a failure leaves any earlier file as it was. The file gets
    the permissions an ordinary ``open`` would give it (``0o666`` less the umask), not
    the ``0o600`` of :func:`tempfile.mkstemp`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """:func:`atomic_write` of a byte string."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write` of text, UTF-8 with the line endings it has."""
    return atomic_write_bytes(path, text.encode("utf-8"))


_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)-\d+$")
_ASIDE = re.compile(r"^\.(?P<name>.+)\.old-(?P<pid>\d+)-\d+$")


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (signal 0 probes, sends nothing)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return True  # when in doubt, keep the folder
    return True


def clean_stale(out: str | Path) -> list[Path]:
    """Remove staging and aside folders of ``out`` left behind by processes no longer alive.

    Only directories next to ``out`` named exactly as :func:`atomic_directory` names them
    (``.<name>.partial-<pid>-<n>`` and ``.<name>.old-<pid>-<n>``, ``<name>`` being
    ``out``'s own name) are considered, and only those whose ``<pid>`` is not a live
    process are removed. An aside folder (the old tree of an interrupted swap) is renamed
    back to ``out`` when ``out`` is missing. Returns the removed paths.
    """
    out = Path(out)
    removed: list[Path] = []
    try:
        siblings = list(out.parent.iterdir())
    except OSError:
        return removed
    for entry in siblings:
        match = _PARTIAL.match(entry.name) or _ASIDE.match(entry.name)
        if match is None or match["name"] != out.name:
            continue
        if entry.is_symlink() or not entry.is_dir():
            continue  # never follow or remove something we did not create
        if _pid_alive(int(match["pid"])):
            continue
        if match.re is _ASIDE and not os.path.lexists(out):
            # killed between the two renames of a swap: the aside folder is the only
            # complete tree, so it becomes ``out`` again rather than being lost
            try:
                os.rename(entry, out)
            except OSError:
                pass  # another run got there first; leave it for the next call
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _sibling_dir(out: Path, kind: str, *, create: bool) -> Path:
    """A new sibling path of ``out`` (same file system, so moves are renames)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for i in range(1000):
        candidate = out.parent / f".{out.name}.{kind}-{os.getpid()}-{i}"
        if not create:
            if not os.path.lexists(candidate):
                return candidate
            continue
        try:
            candidate.mkdir()  # default permissions, unlike tempfile.mkdtemp's 0o700
        except FileExistsError:
            continue
        return candidate
    raise OSError(f"cannot create a {kind} directory next to {out}")


def _staging_dir(out: Path) -> Path:
    """A new, empty staging sibling of ``out``."""
    return _sibling_dir(out, "partial", create=True)


def _carry_over(old: Path, staging: Path, names: tuple[str, ...]) -> None:
    """Copy what ``old`` holds besides ``names`` into ``staging``, so the swap keeps it."""
    for entry in old.iterdir():
        if entry.name in names or os.path.lexists(staging / entry.name):
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry), staging / entry.name)
        elif entry.is_dir():
            shutil.copytree(entry, staging / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, staging / entry.name)
    shutil.copystat(old, staging)


@contextmanager
def atomic_directory(out: str | Path, names: Iterable[str]) -> Iterator[Path]:
    """Write the files ``names`` of an output directory all at once, or none of them.

    Yields a staging sibling of ``out`` (``.<name>.partial-<pid>-<n>``) to write into.
    When the block finishes:

    * a new ``out`` appears by one rename, complete;
    * an existing ``out`` is replaced as a whole: whatever else it held (files not in
      ``names``) is first copied into the staging directory, then the old ``out`` is
      renamed aside (``.<name>.old-<pid>-<n>``), the staging directory renamed to ``out``
      and the aside directory removed. At every instant ``out`` is either the complete
      old tree or the complete new one, never a mix; if the second rename fails the old
      tree is renamed back.

    When the block raises, the staging directory is removed and ``out`` is as it was.
    Staging and aside folders of ``out`` left by a killed process are removed at the next
    call (:func:`clean_stale`).
    """
    out = Path(out)
    if out.is_symlink():
        out = out.resolve()  # replace the tree the link points to, keep the link
    names = tuple(names)
    clean_stale(out)
    staging = _staging_dir(out)
    try:
        yield staging
        if not out.exists():
            os.replace(staging, out)
        else:
            _carry_over(out, staging, names)
            aside = _sibling_dir(out, "old", create=False)
            os.rename(out, aside)
            try:
                os.rename(staging, out)
            except BaseException:
                os.rename(aside, out)  # put the complete old tree back
                raise
            shutil.rmtree(aside, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
