"""The grading workflow: observations in; timeline, patients, cohort and the report out.

:func:`run_grading` grades a cohort's observations (:func:`cytosafe.clinical.grade`) and,
given ``out``, writes ``timeline.csv``, ``patients.csv``, ``cohort.csv``,
``quarantine.csv`` (when rows were set aside), ``settings.json`` and ``report.html``,
all or nothing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cytosafe._atomic import atomic_directory
from cytosafe.workflows._output import check_out, write_settings, write_tables

__all__ = [
    "GRADING_FILES",
    "GRADING_TABLES",
    "grading_settings",
    "grading_tables",
    "run_grading",
    "write_grading",
]

#: The tables of a grading run (``quarantine`` too when rows were set aside).
GRADING_TABLES = ("timeline", "patients", "cohort")

#: The files a grading run writes (``quarantine.csv`` too with ``quarantine=True``).
GRADING_FILES = (*(f"{name}.csv" for name in GRADING_TABLES), "settings.json", "report.html")


def _names(quarantine: bool) -> list[str]:
    return list(GRADING_FILES) + (["quarantine.csv"] if quarantine else [])


def run_grading(
    observations,
    scales=("astct2019",),
    *,
    quarantine: bool = False,
    out: str | Path | None = None,
    timezone: str | None = None,
):
    """Grade CRS (and ICANS) at every observation time under each scale; optionally write.

    Parameters
    ----------
    observations:
        An observation table or its file (CSV/XLSX: ``patient_id, time, item, value,
        unit``); see :func:`cytosafe.clinical.read_observations`.
    scales:
        Scale names (:data:`cytosafe.clinical.scales.SCALES`).
    quarantine:
        Set bad rows aside (``quarantine.csv``) instead of stopping at the first.
    out:
        When given, the tables, ``settings.json`` and ``report.html`` are written there.
    timezone:
        IANA time-zone name for times written without a UTC offset (default UTC; a
        patient mixing both kinds is then an error). See :func:`cytosafe.clinical.grade`.

    Returns
    -------
    GradeResult
    """
    from cytosafe.clinical import grade

    if out is not None:
        check_out(out)  # before the work, not after it
    result = grade(
        observations,
        list(scales),
        errors="quarantine" if quarantine else "raise",
        timezone=timezone,
    )
    if out is not None:
        source = None if isinstance(observations, pd.DataFrame) else str(observations)
        write_grading(result, out, source=source, quarantine=quarantine, timezone=timezone)
    return result


def grading_tables(result, *, quarantine: bool = False) -> dict[str, pd.DataFrame]:
    """The tables of a grading run by name (``quarantine`` only when asked for)."""
    tables = {"timeline": result.timeline, "patients": result.patients, "cohort": result.cohort}
    if quarantine:
        tables["quarantine"] = result.quarantine
    return tables


def grading_settings(
    result, *, source: str | None = None, quarantine: bool = False, timezone: str | None = None
) -> dict:
    """The settings of a grading run as JSON-ready data (``settings.json``)."""
    from cytosafe import __version__

    return {
        "cytosafe_version": __version__,
        "command": "grade",
        "input": source,
        "scales": result.scales,
        "settings": result.settings,
        "quarantined_rows": len(result.quarantine),
        "timezone": timezone or "UTC (times without an offset)",
        "baseline_fever_patients": sorted(
            set(result.patients.loc[result.patients["baseline_fever"], "patient_id"])
        ),
        "outputs": _names(quarantine),
    }


def write_grading(
    result,
    out: str | Path,
    *,
    source: str | None = None,
    quarantine: bool = False,
    timezone: str | None = None,
) -> list[Path]:
    """Write the grading tables, ``settings.json`` and ``report.html``, all or nothing."""
    from cytosafe.report.clinical import write_clinical_report

    out = check_out(out)
    names = _names(quarantine)
    with atomic_directory(out, names) as staging:
        write_tables(staging, grading_tables(result, quarantine=quarantine))
        write_settings(
            staging,
            grading_settings(result, source=source, quarantine=quarantine, timezone=timezone),
        )
        write_clinical_report(result, staging / "report.html", sources=[source] if source else None)
    return [out / name for name in names]
