"""Options shared by the commands that quantify many plates: ``--workers`` and ``--scheduler``.

The two choose where the work runs, here in N processes or on a Dask cluster, so a command
line that gives both is a usage error naming both (before, the scheduler silently won):
each option's callback (:func:`check_workers`, :func:`check_scheduler`) refuses the
combination, so every command built on these options refuses it while its arguments are
parsed, before any input is read.

Light at import (Typer only): the process pool and Dask are loaded when a run uses them
(:mod:`cytosafe.workflows.parallel`).
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = [
    "SchedulerOption",
    "WorkersOption",
    "check_parallel",
    "check_scheduler",
    "check_workers",
]


def check_parallel(workers: int | None, scheduler: str | None) -> None:
    """Refuse ``--workers`` together with ``--scheduler`` (a usage error, exit code 2).

    ``None`` is an option not given. ``--workers 1`` counts as given: it asks for this
    process, which a cluster would overrule as silently as any other count.
    """
    if workers is not None and scheduler is not None:
        raise typer.BadParameter(
            f"not both: --workers {workers} runs the work here, --scheduler {scheduler} on "
            "that Dask cluster; give one of them",
            param_hint=["--workers", "--scheduler"],
        )


def check_workers(ctx: typer.Context, value: int | None) -> int | None:
    """Callback of ``--workers``: 1 or more, and not with ``--scheduler``.

    Click processes the options given in the order they were typed, so whichever of the
    two comes second finds the other in ``ctx.params``.
    """
    if value is not None and value < 1:
        raise typer.BadParameter("must be 1 or more (1 = in this process)")
    check_parallel(value, ctx.params.get("scheduler"))
    return value


def check_scheduler(ctx: typer.Context, value: str | None) -> str | None:
    """Callback of ``--scheduler``: not with ``--workers`` (:func:`check_workers`)."""
    check_parallel(ctx.params.get("workers"), value)
    return value


WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        "-w",
        metavar="N",
        help="Processes that calibrate the plates, each a run of whole plates (default: every "
        "core for runs of 500 curves or more, where starting workers pays; 1 = in this "
        "process). The tables are byte-identical whatever N. Not with --scheduler.",
        callback=check_workers,
        show_default=False,
    ),
]

SchedulerOption = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="Calibrate the plates on this Dask cluster instead (dask.distributed scheduler "
        "address); the report and tables are still written here. Not with --workers.",
        callback=check_scheduler,
        show_default=False,
    ),
]
