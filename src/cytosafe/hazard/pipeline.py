"""The hazard step: calibrated concentrations + study design -> hazard tables.

:func:`assess_hazard` runs the hazard step on calibrated samples (a
:class:`~cytosafe.quantification.QuantificationResult` or its ``samples`` table).
:class:`AnalysisResult` holds a whole analysis (quantification and hazard); the sequence
that reads a study's exports and writes its tables and report is the workflow
:func:`cytosafe.workflows.run_analysis`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cytosafe.errors import InputError
from cytosafe.hazard.classify import benchmark, classify, positive_control_acceptance
from cytosafe.hazard.design import HazardSettings, StudyDesign, design_from_table, load_study
from cytosafe.hazard.response import donor_responses
from cytosafe.hazard.statistics import across_donors, mixed_models

__all__ = ["AnalysisResult", "HazardResult", "assess_hazard"]


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
        """The hazard step's tables by name (the files are ``<name>.csv``)."""
        return {
            "responses": self.responses,
            "summary": self.summary,
            "mixed_models": self.mixed,
            "positive_controls": self.acceptance,
            "benchmark": self.benchmark,
            "ranking": self.ranking,
            "hazard": self.hazard,
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
