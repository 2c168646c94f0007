"""Options shared by the commands that quantify many plates: ``--workers`` and ``--scheduler``.

Light at import (Typer only): the process pool and Dask are loaded when a run uses them
(:mod:`cytosafe.workflows.parallel`).
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["SchedulerOption", "WorkersOption", "check_workers"]


def check_workers(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise typer.BadParameter("must be 1 or more (1 = in this process)")
    return value


WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        "-w",
        metavar="N",
        help="Processes that calibrate the plates, each a run of whole plates (default: every "
        "core for runs of 500 curves or more, where starting workers pays; 1 = in this "
        "process). The tables are byte-identical whatever N.",
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
        "address); the report and tables are still written here.",
        show_default=False,
    ),
]
