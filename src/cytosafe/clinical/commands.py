"""``cytosafe grade OBS --scale SCALE --out DIR``: the CLI face of clinical grading.

Registered in :mod:`cytosafe.cli` with its ``command`` decorator (which prints a
:class:`~cytosafe.errors.CytoSafeError` as one line and exits with status 2). Writes
``timeline.csv``, ``patients.csv``, ``cohort.csv``, ``quarantine.csv`` (when rows were
set aside), ``settings.json`` and ``report.html`` into DIR atomically: all or nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["GRADE_OUTPUT_FILES", "grade_command"]

GRADE_OUTPUT_FILES = ("timeline.csv", "patients.csv", "cohort.csv", "settings.json", "report.html")


def grade_command(
    observations: Annotated[
        Path,
        typer.Argument(help="Observation table (CSV/XLSX: patient_id, time, item, value, unit)."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = ...,
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
) -> None:
    """Grade CRS at every observation time; write timeline, patients, cohort and a report.

    Writes timeline.csv, patients.csv, cohort.csv, settings.json and report.html (and
    quarantine.csv with --quarantine) into OUT: all of them, or nothing.
    """
    from cytosafe import __version__
    from cytosafe._atomic import atomic_directory
    from cytosafe.clinical import grade
    from cytosafe.errors import InputError
    from cytosafe.report.clinical import write_clinical_report

    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", file=str(out), field="--out")
    scales = list(scale or ["astct2019"])
    result = grade(observations, scales, errors="quarantine" if quarantine else "raise")
    names = list(GRADE_OUTPUT_FILES)
    if quarantine:
        names.append("quarantine.csv")
    run = {
        "cytosafe_version": __version__,
        "command": "grade",
        "input": str(observations),
        "scales": result.scales,
        "settings": result.settings,
        "quarantined_rows": len(result.quarantine),
        "outputs": names,
    }
    with atomic_directory(out, names) as staging:
        tables = {
            "timeline.csv": result.timeline,
            "patients.csv": result.patients,
            "cohort.csv": result.cohort,
        }
        if quarantine:
            tables["quarantine.csv"] = result.quarantine
        for name, frame in tables.items():
            frame.to_csv(staging / name, index=False, lineterminator="\n")
        with (staging / "settings.json").open("w", encoding="utf-8", newline="\n") as fh:
            json.dump(run, fh, indent=2, ensure_ascii=False, default=str)
            fh.write("\n")
        write_clinical_report(result, staging / "report.html", sources=[str(observations)])
    if not quiet:
        p = result.patients
        for s in result.scales:
            ps = p[p["scale"] == s]
            typer.echo(
                f"{s}: {len(ps)} patients, any grade {int((ps['max_grade'] >= 1).sum())}, "
                f"grade >= 3 {int((ps['max_grade'] >= 3).sum())}"
            )
        typer.echo(f"wrote {len(names)} files to {out}")
