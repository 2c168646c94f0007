"""Published predictors of severe CRS as cited, versioned rules, and their performance.

**Predictors support a clinician's judgement and do not replace it.** Every row this
module returns says so (column ``note``).

The rules live in ``data/crs_predictors.toml`` with their source, the table or figure,
the population, the outcome they predict, the reported performance and how each number
was checked (``status``: ``confirmed`` in the source, ``secondary`` as quoted elsewhere,
``unconfirmed`` and left out). A number that could not be read is never filled in: the
predictor, or the part that needs it, is *not evaluable*. At version 1:

* ``hay2017`` (Hay et al., Blood 2017;130:2295) - a tree: a temperature >= 38.9 C within
  36 h of the infusion, and MCP-1 >= 1343.5 pg/mL within 36 h, predict grade >= 4 CRS.
  The tree's numbers were read in a secondary source (``status = "secondary"``).
* ``pennisi2021`` (Pennisi et al., Blood Adv 2021;5:3397) - the modified EASIX, LDH [U/L]
  x CRP [mg/dL] / platelets [10^9/L], at lymphodepletion, day -1, day +1 or day +3
  (confirmed from the abstract); the paper's cut-offs were not read, so the score is
  given and the call is not evaluable unless a cut-off is supplied.
* ``teachey2016`` (Teachey et al., Cancer Discov 2016;6:664) - the three-cytokine
  regression model: its coefficients were not read, so it is never evaluable.

A predictor whose inputs are missing says ``not evaluable`` and which inputs are missing,
never "negative": a negative call needs every input the rule reads.

Performance against graded outcomes (:func:`performance`): sensitivity, specificity, PPV
and NPV with exact Clopper-Pearson intervals, the AUC with the Hanley-McNeil interval,
and the lead time: hours from the first positive call to the first grade >= 3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cytosafe import data
from cytosafe.clinical.summary import incidence
from cytosafe.errors import InputError
from cytosafe.schema.observations import Observations

__all__ = [
    "DISCLAIMER",
    "PREDICTION_COLUMNS",
    "Performance",
    "performance",
    "predict",
    "predictor_spec",
    "predictors",
]

_FILE = "crs_predictors.toml"
_SCHEMA = "cytosafe.crs_predictors"

#: Said by every output that shows a prediction.
DISCLAIMER = "Predictors support a clinician's judgement and do not replace it."

PREDICTION_COLUMNS = (
    "patient_id", "predictor", "rule_version", "status", "score", "score_unit", "cutoff",
    "cutoff_source", "outcome", "missing", "inputs", "inputs_time", "positive_time",
    "positive_hours", "evaluated_at_hours", "rule_status", "reason", "note",
)  # fmt: skip

POSITIVE, NEGATIVE, NOT_EVALUABLE = "positive", "negative", "not evaluable"


def predictors() -> dict[str, dict[str, Any]]:
    """Every predictor of ``data/crs_predictors.toml`` by name (read only)."""
    return data.load(_FILE, schema=_SCHEMA)["predictor"]


def predictor_spec(name: str) -> dict[str, Any]:
    """One predictor's entry; an unknown name is an :class:`InputError` listing the known."""
    spec = predictors()
    if name not in spec:
        raise InputError(
            f"unknown predictor '{name}'", field="predictor", expected=" | ".join(spec)
        )
    return spec[name]


def _rule_version(name: str, spec: dict) -> str:
    return f"{name} {spec['version']} (crs_predictors.toml v{data.load(_FILE)['version']})"


def _observations(observations: Any, errors: str, timezone: str | None) -> Observations:
    # the grading module already knows every accepted input (DataFrame, path, Observations)
    from cytosafe.clinical.grading import _as_observations

    return _as_observations(observations, None, errors, timezone)


@dataclass
class _Patient:
    pid: str
    zero: pd.Timestamp | None
    rows: pd.DataFrame  # item, value_num, time, hours


