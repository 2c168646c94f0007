"""A study in the light of the reference library: what its rule and formats achieved on
the library, and where its test article sits among the compounds tested in the same
format.

* :func:`study_performance` — the calibration (:func:`~cytosafe.reference.evaluate`) of
  the study's responder rule set, restricted to the study's assay formats: sensitivity
  and specificity against clinical CRS with exact intervals, and the compounds missed;
* :func:`place_in_library` — the library's published fold changes in one format beside
  the test article's, ranked, each with its compound's clinical outcome and source.

A study's format names are matched to the library's format keys exactly, or as the
unique key they begin (``pbmc_high_density`` -> ``pbmc_high_density_preculture``).
The library's figures come from the cited publications; the comparison supports, never
replaces, a toxicologist's judgement. A paper's fold change summarises its own donors,
concentration and comparator (given in each row), which are not the study's: the
placement is an orientation, not a like-for-like test.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from cytosafe.errors import InputError
from cytosafe.hazard import RuleSet
from cytosafe.reference.calibration import DISCLAIMER, evaluate
from cytosafe.reference.library import ReferenceLibrary, load_library

__all__ = ["library_format", "place_in_library", "study_performance"]


def library_format(name: str, library: ReferenceLibrary | None = None) -> str | None:
    """The assay-format key of the knowledge base a study's format name stands for."""
    from cytosafe.assays import load_knowledge_base

    key = str(name).strip().lower()
    formats = list(load_knowledge_base().formats)
    if key in formats:
        return key
    starts = [f for f in formats if f.startswith(key)]
    return starts[0] if len(starts) == 1 else None


def study_performance(
    rule_set: str | RuleSet,
    formats: Iterable[str],
    *,
    donors: int | None = None,
    library: ReferenceLibrary | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How the study's rule set and formats did on the reference library.

    ``donors``: the study's donors (a readout whose paper needs more for 90 % power is
    not counted as detected); ``None`` judges every readout on its mean alone.

    Returns ``(performance, misses)``: the rows of the calibration's tables for this rule
    set and these formats, with ``study_format`` (the study's name of the format). A
    study format the library has no evaluable readout in gets a row with zero counts and
    ``note`` saying so.

    Examples
    --------
    >>> perf, _ = study_performance("fold2_above_lloq", ["whole_blood", "pbmc_high_density"])
    >>> sorted(set(perf["format"]))
    ['pbmc_high_density_preculture', 'whole_blood']
    """
    lib = library or load_library()
    ev = evaluate(rule_set, library=lib, donors=donors)
    name = rule_set if isinstance(rule_set, str) else rule_set.name
    rows, misses = [], []
    for study_format in dict.fromkeys(formats):
        key = library_format(study_format, lib)
        perf = ev.performance
        got = perf[(perf["rule_set"] == name) & (perf["format"] == key)] if key else perf.iloc[0:0]
        if got.empty:
            rows.append(
                {
                    "study_format": study_format,
                    "rule_set": name,
                    "format": key,
                    "note": (
                        f"the library holds no readout in {key}"
                        if key
                        else f"{study_format!r} is not a format of the assay knowledge base"
                    ),
                }
            )
            continue
        rows.extend({"study_format": study_format, **r, "note": ""} for r in got.to_dict("records"))
        m = ev.misses
        misses.append(m[(m["rule_set"] == name) & (m["format"] == key)].assign(
            study_format=study_format
        ))  # fmt: skip
    performance = pd.DataFrame(rows)
    missed = pd.concat(misses, ignore_index=True) if misses else ev.misses.iloc[0:0]
    performance.attrs["disclaimer"] = DISCLAIMER
    return performance, missed


def place_in_library(
    assay_format: str,
    fold_change: float,
    *,
    treatment: str = "test article",
    library: ReferenceLibrary | None = None,
) -> pd.DataFrame:
    """The test article's fold change among the library's published fold changes in the
    same format, highest first.

    Only numeric results on a fold-change scale are placed (a published fold change, or
    a concentration with its control value); each row names its analyte, comparator,
    source and location, and the compound's clinical outcome. The test article's row has
    ``compound`` = ``treatment`` and ``source`` = ``this study``.

    Raises
    ------
    InputError
        A fold change that is not a finite number >= 0, or a format the knowledge base
        does not know.

    Examples
    --------
    >>> t = place_in_library("whole_blood", 3.0, treatment="TA-1")
    >>> list(t["compound"])[:3]
    ['alemtuzumab', 'TA-1', 'tgn1412']
    """
    if (
        isinstance(fold_change, bool)
        or not isinstance(fold_change, int | float)
        or not np.isfinite(fold_change)
        or fold_change < 0
    ):
        raise InputError(
            f"{fold_change!r} is not a fold change", field="fold_change", expected="a number >= 0"
        )
    lib = library or load_library()
    key = library_format(assay_format, lib)
    if key is None:
        raise InputError(
            f"{assay_format!r} is not a format of the assay knowledge base",
            field="assay_format",
        )
    rows = []
    for c in lib.compounds.values():
        for r in c.readouts:
            if r.format != key or r.value_high is not None:
                continue
            if r.measure == "fold_change":
                fc = r.value
            elif r.measure == "concentration" and r.control_value:
                fc = r.value / r.control_value
            else:
                continue
            rows.append(
                {
                    "compound": c.key,
                    "name": c.name,
                    "fold_change": fc,
                    "analyte": r.analyte,
                    "comparator": r.comparator,
                    "crs_any": c.clinical.crs_any,
                    "crs_severe": c.clinical.crs_severe,
                    "source": lib.sources[r.citation].citation,
                    "location": r.location,
                    "confirmed": r.confirmed,
                }
            )
    rows.append(
        {
            "compound": treatment,
            "name": treatment,
            "fold_change": float(fold_change),
            "analyte": "",
            "comparator": "",
            "crs_any": None,
            "crs_severe": None,
            "source": "this study",
            "location": "",
            "confirmed": None,
        }
    )
    table = pd.DataFrame(rows).sort_values("fold_change", ascending=False, kind="stable")
    table.insert(0, "format", key)
    table["rank"] = np.arange(1, len(table) + 1)
    table.attrs["disclaimer"] = DISCLAIMER
    return table.reset_index(drop=True)
