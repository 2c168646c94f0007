"""``cytosafe grade OBS --scale SCALE --out DIR``: the CLI face of the grading workflow
(:func:`cytosafe.workflows.run_grading`).

OBS is an observation table (CSV/XLSX), a folder of CDISC SDTM domains (``.xpt``) or
several domain files, or a FHIR R4 Bundle (``.json``). Writes ``timeline.csv``,
``patients.csv``, ``cohort.csv``, ``concordance.csv`` (CRS scales only), ``quarantine.csv``
(when rows were set aside), ``settings.json`` and ``report.html`` into DIR atomically: all
or nothing. ``--workers N`` validates and grades parts of whole patients in N processes,
``--scheduler tcp://host:port`` on a Dask cluster; the tables are byte-identical to one
process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cytosafe.cli._common import OutOption, QuietOption
from cytosafe.cli._parallel import check_scheduler, check_workers

__all__ = ["grade_command"]


def grade_command(
    observations: Annotated[
        list[Path],
        typer.Argument(
            help="Observation table (CSV/XLSX: patient_id, time, item, value, unit), a folder "
            "of SDTM domains or several .xpt files (dm, vs; ex, cm, pr, ae), or a FHIR R4 "
            "Bundle (.json)."
        ),
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
    episode_gap: Annotated[
        float | None,
        typer.Option(
            "--episode-gap",
            metavar="HOURS",
            help="Hours afebrile, off vasopressors and off oxygen after which CRS resolves "
            "and an episode ends; shorter quiet periods do not split one. Default 24 "
            "(a documented CytoSafe choice; recorded in settings.json).",
        ),
    ] = None,
    product: Annotated[
        str | None,
        typer.Option(
            "--product",
            help="The cell product's name (SDTM EXTRT or FHIR medication) when the input "
            "holds several treatments.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            metavar="N",
            help="Processes that validate and grade the observations, each a part of whole "
            "patients (default 1: in this process). The tables are byte-identical whatever N. "
            "Not with --scheduler.",
            callback=check_workers,
            show_default=False,
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            metavar="tcp://HOST:PORT",
            help="Validate and grade parts of whole patients on this Dask cluster instead "
            "(dask.distributed scheduler address); the tables and report are still written here. "
            "Not with --workers.",
            callback=check_scheduler,
            show_default=False,
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Grade CRS at every observation time; write timeline, patients, cohort and a report.

    Reads a table (CSV/XLSX), SDTM .xpt domains (a folder or several files) or a FHIR
    Bundle (.json). Writes timeline.csv, patients.csv, cohort.csv, concordance.csv (CRS
    scales only), settings.json and report.html (and quarantine.csv with --quarantine)
    into OUT: all of them, or nothing. Patients are graded across --workers processes
    (or a Dask --scheduler) with the same tables. Observations before a patient's infusion are kept
    as baseline and never graded; a fever there is reported (patients.csv:
    baseline_fever). CRS is graded only once present (a fever at onset).
    """
    from cytosafe.workflows import GRADING_FILES, run_grading

    result = run_grading(
        observations,
        list(scale or ["astct2019"]),
        quarantine=quarantine,
        out=out,
        timezone=timezone,
        episode_gap_hours=episode_gap,
        product=product,
        workers=1 if workers is None else workers,
        scheduler=scheduler,
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