def _patients(obs: Observations) -> list[_Patient]:
    t = obs.table
    t = t.assign(item=t["item"].astype(str), patient_id=t["patient_id"].astype(str))
    out = []
    for pid, rows in t.groupby("patient_id", sort=True, observed=True):
        inf = rows.loc[rows["item"] == "infusion", "time"]
        zero = inf.min() if len(inf) else None
        hours = (
            (rows["time"] - zero).dt.total_seconds() / 3600.0
            if zero is not None
            else pd.Series(np.nan, index=rows.index)
        )
        out.append(_Patient(pid, zero, rows.assign(hours=hours)))
    return out


def _in(p: _Patient, item: str, lo: float, hi: float, at: float | None) -> pd.DataFrame:
    r = p.rows
    sel = (r["item"] == item) & (r["hours"] >= lo) & (r["hours"] <= hi)
    if at is not None:
        sel &= r["hours"] <= at
    return r.loc[sel].sort_values("time")


def _positive_at(p, t) -> dict:
    """When the call turned positive: the time and the hours since the infusion."""
    return {
        "positive_time": _fmt_time(t),
        "positive_hours": round(float((t - p.zero).total_seconds() / 3600), 4),
    }


def _fmt_time(t) -> str:
    return "" if t is None or pd.isna(t) else pd.Timestamp(t).isoformat()


def _row(p: _Patient, name: str, spec: dict, at: float | None, **values) -> dict:
    row = dict.fromkeys(PREDICTION_COLUMNS, "")
    row.update(
        patient_id=p.pid,
        predictor=name,
        rule_version=_rule_version(name, spec),
        score=np.nan,
        cutoff=np.nan,
        positive_hours=np.nan,
        evaluated_at_hours=np.nan if at is None else float(at),
        outcome=spec.get("outcome", ""),
        rule_status=spec.get("status", ""),
        note=DISCLAIMER,
    )
    row.update(values)
    return row


def _hay(p: _Patient, name: str, spec: dict, at: float | None, cutoffs: dict) -> dict:
    lo, hi = (float(x) for x in spec["window_hours"])
    fever_c = float(spec["fever"]["at_least"])
    cut = cutoffs.get("mcp1", spec["mcp1"].get("at_least"))
    cut_source = (
        "user-supplied cut-off"
        if "mcp1" in cutoffs
        else f"MCP-1 >= {cut} pg/mL ({spec['mcp1']['status']})"
    )
    temps = _in(p, "temperature", lo, hi, at)
    mcp = _in(p, "mcp1", lo, hi, at)
    fever = temps.loc[temps["value_num"] >= fever_c]
    score = float(mcp["value_num"].max()) if len(mcp) else np.nan
    inputs = []
    if len(temps):
        top = temps.loc[temps["value_num"].idxmax()]
        inputs.append(f"max temperature {top['value_num']:.1f} C at {_fmt_time(top['time'])}")
    if len(mcp):
        top = mcp.loc[mcp["value_num"].idxmax()]
        inputs.append(f"max MCP-1 {top['value_num']:.6g} pg/mL at {_fmt_time(top['time'])}")
    last = max([t for t in (temps["time"].max(), mcp["time"].max()) if pd.notna(t)], default=None)
    base = dict(
        score=score,
        score_unit="pg/mL (max MCP-1 in the window)",
        cutoff=np.nan if cut is None else float(cut),
        cutoff_source=cut_source,
        inputs="; ".join(inputs),
        inputs_time=_fmt_time(last),
    )
    window = f"{lo:g}-{hi:g} h"
    if cut is None:
        return _row(p, name, spec, at, status=NOT_EVALUABLE, reason="no MCP-1 cut-off", **base)
    high = mcp.loc[mcp["value_num"] >= float(cut)]
    if len(fever) and len(high):
        t = max(fever["time"].iat[0], high["time"].iat[0])
        return _row(
            p,
            name,
            spec,
            at,
            status=POSITIVE,
            **_positive_at(p, t),
            reason=f"temperature >= {fever_c:g} C and MCP-1 >= {float(cut):g} pg/mL within {window}",
            **base,
        )
    complete = at is None or at >= hi
    if len(fever) and not len(mcp):
        return _row(
            p,
            name,
            spec,
            at,
            status=NOT_EVALUABLE,
            missing=f"mcp1 ({window})",
            reason=f"fever >= {fever_c:g} C without an MCP-1 in {window}",
            **base,
        )
    if not complete:
        return _row(
            p,
            name,
            spec,
            at,
            status=NOT_EVALUABLE,
            missing=f"the rest of the window ({window}; evaluated at {at:g} h)",
            reason="window not complete and not positive so far",
            **base,
        )
    if not len(temps):
        return _row(
            p,
            name,
            spec,
            at,
            status=NOT_EVALUABLE,
            missing=f"temperature ({window})",
            reason="no temperature in the window",
            **base,
        )
    why = (
        f"no temperature >= {fever_c:g} C in {window}"
        if not len(fever)
        else f"MCP-1 below {float(cut):g} pg/mL throughout {window}"
    )
    return _row(p, name, spec, at, status=NEGATIVE, reason=why, **base)


