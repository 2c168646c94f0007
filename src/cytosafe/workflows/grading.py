"""The grading workflow: observations in; timeline, patients, cohort and the report out.

:func:`run_grading` grades a cohort's observations (:func:`cytosafe.clinical.grade`) and,
given ``out``, writes ``timeline.csv``, ``patients.csv``, ``cohort.csv``,
``concordance.csv`` (the CRS scales side by side; ICANS is never among them),
``quarantine.csv`` (when rows were set aside), ``settings.json`` and ``report.html``,
all or nothing.

Input (:func:`read_clinical_input`): an observation table (CSV/XLSX), CDISC SDTM domains
as SAS transport files (a folder holding them, or several ``.xpt`` files named after
their domain: ``dm.xpt``, ``vs.xpt``, ``ex.xpt``, ``cm.xpt``, ``pr.xpt``, ``ae.xpt``,
``lb.xpt``; :func:`cytosafe.io.sdtm.read_sdtm`), or a FHIR R4 Bundle (``.json``;
:func:`cytosafe.io.fhir.read_fhir`). Laboratory results come along: SDTM LB through
:func:`cytosafe.clinical.labs.labs_from_sdtm_lb` and a Bundle's laboratory Observations
through :func:`cytosafe.clinical.labs.labs_from_fhir`, so that the predictors
(:func:`cytosafe.clinical.predict.predict`) read them beside the vital signs; grading
itself ignores laboratory rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from cytosafe._atomic import atomic_directory
from cytosafe.errors import InputError
from cytosafe.workflows._output import check_out, write_settings, write_tables

__all__ = [
    "GRADING_FILES",
    "GRADING_TABLES",
    "grading_settings",
    "grading_tables",
    "read_clinical_input",
    "run_grading",
    "write_grading",
]

#: The tables of a grading run (``quarantine`` too when rows were set aside).
GRADING_TABLES = ("timeline", "patients", "cohort", "concordance")

#: The files a grading run writes (``quarantine.csv`` too with ``quarantine=True``).
GRADING_FILES = (*(f"{name}.csv" for name in GRADING_TABLES), "settings.json", "report.html")


def _names(quarantine: bool) -> list[str]:
    return list(GRADING_FILES) + (["quarantine.csv"] if quarantine else [])


#: SDTM domains read by :func:`cytosafe.io.sdtm.read_sdtm` (file stem -> keyword).
SDTM_DOMAINS = ("dm", "vs", "ex", "cm", "pr", "ae", "lb")


def _sdtm_parts(files: list[Path]) -> dict[str, str]:
    parts: dict[str, str] = {}
    for f in files:
        key = f.stem.lower()
        if key not in SDTM_DOMAINS:
            raise InputError(
                f"'{f.name}' is not an SDTM domain grading reads",
                file=str(f),
                expected="dm.xpt, vs.xpt and optionally ex, cm, pr, ae, lb (.xpt)",
            )
        if key in parts:
            raise InputError(f"domain {key.upper()} given twice", file=str(f))
        parts[key] = str(f)
    for need in ("dm", "vs"):
        if need not in parts:
            where = str(files[0].parent) if files else None
            raise InputError(
                f"no {need.upper()} domain among the SDTM files",
                file=where,
                expected=f"{need}.xpt (DM and VS are required)",
            )
    return parts


def read_clinical_input(
    observations,
    *,
    product: str | None = None,
    quarantine: bool = False,
    timezone: str | None = None,
):
    """What grading reads, by kind: ``(observations, kind, source)``.

    ``kind`` is ``"table"`` (a DataFrame or a CSV/XLSX path, returned as given: grading
    reads it), ``"sdtm"`` (a folder of ``.xpt`` domains or several ``.xpt`` files) or
    ``"fhir"`` (a ``.json`` Bundle); the last two return validated
    :class:`~cytosafe.schema.observations.Observations`. ``product`` names the cell
    product (SDTM ``EXTRT``, FHIR medication) when the file holds several treatments.
    The SDTM and FHIR readers convert times with their UTC offsets themselves and take no
    time zone: ``timezone`` with them is an :class:`InputError`.
    """
    if isinstance(observations, pd.DataFrame):
        return observations, "table", None
    items = (
        [Path(p) for p in observations]
        if isinstance(observations, Sequence) and not isinstance(observations, str)
        else [Path(observations)]
    )
    if not items:
        raise InputError("no input file given", field="observations")
    if len(items) == 1 and items[0].is_dir():
        folder = items[0]
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".xpt")
        if not files:
            raise InputError(
                "the folder holds no SDTM .xpt files", file=str(folder), expected="dm.xpt, vs.xpt"
            )
        items = files
    suffixes = {p.suffix.lower() for p in items}
    errors = "quarantine" if quarantine else "raise"
    if suffixes == {".xpt"}:
        kind = "sdtm"
    elif suffixes == {".json"} and len(items) == 1:
        kind = "fhir"
    elif len(items) == 1:
        return items[0], "table", str(items[0])
    else:
        raise InputError(
            "several input files must all be SDTM domains (.xpt)",
            file=", ".join(p.name for p in items),
            expected="one observation table, one FHIR Bundle (.json), or SDTM .xpt domains",
        )
    if timezone is not None:
        raise InputError(
            f"a time zone applies to observation tables, not to {kind.upper()} input",
            field="timezone",
            expected="no --timezone: SDTM and FHIR date-times are read with their own offsets",
        )
    if kind == "sdtm":
        return _read_sdtm(items, product, errors), kind, ", ".join(map(str, items))
    return _read_fhir(items[0], product, errors), kind, str(items[0])


def _read_sdtm(items: list[Path], product: str | None, errors: str):
    """SDTM domains, LB's laboratory results validated with the vital signs."""
    from cytosafe.clinical.labs import labs_from_sdtm_lb
    from cytosafe.io.sdtm import read_domain, read_sdtm

    parts = _sdtm_parts(items)
    lb = parts.pop("lb", None)
    labs = None if lb is None else labs_from_sdtm_lb(read_domain(lb, "LB"), source=lb)
    return read_sdtm(
        **parts,
        product=product,
        errors=errors,
        extra=None if labs is None else labs.observations,
        extra_skipped=None if labs is None else labs.skipped,
    ).observations


