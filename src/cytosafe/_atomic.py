"""Whole-or-nothing file writes, shared by every package that writes files."""

from __future__ import annotations

import os
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


def _staging_dir(out: Path) -> Path:
    """A new, empty sibling of ``out`` (same file system, so moves are renames)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for i in range(1000):
        candidate = out.parent / f".{out.name}.partial-{os.getpid()}-{i}"
        try:
            candidate.mkdir()  # default permissions, unlike tempfile.mkdtemp's 0o700
        except FileExistsError:
            continue
        return candidate
    raise OSError(f"cannot create a staging directory next to {out}")


@contextmanager
def atomic_directory(out: str | Path, names: Iterable[str]) -> Iterator[Path]:
    """Write the files ``names`` of an output directory all at once, or none of them.

    Yields a staging sibling of ``out`` to write into. When the block finishes, a new
    ``out`` appears by one rename, complete; into an existing ``out`` each named file is
    replaced by a rename of its own (other files there are kept). When the block raises,
    the staging directory is removed and ``out`` is as it was.
    """
    out = Path(out)
    names = tuple(names)
    staging = _staging_dir(out)
    try:
        yield staging
        if not out.exists():
            os.replace(staging, out)
        else:
            for name in names:
                os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