def _pennisi(
    p: _Patient, name: str, spec: dict, at: float | None, cutoffs: dict, timepoint: str
) -> dict:
    points = spec["timepoints"]
    if timepoint not in points:
        raise InputError(
            f"unknown time point '{timepoint}' of {name}",
            field="timepoint",
            expected=" | ".join(points),
        )
    lo, hi = (float(x) for x in points[timepoint]["window_hours"])
    values, times, missing = {}, [], []
    for item in spec["inputs"]:
        r = _in(p, item, lo, hi, at)
        if len(r):
            values[item] = float(r["value_num"].iat[-1])
            times.append(r["time"].iat[-1])
        else:
            missing.append(f"{item} ({points[timepoint]['text']}, {lo:g} to {hi:g} h)")
    cut = cutoffs.get("m_easix")
    base = dict(
        score_unit=spec["score_unit"],
        cutoff=np.nan if cut is None else float(cut),
        cutoff_source="user-supplied cut-off" if cut is not None else "no confirmed cut-off",
        inputs="; ".join(
            f"{k} {v:.6g} at {_fmt_time(t)}"
            for (k, v), t in zip(values.items(), times, strict=True)
        ),
        inputs_time=_fmt_time(max(times)) if times else "",
        reason=f"m-EASIX at {points[timepoint]['text']}",
    )
    if p.zero is None:
        return _row(p, name, spec, at, status=NOT_EVALUABLE, missing="infusion (hour 0)", **base)
    if missing:
        return _row(p, name, spec, at, status=NOT_EVALUABLE, missing="; ".join(missing), **base)
    if values["platelets"] <= 0:
        return _row(
            p, name, spec, at, status=NOT_EVALUABLE, missing="a platelet count above 0", **base
        )
    # CRP is held in mg/L; the index takes it in mg/dL (Pennisi 2021, abstract)
    score = values["ldh"] * (values["crp"] / 10.0) / values["platelets"]
    base["score"] = round(score, 6)
    if cut is None:
        return _row(
            p,
            name,
            spec,
            at,
            status=NOT_EVALUABLE,
            missing="a confirmed m-EASIX cut-off (give one with cutoffs={'m_easix': x})",
            **base,
        )
    if score >= float(cut):
        t = max(times)
        return _row(
            p,
            name,
            spec,
            at,
            status=POSITIVE,
            **_positive_at(p, t),
            **base,
        )
    return _row(p, name, spec, at, status=NEGATIVE, **base)


def _teachey(p: _Patient, name: str, spec: dict, at: float | None) -> dict:
    missing = [i for i in spec["inputs"] if not len(_in(p, i, -np.inf, np.inf, at))]
    return _row(
        p,
        name,
        spec,
        at,
        status=NOT_EVALUABLE,
        missing="; ".join(["the model's coefficients (not confirmed from the source)", *missing]),
        reason="model form and coefficients not read in the source; never evaluated",
    )


