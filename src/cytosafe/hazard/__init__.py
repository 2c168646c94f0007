"""Hazard identification: from calibrated concentrations to a CRS hazard call.

Stages, each a plain function from tidy tables to tidy tables:

* :func:`load_study` / :func:`design_from_table` — the study design (roles, matched
  controls, settings), validated;
* :func:`donor_responses` — fold change and increase of every donor culture over its
  matched negative control, with the responder call and the rule that fired;
* :func:`across_donors` and :func:`mixed_models` — responder counts, paired Wilcoxon
  tests, geometric mean ratios, multiplicity control, donor random-effect models;
* :func:`positive_control_acceptance`, :func:`benchmark`, :func:`classify` — assay
  validity, ranking against benchmark drugs, hazard classes with reasons;
* :func:`call_summary` — a rule set applied to summary values (a published fold change,
  increase or percent of the positive control) instead of donor cultures, as the
  reference library's calibration does;
* :func:`assess_hazard` (all of the above). The whole analysis from a study file
  (quantification, hazard, tables and report) is the workflow :func:`cytosafe.analyze`
  (:func:`cytosafe.workflows.run_analysis`).
"""

from cytosafe.hazard.classify import benchmark, classify, positive_control_acceptance
from cytosafe.hazard.design import (
    HazardSettings,
    StudyDesign,
    TreatmentDesign,
    design_from_table,
    load_study,
)
from cytosafe.hazard.pipeline import AnalysisResult, HazardResult, assess_hazard
from cytosafe.hazard.response import donor_responses
from cytosafe.hazard.rules import Rule, RuleSet, get_classification, get_rule_set, presets
from cytosafe.hazard.statistics import (
    across_donors,
    adjust_pvalues,
    geometric_mean_ratio,
    mixed_models,
    paired_wilcoxon,
)
from cytosafe.hazard.summary import SummaryCall, call_summary

__all__ = [
    "AnalysisResult",
    "HazardResult",
    "HazardSettings",
    "Rule",
    "RuleSet",
    "StudyDesign",
    "SummaryCall",
    "TreatmentDesign",
    "across_donors",
    "adjust_pvalues",
    "assess_hazard",
    "benchmark",
    "call_summary",
    "classify",
    "design_from_table",
    "donor_responses",
    "geometric_mean_ratio",
    "get_classification",
    "get_rule_set",
    "load_study",
    "mixed_models",
    "paired_wilcoxon",
    "positive_control_acceptance",
    "presets",
]
