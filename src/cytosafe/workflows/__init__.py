"""Workflows: the named sequences every face runs (quantify, analyze, grade).

A workflow reads inputs, calls the analysis packages, names the result tables, records the
run's settings and writes the output directory (tables, ``settings.json``, report) all or
nothing. The command line (:mod:`cytosafe.cli`), the web app's jobs (:mod:`cytosafe.web`)
and ``cytosafe store import`` all call these functions, so one run gives the same tables
whichever face started it. Workflows sit above the analysis packages and the reports and
below the faces; nothing in them prints or parses arguments.

| workflow | run | tables | settings | write |
|---|---|---|---|---|
| quantification | :func:`run_quantification` | :func:`quantification_tables` | :func:`quantification_settings` | :func:`write_quantification`, :func:`store_quantification` |
| analysis (quantification + hazard) | :func:`run_analysis` | :func:`analysis_tables` | :func:`analysis_settings` | :func:`write_analysis` |
| clinical grading | :func:`run_grading` | :func:`grading_tables` | :func:`grading_settings` | :func:`write_grading` |
"""

from __future__ import annotations

import importlib

#: Each public name's module, imported on first use: a quantification run does not load
#: the analysis workflow's study design (pydantic) or the grading scales.
_HOME = {
    **dict.fromkeys(
        (
            "ANALYSIS_FILES",
            "ANALYSIS_TABLES",
            "analysis_settings",
            "analysis_tables",
            "run_analysis",
            "write_analysis",
        ),
        "cytosafe.workflows.analysis",
    ),
    **dict.fromkeys(
        (
            "GRADING_FILES",
            "GRADING_TABLES",
            "grading_settings",
            "grading_tables",
            "run_grading",
            "write_grading",
        ),
        "cytosafe.workflows.grading",
    ),
    **dict.fromkeys(
        (
            "QUANTIFICATION_FILES",
            "QUANTIFICATION_TABLES",
            "quantification_settings",
            "quantification_tables",
            "run_quantification",
            "store_quantification",
            "write_quantification",
        ),
        "cytosafe.workflows.quantification",
    ),
}


def __getattr__(name: str):
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'cytosafe.workflows' has no attribute '{name}'")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})


__all__ = [
    "ANALYSIS_FILES",
    "ANALYSIS_TABLES",
    "GRADING_FILES",
    "GRADING_TABLES",
    "QUANTIFICATION_FILES",
    "QUANTIFICATION_TABLES",
    "analysis_settings",
    "analysis_tables",
    "grading_settings",
    "grading_tables",
    "quantification_settings",
    "quantification_tables",
    "run_analysis",
    "run_grading",
    "run_quantification",
    "store_quantification",
    "write_analysis",
    "write_grading",
    "write_quantification",
]