def predict(
    observations: Any,
    predictor: str = "hay2017",
    *,
    at: float | Mapping[str, float | None] | None = None,
    timepoint: str = "day_plus1",
    cutoffs: dict[str, float] | None = None,
    errors: str = "raise",
    timezone: str | None = None,
) -> pd.DataFrame:
    """One prediction per patient under one published predictor.

    Parameters
    ----------
    observations:
        The observation table with laboratory items (a DataFrame, a CSV/XLSX path or
        validated :class:`~cytosafe.schema.observations.Observations`).
    predictor:
        ``"hay2017"``, ``"pennisi2021"`` or ``"teachey2016"`` (``data/crs_predictors.toml``).
    at:
        Hours after the infusion at which to predict: only observations up to then are
        read (a bedside call at that hour). ``None``: all observations. A mapping gives
        each patient its own hour (``None`` or absent: all of theirs), as the bedside
        monitor does (:mod:`cytosafe.clinical.monitor`).
    timepoint:
        For ``pennisi2021``: ``lymphodepletion``, ``day_minus1``, ``day_plus1`` or
        ``day_plus3`` (windows in the data file).
    cutoffs:
        Cut-offs that replace the file's (``{"mcp1": pg/mL}`` for hay2017, ``{"m_easix":
        value}`` for pennisi2021); rows then say ``user-supplied cut-off``.
    errors, timezone:
        As for :func:`~cytosafe.schema.observations.validate_observations`.

    Returns
    -------
    pandas.DataFrame
        :data:`PREDICTION_COLUMNS`: ``status`` is ``positive``, ``negative`` or ``not
        evaluable`` (with ``missing`` naming what was missing), ``score`` and its unit,
        the cut-off and where it comes from, the inputs with their times, the time and
        hour the call first became positive, the rule version and its checking status,
        and the :data:`DISCLAIMER` in ``note``.
    """
    spec = predictor_spec(str(predictor))
    cutoffs = dict(cutoffs or {})
    known = {"hay2017": {"mcp1"}, "pennisi2021": {"m_easix"}}.get(predictor, set())
    for key, value in cutoffs.items():
        if key not in known:
            raise InputError(
                f"'{key}' is not a cut-off of {predictor}",
                field="cutoff",
                expected=" | ".join(sorted(known)) or "none (this predictor takes no cut-off)",
            )
        try:
            cutoffs[key] = float(value)
        except (TypeError, ValueError):
            raise InputError(
                f"cut-off {key}={value!r} is not a number", field="cutoff", expected="a number"
            ) from None
    per_patient = dict(at) if isinstance(at, Mapping) else None
    if per_patient is not None:
        per_patient = {k: _hours(v) for k, v in per_patient.items()}
    else:
        at = _hours(at)
    obs = _observations(observations, errors, timezone)
    rows = []
    for p in _patients(obs):
        if per_patient is not None:
            at = per_patient.get(p.pid)
        if p.zero is None and spec["kind"] != "logistic":
            rows.append(
                _row(
                    p,
                    predictor,
                    spec,
                    at,
                    status=NOT_EVALUABLE,
                    missing="infusion (hour 0)",
                    reason="no infusion: the windows count from it",
                )
            )
        elif spec["kind"] == "tree":
            rows.append(_hay(p, predictor, spec, at, cutoffs))
        elif spec["kind"] == "index":
            rows.append(_pennisi(p, predictor, spec, at, cutoffs, timepoint))
        else:
            rows.append(_teachey(p, predictor, spec, at))
    out = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
    return out


def _hours(at: Any) -> float | None:
    if at is None:
        return None
    try:
        return float(at)
    except (TypeError, ValueError):
        raise InputError(
            f"--at {at!r} is not a number of hours", field="at", expected="hours"
        ) from None


# ---------------------------------------------------------------------------------------
# Performance against graded outcomes