def _read_fhir(path: Path, product: str | None, errors: str):
    """A FHIR Bundle, its laboratory Observations validated with the vital signs."""
    from cytosafe.clinical.labs import labs_from_fhir
    from cytosafe.io.fhir import load_bundle, read_fhir

    # a file that does not parse is named by load_bundle; the Bundle is then read twice
    # (labs, then the rest), which costs little beside validation
    extra = labs_from_fhir(load_bundle(path), source=str(path)).observations
    return read_fhir(path, product=product, errors=errors, extra=extra).observations


def run_grading(
    observations,
    scales=("astct2019",),
    *,
    quarantine: bool = False,
    out: str | Path | None = None,
    timezone: str | None = None,
    episode_gap_hours: float | None = None,
    product: str | None = None,
    workers: int | None = 1,
    scheduler=None,
):
    """Grade CRS (and ICANS) at every observation time under each scale; optionally write.

    Parameters
    ----------
    observations:
        An observation table or its file (CSV/XLSX: ``patient_id, time, item, value,
        unit``; see :func:`cytosafe.clinical.read_observations`), SDTM domains (a folder
        of ``.xpt`` files or a list of them) or a FHIR R4 Bundle (``.json``); see
        :func:`read_clinical_input`.
    scales:
        Scale names (:data:`cytosafe.clinical.scales.SCALES`).
    quarantine:
        Set bad rows aside (``quarantine.csv``) instead of stopping at the first.
    out:
        When given, the tables, ``settings.json`` and ``report.html`` are written there.
    timezone:
        IANA time-zone name for times written without a UTC offset (default UTC; a
        patient mixing both kinds is then an error). See :func:`cytosafe.clinical.grade`.
        Observation tables only.
    episode_gap_hours:
        Hours afebrile, off vasopressors and off oxygen after which CRS resolves and an
        episode ends (default 24; see :func:`cytosafe.clinical.grade`).
    product:
        The cell product's name in SDTM ``EXTRT`` or the FHIR medication (the infusion).
    workers, scheduler:
        Validate and grade parts of whole patients in ``workers`` processes (None: every
        core; 1, the default: in this process), or on a Dask cluster (a
        :class:`dask.distributed.Client` or a scheduler address, ``tcp://host:8786``;
        one part per worker thread). The tables are byte-identical to one process, the
        quarantined rows in the order of the input (:func:`cytosafe.clinical.grade`,
        ``parts``).

    Returns
    -------
    GradeResult
    """
    from cytosafe.clinical import grade

    if out is not None:
        check_out(out)  # before the work, not after it
    parts, map_parts = _partitioning(workers, scheduler)
    obs, kind, source = read_clinical_input(
        observations, product=product, quarantine=quarantine, timezone=timezone
    )
    result = grade(
        obs,
        list(scales),
        errors="quarantine" if quarantine else "raise",
        timezone=timezone,
        episode_gap_hours=episode_gap_hours,
        parts=parts,
        map_parts=map_parts,
    )
    if out is not None:
        write_grading(
            result, out, source=source, quarantine=quarantine, timezone=timezone, input_kind=kind
        )
    return result


