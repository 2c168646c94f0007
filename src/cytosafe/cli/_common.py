"""What every command shares: one-line user errors, progress, and common options.

Command modules import only light modules at load time (this one, Typer, the standard
library, :mod:`cytosafe.errors`, :mod:`cytosafe.schema.choices`); the analysis and its
heavy libraries (NumPy, SciPy, pandas, SQLAlchemy, FastAPI) load inside the command that
needs them, so ``cytosafe --help`` starts at once.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from cytosafe.errors import CytoSafeError, InputError

__all__ = [
    "EXIT_INPUT_ERROR",
    "OutOption",
    "Progress",
    "QuietOption",
    "parse_key_values",
    "reporting_errors",
]

#: Exit status of a run stopped by bad input (the same as a command-line usage error).
EXIT_INPUT_ERROR = 2

#: ``--out/-o DIR``: the output directory a command writes, all or nothing.
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Output directory.")]

#: ``--quiet/-q``: print errors only.
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def reporting_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command so that a :class:`CytoSafeError` ends it as one line and exit code 2.

    The message goes to stderr as ``error: <message>`` (whitespace collapsed to one line),
    without a traceback: the error already names file, row or well and field. Any other
    exception passes through with its traceback, because it is a bug.

    Parameters
    ----------
    func:
        The command function; its signature is kept for Typer.

    Returns
    -------
    Callable
        The wrapped function.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CytoSafeError as exc:
            typer.echo(f"error: {_one_line(exc)}", err=True)
            raise typer.Exit(EXIT_INPUT_ERROR) from None

    return wrapper


def parse_key_values(
    items: list[str] | None, *, option: str, expected: str = "KEY=VALUE"
) -> dict[str, str]:
    """Repeated ``KEY=VALUE`` command-line options as a dict; a malformed one names
    ``option``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"{item!r}", field=option, expected=expected)
        out[key.strip()] = value.strip()
    return out


class Progress:
    """A progress bar on a terminal (stderr); silent when ``enabled`` is false.

    Workflows report ``progress(fraction, message)``; this object is such a callable
    inside ``with progress.running():``.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar = None
        self._task = None

    @contextmanager
    def running(self) -> Iterator[Progress]:
        if not self.enabled:
            yield self
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            self._bar, self._task = bar, bar.add_task("starting", total=1.0)
            yield self
        self._bar = self._task = None

    def __call__(self, fraction: float, message: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=fraction, description=message)
