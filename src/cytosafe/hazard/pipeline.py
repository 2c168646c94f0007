"""The hazard step and the whole analysis: study file + raw exports -> tables and report.

:func:`assess_hazard` runs the hazard step on calibrated samples (a
:class:`~cytosafe.quantification.QuantificationResult` or its ``samples`` table);
:func:`analyze` runs quantification and hazard from a study file and writes the tables,
the HTML report and (optionally) its PDF into one output directory, all or nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cytosafe._atomic import atomic_directory
from cytosafe.errors import InputError
from cytosafe.hazard.classify import benchmark, classify, positive_control_acceptance
from cytosafe.hazard.design import HazardSettings, StudyDesign, design_from_table, load_study
from cytosafe.hazard.response import donor_responses
from cytosafe.hazard.statistics import across_donors, mixed_models

__all__ = [
    "ANALYSIS_FILES",
    "AnalysisResult",
    "HazardResult",
    "analyze",
    "assess_hazard",
    "write_analysis",
]

#: The files :func:`write_analysis` writes besides the quantification tables.
ANALYSIS_FILES = (
    "responses.csv",
    "summary.csv",
    "mixed_models.csv",
    "positive_controls.csv",
    "benchmark.csv",
    "ranking.csv",
    "hazard.csv",
    "concentrations.csv",
    "samples.csv",
    "curves.csv",
    "qc.csv",
    "potency.csv",
    "settings.json",
    "report.html",
)


@dataclass
class HazardResult:
    """Everything the hazard step produced.

    Attributes
    ----------
    responses: donor-level responses (:func:`~cytosafe.hazard.response.donor_responses`).
    summary: across donors per treatment x concentration x analyte x format.
    mixed: mixed-model results (may be empty).
    acceptance: positive-control acceptance per format.
    benchmark: per-analyte ranking; ranking: overall ranking.
    hazard: the hazard class per test article x format with reasons.
    warnings: design and data warnings, in words (shown in the report).
    valid: False when any format's positive control failed (its calls are ``invalid``).
    """

    design: StudyDesign
    settings: HazardSettings
    responses: pd.DataFrame
    summary: pd.DataFrame
    mixed: pd.DataFrame
    acceptance: pd.DataFrame
    benchmark: pd.DataFrame
    ranking: pd.DataFrame
    hazard: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not (len(self.hazard) and (self.hazard["hazard_class"] == "invalid").any()) and not (
            len(self.acceptance)
            and (self.acceptance["expected"] & ~self.acceptance["passed"]).any()
        )

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "responses.csv": self.responses,
            "summary.csv": self.summary,
            "mixed_models.csv": self.mixed,
            "positive_controls.csv": self.acceptance,
            "benchmark.csv": self.benchmark,
            "ranking.csv": self.ranking,
            "hazard.csv": self.hazard,
        }


@dataclass
class AnalysisResult:
    """Quantification and hazard of one study, with the time each stage took (s)."""

    quantification: object
    hazard: HazardResult
    timings: dict[str, float] = field(default_factory=dict)
    outputs: list[Path] = field(default_factory=list)


def _design_warnings(design: StudyDesign, samples: pd.DataFrame) -> list[str]:
    s = samples[samples["sample_type"].astype(str) == "sample"]
    out = []
    donors = s["donor_id"].dropna().unique()
    if len(donors) < 2:
        out.append(
            f"the study has {len(donors)} donor(s): donor variability cannot be assessed and "
            "no across-donor statistics are computed; calls rest on a single donor"
        )
    if design.donors:
        missing = sorted(set(design.donors) - set(map(str, donors)))
        if missing:
            out.append("donors named in the study file have no data: " + ", ".join(missing))
    if not design.positive_controls:
        out.append(
            "the design has no positive control: the assay's ability to show a release is not verified"
        )
    present = set(s["treatment"].dropna().astype(str))
    absent = [n for n in design.treatments if n not in present]
    if absent:
        out.append("treatments of the design have no data: " + ", ".join(absent))
    # A donor missing for a treatment: said once per treatment x format.
    for (t, f), g in s.groupby(["treatment", "assay_format"], dropna=False):
        have = set(g["donor_id"].dropna())
        fmt_donors = set(
            s.loc[
                s["assay_format"].eq(f) if pd.notna(f) else s["assay_format"].isna(), "donor_id"
            ].dropna()
        )
        lack = sorted(fmt_donors - have)
        if lack:
            out.append(
                f"{t} ({f if pd.notna(f) else 'no format'}): no data for donor(s) {', '.join(lack)}"
            )
    return out


def assess_hazard(
    quantified,
    design: StudyDesign | str | Path | None = None,
    *,
    settings: HazardSettings | None = None,
) -> HazardResult:
    """Run the hazard step on calibrated concentrations.

    Parameters
    ----------
    quantified:
        A :class:`~cytosafe.quantification.QuantificationResult`, or a calibrated samples table
        (``Calibration.samples``).
    design:
        A :class:`~cytosafe.hazard.design.StudyDesign`, a study file path, or ``None`` to
        read the design off the table's columns.
    settings:
        Overrides the design's :class:`~cytosafe.hazard.design.HazardSettings`.

    Examples
    --------
    >>> from cytosafe.quantification import quantify  # doctest: +SKIP
    >>> result = assess_hazard(quantify(["plate.csv"], sample_map="map.csv"))  # doctest: +SKIP
    >>> result.hazard[["treatment", "hazard_class", "reason"]]  # doctest: +SKIP
    """
    if hasattr(quantified, "calibration"):
        samples, qc = quantified.calibration.samples, quantified.calibration.qc
    elif isinstance(quantified, pd.DataFrame):
        samples, qc = quantified, None
    else:
        raise InputError(
            "expected a QuantificationResult or a calibrated samples table", field="quantified"
        )
    if design is None:
        design = design_from_table(samples, settings=settings)
    elif not isinstance(design, StudyDesign):
        design = load_study(design)
    settings = settings or design.settings
    warnings = _design_warnings(design, samples)
    responses, w2 = donor_responses(samples, design, qc=qc, settings=settings)
    warnings += w2
    summary = across_donors(responses, settings)
    mixed = mixed_models(responses, settings)
    acceptance = positive_control_acceptance(responses, design, settings)
    per_analyte, overall = benchmark(summary, design)
    hazard = classify(summary, overall, acceptance, design, settings)
    if len(acceptance):
        for r in acceptance[acceptance["expected"]].itertuples(index=False):
            if not r.passed:
                warnings.append(
                    f"positive control {r.treatment} failed in {r.assay_format}: {r.reason}; "
                    "this format is invalid for hazard calling"
                )
            elif r.non_responding_donors:
                warnings.append(
                    f"positive control {r.treatment} in {r.assay_format}: no response in donor(s) "
                    f"{r.non_responding_donors.replace(' ', ', ')}; their cultures could not show a release"
                )
    return HazardResult(
        design,
        settings,
        responses,
        summary,
        mixed,
        acceptance,
        per_analyte,
        overall,
        hazard,
        warnings,
    )


def analyze(
    study: str | Path | StudyDesign,
    *,
    inputs=None,
    sample_map=None,
    out: str | Path | None = None,
    settings: HazardSettings | None = None,
    pdf: bool = False,
    generated: str | None = None,
) -> AnalysisResult:
    """Quantify the raw exports of a study and identify its cytokine-release hazard.

    Parameters
    ----------
    study:
        The study file (TOML; see :mod:`cytosafe.hazard.design`) or a design.
    inputs, sample_map:
        Raw exports and sample map; default the study file's ``[analysis]`` ``inputs``
        and ``sample_map``.
    out:
        When given, the tables, ``settings.json``, ``report.html`` (and ``report.pdf`` with
        ``pdf=True``) are written there, all or nothing (:func:`write_analysis`).

    Returns
    -------
    AnalysisResult

    Examples
    --------
    >>> from cytosafe.hazard import analyze  # doctest: +SKIP
    >>> result = analyze("examples/cra-study/study.toml", out="out/analysis")  # doctest: +SKIP
    >>> result.hazard.hazard[["treatment", "assay_format", "hazard_class"]]  # doctest: +SKIP
    """
    from cytosafe.curves.calibration import CalibrationSettings
    from cytosafe.curves.potency import PotencySettings
    from cytosafe.quantification import quantify

    timings: dict[str, float] = {}
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
    from cytosafe.quantification import load_measurements

    measurements, sources = load_measurements(
        inputs, sample_map=sample_map, study_id=design.study_id
    )
    timings["read"] = time.perf_counter() - t0
    t = time.perf_counter()
    q = quantify(measurements, settings=cal, potency_settings=PotencySettings(ecx=a.ecx))
    q.sources = sources
    timings["quantify"] = time.perf_counter() - t
    t = time.perf_counter()
    hz = assess_hazard(q, design, settings=settings)
    timings["hazard"] = time.perf_counter() - t
    result = AnalysisResult(q, hz, timings)
    if out is not None:
        write_analysis(result, out, pdf=pdf, generated=generated)
    return result


def run_settings(result: AnalysisResult) -> dict:
    """The settings of an analysis as JSON-ready data."""
    from cytosafe import __version__

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

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", file=str(out), field="--out")
    q = result.quantification
    names = list(ANALYSIS_FILES) + (["report.pdf"] if pdf else [])
    with atomic_directory(out, names) as staging:
        t = time.perf_counter()
        tables = dict(result.hazard.tables())
        tables.update(
            {
                "concentrations.csv": q.calibration.wells,
                "samples.csv": q.calibration.samples,
                "curves.csv": q.calibration.curves,
                "qc.csv": q.calibration.qc,
                "potency.csv": q.potency,
            }
        )
        for name, frame in tables.items():
            frame.to_csv(staging / name, index=False, lineterminator="\n")
        with (staging / "settings.json").open("w", encoding="utf-8", newline="\n") as fh:
            json.dump(run_settings(result), fh, indent=2, ensure_ascii=False, default=str)
            fh.write("\n")
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