def _partitioning(workers: int | None, scheduler) -> tuple[int, Callable | None]:
    """How many parts of whole patients to grade, and the ``map`` that grades them
    (:func:`cytosafe.workflows.parallel.map_plates`: a Dask cluster, processes, or here)."""
    from functools import partial

    from cytosafe.workflows.parallel import (
        _cluster_size,
        check_placement,
        check_workers,
        map_plates,
    )

    check_placement(workers, scheduler)
    if scheduler is not None:
        return _cluster_size(scheduler), partial(map_plates, scheduler=scheduler)
    workers = check_workers(workers)
    if workers <= 1:
        return 1, None
    return workers, partial(map_plates, workers=workers)


def grading_tables(result, *, quarantine: bool = False) -> dict[str, pd.DataFrame]:
    """The tables of a grading run by name (``quarantine`` only when asked for).

    ``concordance``: the CRS scales side by side (:func:`cytosafe.clinical.concordance`;
    ICANS is not a CRS scale and is never among them; one row for a single CRS scale,
    none when only ICANS was graded).
    """
    from cytosafe.clinical import concordance

    tables = {
        "timeline": result.timeline,
        "patients": result.patients,
        "cohort": result.cohort,
        "concordance": concordance(result.patients),
    }
    if quarantine:
        tables["quarantine"] = result.quarantine
    return tables


def grading_settings(
    result,
    *,
    source: str | None = None,
    quarantine: bool = False,
    timezone: str | None = None,
    input_kind: str = "table",
) -> dict:
    """The settings of a grading run as JSON-ready data (``settings.json``)."""
    from cytosafe import __version__

    return {
        "cytosafe_version": __version__,
        "command": "grade",
        "input": source,
        "input_kind": input_kind,
        "scales": result.scales,
        # per CRS scale in "settings" too; ICANS episodes end at every time graded 0
        "episode_gap_hours": _gap(result),
        "settings": result.settings,
        "quarantined_rows": len(result.quarantine),
        "timezone": timezone or "UTC (times without an offset)",
        "baseline_fever_patients": sorted(
            set(result.patients.loc[result.patients["baseline_fever"], "patient_id"])
        ),
        "outputs": _names(quarantine),
    }


def _gap(result) -> float | dict[str, float] | None:
    """The episode gap of the CRS scales: one number when they agree."""
    from cytosafe.clinical.scales import get_scale

    gaps = {
        n: float(st["episode_gap_hours"])
        for n, st in result.settings.items()
        if get_scale(n).KIND == "CRS"
    }
    values = set(gaps.values())
    return values.pop() if len(values) == 1 else (gaps or None)


def write_grading(
    result,
    out: str | Path,
    *,
    source: str | None = None,
    quarantine: bool = False,
    timezone: str | None = None,
    input_kind: str = "table",
) -> list[Path]:
    """Write the grading tables, ``settings.json`` and ``report.html``, all or nothing."""
    from cytosafe.report.clinical import write_clinical_report

    out = check_out(out)
    names = _names(quarantine)
    with atomic_directory(out, names) as staging:
        write_tables(staging, grading_tables(result, quarantine=quarantine))
        write_settings(
            staging,
            grading_settings(
                result,
                source=source,
                quarantine=quarantine,
                timezone=timezone,
                input_kind=input_kind,
            ),
        )
        write_clinical_report(result, staging / "report.html", sources=[source] if source else None)
    return [out / name for name in names]