@dataclass
class Performance:
    """What :func:`performance` returns.

    Attributes
    ----------
    metrics:
        One row per measure (``sensitivity, specificity, ppv, npv, auc, lead_time_hours``):
        ``n, N, value, ci_low, ci_high, method, text``; proportions in percent.
    patients:
        Per patient: the call, ``severe`` (the predictor's outcome), ``max_grade``,
        ``first_grade3_hours`` and ``lead_hours`` (first grade >= 3 minus the hour the
        call turned positive; positive calls of patients who reached grade >= 3).
    confusion:
        ``tp, fp, fn, tn, not_evaluable``.
    """

    metrics: pd.DataFrame
    patients: pd.DataFrame
    confusion: dict[str, int]


def _auc(score: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """Mann-Whitney AUC and the Hanley-McNeil (1982) 95% Wald interval, clipped to [0, 1]."""
    pos, neg = score[truth], score[~truth]
    n1, n0 = len(pos), len(neg)
    if n1 == 0 or n0 == 0:
        return np.nan, np.nan, np.nan
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    a = float(greater / (n1 * n0))
    # Hanley JA, McNeil BJ. Radiology. 1982;143(1):29-36, equation (2)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)
    se = float(np.sqrt(max(var, 0.0)))
    return a, max(0.0, a - 1.959964 * se), min(1.0, a + 1.959964 * se)


def _outcomes(outcomes: Any, scale: str | None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    patients = getattr(outcomes, "patients", outcomes)
    timeline = getattr(outcomes, "timeline", None)
    if not isinstance(patients, pd.DataFrame) or not {"patient_id", "max_grade"} <= set(
        patients.columns
    ):
        raise InputError(
            "outcomes must be a grading result or its patients table",
            field="outcomes",
            expected="cytosafe.clinical.grade(...) or a table with patient_id and max_grade",
        )
    if "scale" in patients.columns:
        scales = list(dict.fromkeys(patients["scale"].astype(str)))
        use = scale or scales[0]
        if use not in scales:
            raise InputError(
                f"the outcomes hold no scale '{use}'", field="scale", expected=" | ".join(scales)
            )
        patients = patients.loc[patients["scale"].astype(str) == use]
        if timeline is not None:
            timeline = timeline.loc[timeline["scale"].astype(str) == use]
    return patients, timeline


def performance(
    predictions: pd.DataFrame,
    outcomes: Any,
    *,
    min_grade: int | None = None,
    scale: str | None = None,
    alpha: float = 0.05,
) -> Performance:
    """Sensitivity, specificity, PPV, NPV, AUC and lead time of predictions against grades.

    Parameters
    ----------
    predictions:
        :func:`predict` output (one predictor).
    outcomes:
        A :class:`~cytosafe.clinical.GradeResult` (its timeline gives the lead time) or its
        ``patients`` table (``patient_id, max_grade``; no lead time).
    min_grade:
        The grade that counts as the predicted outcome (default: the predictor's
        ``outcome_min_grade``, e.g. 4 for hay2017, 3 for pennisi2021).
    scale:
        The grading scale of the outcomes (default: the first graded).

    Patients whose call is *not evaluable* are counted apart (``not_evaluable``), never as
    negatives. Proportions have exact two-sided Clopper-Pearson intervals
    (:func:`cytosafe.clinical.summary.incidence`). The AUC is the Mann-Whitney statistic
    of an index's ``score`` over every patient with one (no cut-off needed), and of a
    tree's positive/negative call over its evaluable patients, with the Hanley-McNeil
    interval (not exact: an approximation, said in ``method``).
    Lead time: hours from the hour the call first turned positive to the first grade >= 3
    of the timeline, over true positives who reached grade >= 3.
    """
    names = set(predictions["predictor"].astype(str))
    if len(names) != 1:
        raise InputError(
            "performance takes the predictions of one predictor",
            field="predictor",
            expected="one predictor per table",
        )
    name = names.pop()
    spec = predictor_spec(name)
    if min_grade is None:
        min_grade = int(spec.get("outcome_min_grade", 3))
    patients, timeline = _outcomes(outcomes, scale)
    grades = patients.assign(patient_id=patients["patient_id"].astype(str)).set_index("patient_id")[
        "max_grade"
    ]
    p = predictions.assign(patient_id=predictions["patient_id"].astype(str)).copy()
    p["max_grade"] = p["patient_id"].map(grades)
    p = p.loc[p["max_grade"].notna()].copy()
    p["severe"] = p["max_grade"].astype(float) >= min_grade
    first3 = pd.Series(dtype=float)
    if timeline is not None and len(timeline):
        t = timeline.loc[timeline["grade"].astype(float) >= 3]
        first3 = (
            t.assign(patient_id=t["patient_id"].astype(str)).groupby("patient_id")["hours"].min()
        )
    p["first_grade3_hours"] = p["patient_id"].map(first3).astype(float)
    ev = p["status"] != NOT_EVALUABLE
    pos = p["status"] == POSITIVE
    sev = p["severe"].to_numpy(dtype=bool)
    tp = int((pos & p["severe"]).sum())
    fp = int((pos & ~p["severe"]).sum())
    fn = int((ev & ~pos & p["severe"]).sum())
    tn = int((ev & ~pos & ~p["severe"]).sum())
    p["lead_hours"] = np.where(
        pos & p["first_grade3_hours"].notna(),
        p["first_grade3_hours"] - p["positive_hours"].astype(float),
        np.nan,
    )
    rows = []
    for measure, n, total in (
        ("sensitivity", tp, tp + fn),
        ("specificity", tn, tn + fp),
        ("ppv", tp, tp + fp),
        ("npv", tn, tn + fn),
    ):
        pct, lo, hi = incidence(n, total, alpha)
        text = f"{n}/{total} = {pct:.1f}% [{lo:.1f}-{hi:.1f}]" if total else "- (no patients)"
        rows.append(
            dict(
                measure=measure,
                n=n,
                N=total,
                value=pct,
                ci_low=lo,
                ci_high=hi,
                method="exact Clopper-Pearson",
                text=text,
            )
        )
    # A score's discrimination needs no cut-off: the AUC of an index (m-EASIX) is over every
    # patient with a score, as the paper reports it; a tree's over its evaluable calls.
    scored = np.isfinite(p["score"].astype(float).to_numpy())
    use_score = spec["kind"] != "tree" and bool(scored.any())
    if use_score:
        s = p["score"].astype(float).to_numpy()[scored]
        truth, n_auc = sev[scored], int(scored.sum())
    else:
        s, truth, n_auc = pos[ev].to_numpy(dtype=float), sev[ev.to_numpy()], int(ev.sum())
    a, lo, hi = _auc(s, truth)
    rows.append(
        dict(
            measure="auc",
            n=n_auc,
            N=len(p),
            value=a,
            ci_low=lo,
            ci_high=hi,
            method="Mann-Whitney of the "
            + ("score" if use_score else "call")
            + ", Hanley-McNeil 95% interval (approximate)",
            text="-" if not np.isfinite(a) else f"{a:.3f} [{lo:.3f}-{hi:.3f}]",
        )
    )
    lead = p["lead_hours"].dropna().to_numpy(dtype=float)
    rows.append(
        dict(
            measure="lead_time_hours",
            n=len(lead),
            N=tp,
            value=float(np.median(lead)) if len(lead) else np.nan,
            ci_low=float(lead.min()) if len(lead) else np.nan,
            ci_high=float(lead.max()) if len(lead) else np.nan,
            method="median (min-max) of first grade >= 3 minus first positive call",
            text=f"{np.median(lead):.1f} h ({lead.min():.1f} to {lead.max():.1f})"
            if len(lead)
            else "-",
        )
    )
    metrics = pd.DataFrame(rows)
    metrics.insert(0, "predictor", name)
    metrics["outcome"] = f"max grade >= {min_grade}"
    metrics["note"] = DISCLAIMER
    keep = [
        "patient_id",
        "status",
        "score",
        "positive_hours",
        "max_grade",
        "severe",
        "first_grade3_hours",
        "lead_hours",
        "note",
    ]
    p["note"] = DISCLAIMER
    confusion = dict(tp=tp, fp=fp, fn=fn, tn=tn, not_evaluable=int((~ev).sum()))
    return Performance(metrics, p[keep].reset_index(drop=True), confusion)
