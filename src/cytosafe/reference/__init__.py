"""Reference compounds: published CRA results and clinical outcomes, and the calibration
of CytoSafe's hazard call against them.

* :func:`load_library` — the cited library (``data/reference_compounds.toml``), validated
  into typed records (:class:`Compound`, :class:`Readout`, :class:`ClinicalOutcome`);
* :func:`evaluate` — each responder rule set applied to the library's published readouts
  per assay format, with sensitivity and specificity against clinical CRS (any grade,
  grade >= 3), exact (Clopper-Pearson) 95 % intervals, and the compounds each format
  misses with the mechanism that explains the miss; a result counts as detected only
  when a study of the cited donor panel (:func:`donor_panel`) would have had the power
  to show it, and :func:`detection_by_panel` how likely panels of other sizes are to
  show each response (:mod:`cytosafe.reference.power`);
* :func:`study_performance` and :func:`place_in_library` — a study's rule set and formats
  on the library, and its test article's fold change among the library's compounds
  tested in the same format.

The library's figures come from the cited publications; CytoSafe's calls support, never
replace, a toxicologist's judgement.
"""

from cytosafe.reference.calibration import (
    DISCLAIMER,
    ENDPOINTS,
    PANEL,
    Evaluation,
    clopper_pearson,
    detection_by_panel,
    donor_panel,
    evaluate,
    expected_detection,
    summary_markdown,
)
from cytosafe.reference.context import library_format, place_in_library, study_performance
from cytosafe.reference.library import (
    ClinicalOutcome,
    Compound,
    DonorPanel,
    Readout,
    ReferenceLibrary,
    Source,
    load_library,
)

__all__ = [
    "DISCLAIMER",
    "ENDPOINTS",
    "PANEL",
    "ClinicalOutcome",
    "Compound",
    "DonorPanel",
    "Evaluation",
    "Readout",
    "ReferenceLibrary",
    "Source",
    "clopper_pearson",
    "detection_by_panel",
    "donor_panel",
    "evaluate",
    "expected_detection",
    "library_format",
    "load_library",
    "place_in_library",
    "study_performance",
    "summary_markdown",
]
