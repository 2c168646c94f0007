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

from cytosafe.workflows.analysis import (
    ANALYSIS_FILES,
    ANALYSIS_TABLES,
    analysis_settings,
    analysis_tables,
    run_analysis,
    write_analysis,
)
from cytosafe.workflows.grading import (
    GRADING_FILES,
    GRADING_TABLES,
    grading_settings,
    grading_tables,
    run_grading,
    write_grading,
)
from cytosafe.workflows.quantification import (
    QUANTIFICATION_FILES,
    QUANTIFICATION_TABLES,
    quantification_settings,
    quantification_tables,
    run_quantification,
    store_quantification,
    write_quantification,
)

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
