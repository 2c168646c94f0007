"""``cytosafe grade OBS --scale SCALE --out DIR``: the CLI face of the grading workflow
(:func:`cytosafe.workflows.run_grading`).

Writes ``timeline.csv``, ``patients.csv``, ``cohort.csv``, ``quarantine.csv`` (when rows
were set aside), ``settings.json`` and ``report.html`` into DIR atomically: all or nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cytosafe.cli._common import OutOption, QuietOption

__all__ = ["grade_command"]


def grade_command(
    observations: Annotated[
        Path,
        typer.Argument(help="Observation table (CSV/XLSX: patient_id, time, item, value, unit)."),
    ],
    out: OutOption = ...,
    scale: Annotated[
        list[str] | None,
        typer.Option(
            "--scale",
            "-s",
            help="Grading scale (repeat for several): astct2019 (default), lee2014, ctcae5, "
            "penn, mskcc, cartox, icans.",
        ),
    ] = None,
    quarantine: Annotated[
        bool,
        typer.Option(
            "--quarantine", help="Set bad rows aside (quarantine.csv) instead of stopping."
        ),
    ] = False,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            help="IANA time zone (e.g. Europe/Berlin) of times written without a UTC offset. "
            "Default: such times are UTC, and a patient mixing times with and without an "
            "offset is an error.",
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Grade CRS at every observation time; write timeline, patients, cohort and a report.

    Writes timeline.csv, patients.csv, cohort.csv, settings.json and report.html (and
    quarantine.csv with --quarantine) into OUT: all of them, or nothing. Observations
    before a patient's infusion are kept as baseline and never graded; a fever there is
    reported (patients.csv: baseline_fever).
    """
    from cytosafe.workflows import GRADING_FILES, run_grading

    result = run_grading(
        observations,
        list(scale or ["astct2019"]),
        quarantine=quarantine,
        out=out,
        timezone=timezone,
    )
    if not quiet:
        p = result.patients
        for s in result.scales:
            ps = p[p["scale"] == s]
            typer.echo(
                f"{s}: {len(ps)} patients, any grade {int((ps['max_grade'] >= 1).sum())}, "
                f"grade >= 3 {int((ps['max_grade'] >= 3).sum())}"
            )
        febrile = sorted(set(p.loc[p["baseline_fever"], "patient_id"]))
        if febrile:
            typer.echo(
                f"baseline fever (before the infusion, not graded as CRS): {', '.join(febrile)}"
            )
        n_files = len(GRADING_FILES) + (1 if quarantine else 0)
        typer.echo(f"wrote {n_files} files to {out}")
