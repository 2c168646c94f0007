"""Cohort summaries in the layout of a product label's CRS table, and scale concordance.

Incidence is a proportion of patients with an exact two-sided 95% Clopper-Pearson
interval (Clopper CJ, Pearson ES. The use of confidence or fiducial limits illustrated in
the case of the binomial. Biometrika. 1934;26(4):404-413), computed with
``statsmodels.stats.proportion.proportion_confint(method="beta")``. Onset and duration
are medians with ranges over the patients who had CRS (of any grade) under the scale.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from cytosafe.clinical.scales import SCALES

__all__ = ["COHORT_COLUMNS", "CONCORDANCE_COLUMNS", "cohort_summary", "concordance", "incidence"]

#: The columns of :func:`concordance` (``concordance.csv``).
CONCORDANCE_COLUMNS = (
    "scale", "reference", "n_patients", "any_grade", "grade_ge3", "same_grade",
    "same_diagnosis", "higher", "lower", *(f"grade_{k}" for k in range(6)),
)  # fmt: skip

COHORT_COLUMNS = (
    "scale", "scale_version", "measure", "n", "N", "percent", "ci_low", "ci_high",
    "median", "min", "max", "text",
)  # fmt: skip


def incidence(n: int, total: int, alpha: float = 0.05) -> tuple[float, float, float]:
    """Percent and exact (Clopper-Pearson) 1 - ``alpha`` interval of ``n`` of ``total``, in percent."""
    if total == 0:
        return float("nan"), float("nan"), float("nan")
    lo, hi = proportion_confint(n, total, alpha=alpha, method="beta")
    lo = 0.0 if n == 0 else float(lo)
    hi = 1.0 if n == total else float(hi)
    return 100.0 * n / total, 100.0 * lo, 100.0 * hi


def _row(scale, version, measure, n=None, total=None, values=None, unit="") -> dict:
    row = dict.fromkeys(COHORT_COLUMNS, np.nan)
    row.update(scale=scale, scale_version=version, measure=measure)
    if n is not None:
        pct, lo, hi = incidence(n, total)
        row.update(n=n, N=total, percent=round(pct, 1), ci_low=round(lo, 1), ci_high=round(hi, 1))
        row["text"] = f"{n} ({pct:.1f}%) [95% CI {lo:.1f}-{hi:.1f}]" if total else "-"
    elif values is not None:
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        row.update(n=len(v), N=total)
        if len(v):
            med, lo, hi = float(np.median(v)), float(v.min()), float(v.max())
            row.update(median=round(med, 2), min=round(lo, 2), max=round(hi, 2))
            row["text"] = f"{med:.1f} ({lo:.1f}-{hi:.1f}) {unit}".strip()
        else:
            row["text"] = "-"
    return row


def cohort_summary(patients: pd.DataFrame) -> pd.DataFrame:
    """The cohort table of each scale, one row per measure (columns :data:`COHORT_COLUMNS`).

    Measures: ``patients``; ``any grade``; ``grade >= 3``; ``grade 1`` ... ``grade 5``
    (patients by their maximum grade); ``median onset, hours`` and ``median duration,
    hours`` (median and range over patients with CRS); ``deaths due to CRS``.

    Parameters
    ----------
    patients:
        :attr:`cytosafe.clinical.GradeResult.patients`.
    """
    rows = []
    for scale, p in patients.groupby("scale", sort=False):
        version = p["scale_version"].iat[0]
        total = len(p)
        g = p["max_grade"].to_numpy()
        rows.append(
            {**_row(scale, version, "patients"), "N": total, "n": total, "text": str(total)}
        )
        rows.append(_row(scale, version, "any grade", int((g >= 1).sum()), total))
        rows.append(_row(scale, version, "grade >= 3", int((g >= 3).sum()), total))
        for k in range(1, 6):
            rows.append(_row(scale, version, f"grade {k}", int((g == k).sum()), total))
        had = p[g >= 1]
        rows.append(
            _row(
                scale,
                version,
                "median onset, hours",
                values=had["onset_hours"],
                total=len(had),
                unit="h",
            )
        )
        rows.append(
            _row(
                scale,
                version,
                "median duration, hours",
                values=had["duration_hours"],
                total=len(had),
                unit="h",
            )
        )
    return pd.DataFrame(rows, columns=list(COHORT_COLUMNS))


def concordance(
    patients: pd.DataFrame, reference: str | None = None, *, kind: str = "CRS"
) -> pd.DataFrame:
    """Side-by-side maximum grades of one cohort graded under several scales of one kind.

    Only scales of ``kind`` are compared: CRS scales with CRS scales; ICANS, a different
    syndrome, is never among them (its grades stay in the patients and cohort tables).

    Parameters
    ----------
    patients:
        :attr:`cytosafe.clinical.GradeResult.patients` of a call with several scales.
    reference:
        The scale the others are compared with (default: the first of ``kind``).
    kind:
        ``"CRS"`` (default) or ``"ICANS"``.

    Returns
    -------
    pandas.DataFrame
        One row per scale: ``scale, reference, n_patients, any_grade, grade_ge3,
        same_grade, same_diagnosis, higher, lower`` plus ``grade_0`` ... ``grade_5``
        (patients by maximum grade). ``same_grade`` and ``same_diagnosis`` (both CRS or
        both not) count patients agreeing with the reference; ``higher``/``lower`` those
        graded above/below it.
    """
    patients = patients[[SCALES[str(s)].KIND == kind for s in patients["scale"]]]
    scales = list(dict.fromkeys(patients["scale"]))
    if not scales:
        return pd.DataFrame(columns=list(CONCORDANCE_COLUMNS))
    wide = patients.pivot(index="patient_id", columns="scale", values="max_grade")
    ref = reference or scales[0]
    if ref not in wide.columns:
        raise KeyError(f"reference scale {ref!r} was not graded (among the {kind} scales)")
    rows = []
    r = wide[ref]
    for s in scales:
        x = wide[s]
        row = {
            "scale": s,
            "reference": ref,
            "n_patients": int(x.notna().sum()),
            "any_grade": int((x >= 1).sum()),
            "grade_ge3": int((x >= 3).sum()),
            "same_grade": int((x == r).sum()),
            "same_diagnosis": int(((x >= 1) == (r >= 1)).sum()),
            "higher": int((x > r).sum()),
            "lower": int((x < r).sum()),
        }
        for k in range(6):
            row[f"grade_{k}"] = int((x == k).sum())
        rows.append(row)
    return pd.DataFrame(rows, columns=list(CONCORDANCE_COLUMNS))
