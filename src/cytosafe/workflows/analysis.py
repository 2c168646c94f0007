"""The analysis workflow: a study file and its raw exports in; hazard tables and report out.

:func:`run_analysis` quantifies a study's exports (:mod:`cytosafe.workflows.quantification`)
and runs the hazard step (:func:`cytosafe.hazard.assess_hazard`); :func:`analysis_tables`
names every table, the quantification's included, so ``cytosafe analyze`` and the web
app's hazard job store and write the same ones.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from cytosafe._atomic import atomic_directory
from cytosafe.errors import InputError
from cytosafe.hazard.design import HazardSettings, StudyDesign, load_study
from cytosafe.hazard.pipeline import AnalysisResult, assess_hazard
from cytosafe.workflows._output import check_out, write_settings, write_tables
from cytosafe.workflows.quantification import QUANTIFICATION_TABLES, quantification_tables

__all__ = [
    "ANALYSIS_FILES",
    "ANALYSIS_TABLES",
    "analysis_settings",
    "analysis_tables",
    "run_analysis",
    "write_analysis",
]

#: The hazard step's tables, written before the quantification's.
HAZARD_TABLES = (
    "responses",
    "summary",
    "mixed_models",
    "positive_controls",
    "benchmark",
    "ranking",
    "hazard",
)

#: Every table of an analysis, in the order they are written.
ANALYSIS_TABLES = (*HAZARD_TABLES, *QUANTIFICATION_TABLES)

#: The files :func:`write_analysis` writes (``report.pdf`` too when asked).
ANALYSIS_FILES = (*(f"{name}.csv" for name in ANALYSIS_TABLES), "settings.json", "report.html")


def run_analysis(
    study: str | Path | StudyDesign,
    *,
    inputs=None,
    sample_map=None,
    out: str | Path | None = None,
    settings: HazardSettings | None = None,
    pdf: bool = False,
    generated: str | None = None,
    workers: int | None = 1,
    scheduler=None,
) -> AnalysisResult:
    """Quantify the raw exports of a study and identify its cytokine-release hazard.

    Parameters
    ----------
    study:
        The study file (TOML; see :mod:`cytosafe.hazard.design`) or a design.
    inputs, sample_map:
        Raw exports (or a measurement table) and sample map; default the study file's
        ``[analysis]`` ``inputs`` and ``sample_map``.
    settings:
        Overrides the design's :class:`~cytosafe.hazard.design.HazardSettings`.
    out:
        When given, the tables, ``settings.json``, ``report.html`` (and ``report.pdf`` with
        ``pdf=True``) are written there, all or nothing (:func:`write_analysis`).
    workers, scheduler:
        Quantify runs of whole plates in ``workers`` processes, or on a Dask cluster (a
        :class:`dask.distributed.Client` or a scheduler address); the tables are
        byte-identical to one process (:mod:`cytosafe.workflows.parallel`). The hazard
        step and the report run here. Default: here; ``None``: every core for runs of 500
        curves or more (:func:`~cytosafe.workflows.parallel.quantifier`).

    Returns
    -------
    AnalysisResult

    Examples
    --------
    >>> from cytosafe import analyze  # doctest: +SKIP
    >>> result = analyze("examples/cra-study/study.toml", out="out/analysis")  # doctest: +SKIP
    >>> result.hazard.hazard[["treatment", "assay_format", "hazard_class"]]  # doctest: +SKIP
    """
    from cytosafe.curves.calibration import CalibrationSettings
    from cytosafe.curves.potency import PotencySettings
    from cytosafe.quantification import load_measurements
    from cytosafe.workflows.parallel import quantifier

    if out is not None:
        check_out(out)  # before the work, not after it
    timings: dict[str, float] = {}
    # One process, several (their start-up beside the reading) or a Dask cluster.
    run = quantifier(workers=workers, scheduler=scheduler)
    t0 = time.perf_counter()
    design = study if isinstance(study, StudyDesign) else load_study(study)
    a = design.analysis
    inputs = inputs if inputs is not None else list(a.inputs)
    sample_map = sample_map if sample_map is not None else a.sample_map
    if inputs is None or (not isinstance(inputs, pd.DataFrame) and len(inputs) == 0):
        raise InputError(
            "no raw exports: the study file's [analysis] names no inputs and none were given",
            file=None if design.path is None else str(design.path),
            field="inputs",
            expected='[analysis] inputs = ["plates/*.csv"]',
        )
    cal = CalibrationSettings(model=a.model, weighting=a.weighting, blank=a.blank)
    # The acceptance set is an option over each plate's convention, as --acceptance is:
    # folded into the settings, it would make them explicit and drop the vendors' curves.
    options = {"acceptance": a.acceptance} if a.acceptance != "cytosafe" else None
    measurements, sources = load_measurements(
        inputs, sample_map=sample_map, study_id=design.study_id
    )
    timings["read"] = time.perf_counter() - t0
    t = time.perf_counter()
    # load_measurements validated the table: the run does not validate it again.
    q = run(
        measurements,
        settings=cal,
        potency_settings=PotencySettings(ecx=a.ecx),
        options=options,
        validated=True,
    )
    q.sources = sources
    timings["quantify"] = time.perf_counter() - t
    t = time.perf_counter()
    hz = assess_hazard(q, design, settings=settings)
    timings["hazard"] = time.perf_counter() - t
    result = AnalysisResult(q, hz, timings)
    if out is not None:
        write_analysis(result, out, pdf=pdf, generated=generated)
    return result


def analysis_tables(result: AnalysisResult) -> dict[str, pd.DataFrame]:
    """Every table of an analysis by name (without ``.csv``): the hazard step's
    (``responses``, ``summary``, ``mixed_models``, ``positive_controls``, ``benchmark``,
    ``ranking``, ``hazard``) and the quantification's (:func:`quantification_tables`)."""
    tables = {**result.hazard.tables(), **quantification_tables(result.quantification)}
    return {name: tables[name] for name in ANALYSIS_TABLES}


