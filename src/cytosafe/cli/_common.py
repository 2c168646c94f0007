"""What every command shares: one-line user errors, progress, and common options.

Command modules import only light modules at load time (this one, Typer, the standard
library, :mod:`cytosafe.errors`, :mod:`cytosafe.schema.choices`); the analysis and its
heavy libraries (NumPy, SciPy, pandas, SQLAlchemy, FastAPI) load inside the command that
needs them, so ``cytosafe --help`` starts at once.
"""

from __future__ import annotations

import atexit
import functools
import gc
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


def _spare_teardown() -> None:
    """At exit: collect the garbage once, then freeze what is left (:func:`gc.freeze`).

    A command's process exits as soon as the command returns. Without this, CPython's
    shutdown runs its cyclic garbage collector over every object again and again while it
    clears the modules: 0.12-0.20 s of CPU after ``cytosafe quantify`` on the MSD example
    (pandas, SciPy, Typer and pydantic loaded), 6-9 % of the whole run (issue 16, item 4).
    The one collection here still finalises every cycle that is garbage when the command
    ends (as the first of those passes did); objects still reachable are left to the
    operating system, which Python allows (``object.__del__``: "It is not guaranteed that
    __del__() methods are called for objects that still exist when the interpreter
    exits"). Files are closed by the commands and streams flushed by the interpreter.
    """
    gc.collect()
    gc.freeze()


_TEARDOWN: list[bool] = []


def _exit_quickly() -> None:
    """Register :func:`_spare_teardown` once per process (the first command that runs)."""
    if not _TEARDOWN:
        _TEARDOWN.append(True)
        atexit.register(_spare_teardown)


#: The first-generation threshold of the cyclic garbage collector while a command runs
#: (CPython's default is 700 allocations). A quantification allocates millions of small
#: objects, nearly all freed by reference counting; at 700 the collector ran 336 times on
#: the MSD example, promoting survivors into full collections over every loaded module
#: (0.11 s of CPU, 7 % of the run); at 10,000, 20 times (0.06 s; issue 16, item 4). The
#: older generations' thresholds are kept, and all three restored when the command ends.
COMMAND_GC_THRESHOLD = 10_000


@contextmanager
def _collecting_less() -> Iterator[None]:
    """The collector's first threshold raised to :data:`COMMAND_GC_THRESHOLD` (never
    lowered) inside the block, restored after."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], COMMAND_GC_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def reporting_errors(func: Callable[..., Any], *, long_running: bool = False) -> Callable[..., Any]:
    """Wrap a command so that a :class:`CytoSafeError` ends it as one line and exit code 2.

    The message goes to stderr as ``error: <message>`` (whitespace collapsed to one line),
    without a traceback: the error already names file, row or well and field. Any other
    exception passes through with its traceback, because it is a bug.

    Parameters
    ----------
    func:
        The command function; its signature is kept for Typer.
    long_running:
        A command that runs until stopped (``serve``, ``monitor``): it keeps the
        collector's own thresholds, since :data:`COMMAND_GC_THRESHOLD` suits a batch
        command that ends, not a process whose cyclic garbage would linger for hours.

    Returns
    -------
    Callable
        The wrapped function.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _exit_quickly()
        try:
            if long_running:
                return func(*args, **kwargs)
            with _collecting_less():
                return func(*args, **kwargs)
        except CytoSafeError as exc:
            typer.echo(f"error: {_one_line(exc)}", err=True)
            raise typer.Exit(EXIT_INPUT_ERROR) from None

    wrapper.long_running = long_running  # type: ignore[attr-defined]
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
    inside ``with progress.running():``. The bar never moves back: a workflow may report
    a step again from its start, as :func:`cytosafe.quantification.load_measurements`
    does when its at-once read of the exports falls back to reading them file by file.
    The bar then holds where it was, with the new message, until the work passes it.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar = None
        self._task = None
        self._shown = 0.0

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
            self._shown = 0.0
            yield self
        self._bar = self._task = None

    def __call__(self, fraction: float, message: str) -> None:
        if self._bar is not None:
            self._shown = max(self._shown, fraction)
            self._bar.update(self._task, completed=self._shown, description=message)
