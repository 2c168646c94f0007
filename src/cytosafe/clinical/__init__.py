"""Clinical grading of cytokine release syndrome (CRS) and ICANS.

From patients' vital signs and treatments (the observation table,
:mod:`cytosafe.clinical.observations`) to a graded timeline, episodes, per-patient and
cohort summaries, under every published scale (:mod:`cytosafe.clinical.scales`; criteria
in ``data/clinical_scales.toml``); laboratory values (:mod:`cytosafe.clinical.labs`) and
published predictors of severe CRS (:mod:`cytosafe.clinical.predict`), which support a
clinician's judgement and do not replace it; live, incremental grading, prediction and
alerts (:class:`~cytosafe.clinical.monitor.Monitor`). Vectorised over all patients; Dask DataFrames
partitioned by patient are accepted.

>>> from cytosafe.clinical import grade, concordance   # doctest: +SKIP
>>> result = grade("observations.csv", scale=["astct2019", "lee2014"])  # doctest: +SKIP
>>> concordance(result.patients)  # doctest: +SKIP
"""

from cytosafe.clinical.episodes import episodes, patient_summary
from cytosafe.clinical.grading import GradeResult, grade, scale_label
from cytosafe.clinical.monitor import Monitor
from cytosafe.clinical.predict import performance, predict
from cytosafe.clinical.scales import DEFAULT_SCALE, SCALES
from cytosafe.clinical.summary import cohort_summary, concordance, incidence
from cytosafe.schema.observations import (
    ITEMS,
    Observations,
    read_observations,
    validate_observations,
)

__all__ = [
    "DEFAULT_SCALE",
    "ITEMS",
    "SCALES",
    "GradeResult",
    "Monitor",
    "Observations",
    "cohort_summary",
    "concordance",
    "episodes",
    "grade",
    "incidence",
    "patient_summary",
    "performance",
    "predict",
    "read_observations",
    "scale_label",
    "validate_observations",
]