def analysis_settings(result: AnalysisResult) -> dict:
    """The settings of an analysis as JSON-ready data (``settings.json``)."""
    from cytosafe import __version__
    from cytosafe.curves.calibration import acceptance_name

    q, hz = result.quantification, result.hazard
    d = hz.design
    return {
        "cytosafe_version": __version__,
        "command": "analyze",
        "study": None if d.path is None else str(d.path),
        "study_id": d.study_id,
        "inputs": list(getattr(q, "sources", [])),
        "calibration": {
            **q.calibration.settings.to_dict(),
            "acceptance": acceptance_name(q.calibration.settings),
            "formula": q.calibration.fit.model.formula,
        },
        "potency": q.potency_settings.to_dict(),
        "hazard": hz.settings.to_dict(),
        "valid_for_hazard_calling": hz.valid,
        "warnings": hz.warnings,
    }


def write_analysis(
    result: AnalysisResult, out: str | Path, *, pdf: bool = False, generated: str | None = None
) -> list[Path]:
    """Write every table, ``settings.json``, ``report.html`` (and ``report.pdf``) to ``out``.

    Files are written into a staging sibling directory and moved into place only when all
    succeeded: a failed run leaves ``out`` as it was.
    """
    from cytosafe.report.hazard import write_hazard_pdf, write_hazard_report

    out = check_out(out)
    names = list(ANALYSIS_FILES) + (["report.pdf"] if pdf else [])
    with atomic_directory(out, names) as staging:
        t = time.perf_counter()
        write_tables(staging, analysis_tables(result))
        write_settings(staging, analysis_settings(result))
        result.timings["tables"] = time.perf_counter() - t
        t = time.perf_counter()
        write_hazard_report(result, staging / "report.html", generated=generated)
        result.timings["report"] = time.perf_counter() - t
        if pdf:
            t = time.perf_counter()
            write_hazard_pdf(staging / "report.html", staging / "report.pdf")
            result.timings["pdf"] = time.perf_counter() - t
    result.outputs = [out / n for n in names]
    return result.outputs
