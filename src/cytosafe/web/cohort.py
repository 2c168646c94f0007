"""The cohort page's answer: CRS incidence per scale, a swimmer plot and a grade-by-day
heatmap of every patient, from the tables a grading analysis stored.

Incidence and its exact 95% interval, onset and duration come from the clinical layer's
:func:`cytosafe.clinical.summary.cohort_summary` (stored as the ``cohort`` table, or
computed again from ``patients`` when an older analysis lacks it); the figures use the
grade colours of the grading report (:data:`cytosafe.report.clinical.GRADE_COLORS`).
Pure functions of stored tables (issue 15, item 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cytosafe.clinical.summary import cohort_summary
from cytosafe.report.clinical import GRADE_COLORS
from cytosafe.report.figures import esc, natural_key
from cytosafe.web.compare import number, text_cell
from cytosafe.web.tables import MISSING, cell

__all__ = ["grade_heatmap", "incidence_rows", "swimmer_figure"]

_ROW_PX = 15  # height of one patient's row in the figures


def _ci(row: dict) -> str:
    lo, hi = number(row.get("ci_low")), number(row.get("ci_high"))
    return MISSING if lo is None or hi is None else f"{lo:.1f}–{hi:.1f}%"


def _count(row: dict | None) -> str:
    if row is None:
        return MISSING
    n, total, pct = number(row.get("n")), number(row.get("N")), number(row.get("percent"))
    if n is None or not total:
        return MISSING
    return f"{int(n)}/{int(total)} ({pct:.1f}%)" if pct is not None else f"{int(n)}/{int(total)}"


def _median(row: dict | None) -> str:
    if row is None:
        return MISSING
    med, lo, hi = (number(row.get(k)) for k in ("median", "min", "max"))
    if med is None:
        return MISSING
    return f"{cell(med)} h ({cell(lo)}–{cell(hi)})"


def _headline(row: dict | None, key: str) -> str:
    """The number a summary card shows: a percentage, or a median in hours."""
    value = number((row or {}).get(key))
    if value is None:
        return MISSING
    return f"{value:.1f}%" if key == "percent" else f"{cell(value)} h"


def _range(row: dict | None) -> str:
    lo, hi = (number((row or {}).get(k)) for k in ("min", "max"))
    return MISSING if lo is None or hi is None else f"{cell(lo)}–{cell(hi)} h"


def incidence_rows(cohort: pd.DataFrame | None, patients: pd.DataFrame | None) -> list[dict]:
    """One row per scale and scale version: patients, any grade and grade ≥ 3 with their
    exact 95% intervals, deaths (grade 5), and the median onset and duration (hours after
    the infusion, with the range) of the patients who had CRS under the scale."""
    if (cohort is None or cohort.empty) and patients is not None and not patients.empty:
        cohort = cohort_summary(patients)
    if cohort is None or cohort.empty:
        return []
    out = []
    keys = ["scale", "scale_version"]
    for (scale, version), g in cohort.groupby(keys, sort=False, observed=True):
        by = {text_cell(r["measure"]): r for r in g.to_dict("records")}
        any_grade, severe = by.get("any grade"), by.get("grade >= 3")
        out.append(
            {
                "scale": text_cell(scale),
                "version": text_cell(version) or MISSING,
                "patients": cell(number((by.get("patients") or {}).get("n"))),
                "any": _count(any_grade),
                "any_ci": _ci(any_grade or {}),
                "severe": _count(severe),
                "severe_ci": _ci(severe or {}),
                "deaths": _count(by.get("grade 5")),
                "onset": _median(by.get("median onset, hours")),
                "duration": _median(by.get("median duration, hours")),
                # The summary cards: the headline number, its detail underneath.
                "any_pct": _headline(any_grade, "percent"),
                "severe_pct": _headline(severe, "percent"),
                "severe_n": number((severe or {}).get("n")) or 0,
                "onset_median": _headline(by.get("median onset, hours"), "median"),
                "onset_range": _range(by.get("median onset, hours")),
                "duration_median": _headline(by.get("median duration, hours"), "median"),
                "duration_range": _range(by.get("median duration, hours")),
            }
        )
    return out


def _order(patients: pd.DataFrame) -> list[str]:
    """Patients, most severe first (then earliest onset), as the y axis from the top."""
    p = patients.assign(
        _g=pd.to_numeric(patients["max_grade"], errors="coerce").fillna(-1),
        _o=pd.to_numeric(patients["onset_hours"], errors="coerce").fillna(np.inf),
        _k=patients["patient_id"].astype(str).map(natural_key),
    )
    p = p.sort_values(["_g", "_o", "_k"], ascending=[False, True, True], kind="stable")
    return list(dict.fromkeys(p["patient_id"].astype(str)))


def _one_scale(grades: pd.DataFrame, patients: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    scale = text_cell(patients["scale"].iloc[0]) if "scale" in patients and len(patients) else ""
    if scale and "scale" in grades:
        grades = grades[grades["scale"].astype(str) == scale]
        patients = patients[patients["scale"].astype(str) == scale]
    return grades, patients


def _grade_label(g: int) -> str:
    return "no CRS" if g == 0 else f"grade {g}"


def _height(n: int) -> int:
    return max(260, 90 + _ROW_PX * n)


def swimmer_figure(grades: pd.DataFrame, patients: pd.DataFrame) -> dict | None:
    """Every patient as a lane over the hours after the infusion, coloured by the CRS
    grade charted at each time (the first scale of the analysis), with tocilizumab and
    death marked; the most severe patients on top."""
    if grades is None or grades.empty or patients is None or patients.empty:
        return None
    grades, patients = _one_scale(grades, patients)
    order = _order(patients)
    g = grades[["patient_id", "hours", "grade"]].copy()
    g["patient_id"] = g["patient_id"].astype(str)
    g["grade"] = pd.to_numeric(g["grade"], errors="coerce").fillna(0).astype(int)
    g = g.dropna(subset=["hours"]).sort_values(["patient_id", "hours"], kind="stable")
    # Each charted grade holds until the next observation of the patient.
    g["end"] = g.groupby("patient_id", sort=False)["hours"].shift(-1).fillna(g["hours"])
    new_run = (g["grade"] != g["grade"].shift()) | (g["patient_id"] != g["patient_id"].shift())
    g["run"] = new_run.cumsum()
    runs = g.groupby("run", sort=False).agg(
        patient_id=("patient_id", "first"),
        grade=("grade", "first"),
        start=("hours", "min"),
        end=("end", "max"),
    )
    runs = runs[runs["end"] > runs["start"]]
    data = []
    for grade in range(6):
        r = runs[runs["grade"] == grade]
        if r.empty:
            continue
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": _grade_label(grade),
                "y": r["patient_id"].tolist(),
                "base": [round(float(v), 2) for v in r["start"]],
                "x": [round(float(v), 2) for v in r["end"] - r["start"]],
                "marker": {"color": GRADE_COLORS[grade], "line": {"width": 0}},
                "customdata": [
                    [round(float(a), 1), round(float(b), 1)]
                    for a, b in zip(r["start"], r["end"], strict=True)
                ],
                "hovertemplate": f"%{{y}} · {_grade_label(grade)}"
                "<br>%{customdata[0]}–%{customdata[1]} h<extra></extra>",
            }
        )
    if "event" in grades:
        events = grades.assign(event=grades["event"].astype(str))
        for event, symbol, color in (
            ("tocilizumab", "diamond", "#0b6e99"),
            ("death", "x", "#111827"),
        ):
            e = events[events["event"] == event].drop_duplicates(["patient_id", "hours"])
            if e.empty:
                continue
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": event,
                    "y": e["patient_id"].astype(str).tolist(),
                    "x": [round(float(v), 2) for v in e["hours"]],
                    "marker": {"symbol": symbol, "size": 9, "color": color, "line": {"width": 1.5}},
                    "hovertemplate": f"%{{y}} · {esc(event)} at %{{x}} h<extra></extra>",
                }
            )
    layout = {
        "barmode": "overlay",
        "bargap": 0.25,
        "height": _height(len(order)),
        "margin": {"l": 80, "r": 12, "t": 40, "b": 48},
        "legend": {"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "font": {"size": 11}},
        "xaxis": {"title": {"text": "hours after the infusion"}, "rangemode": "tozero"},
        "yaxis": {
            "type": "category",
            "categoryorder": "array",
            "categoryarray": order[::-1],
            "tickfont": {"size": 10},
            "automargin": True,
        },
    }
    return {"data": data, "layout": layout}


def grade_heatmap(grades: pd.DataFrame, patients: pd.DataFrame) -> dict | None:
    """The highest CRS grade of each patient on each day after the infusion (day 1 is the
    first 24 h), patients in the swimmer plot's order; days without observations blank.
    Every observation before the infusion (negative hours) falls on day 0, as the page's
    caption says ("day 0 is before the infusion")."""
    if grades is None or grades.empty or patients is None or patients.empty:
        return None
    grades, patients = _one_scale(grades, patients)
    order = _order(patients)
    g = grades[["patient_id", "hours", "grade"]].dropna(subset=["hours"]).copy()
    g["patient_id"] = g["patient_id"].astype(str)
    # Clipped: a screening grade days before the infusion is day 0, not day -3.
    g["day"] = (np.floor(g["hours"].astype(float) / 24).astype(int) + 1).clip(lower=0)
    g["grade"] = pd.to_numeric(g["grade"], errors="coerce")
    table = g.groupby(["patient_id", "day"])["grade"].max().unstack("day")
    days = list(range(int(g["day"].min()), int(g["day"].max()) + 1))
    table = table.reindex(index=order, columns=days)
    z = [[None if v != v else int(v) for v in row] for row in table.to_numpy(dtype=float)]
    # A discrete colour scale: each grade one band of [0, 5].
    scale = []
    for k, color in enumerate(GRADE_COLORS):
        scale += [[k / 6, color], [(k + 1) / 6, color]]
    data = [
        {
            "type": "heatmap",
            "z": z,
            "x": days,
            "y": order,
            "zmin": -0.5,
            "zmax": 5.5,
            "colorscale": scale,
            "xgap": 1,
            "ygap": 1,
            "hovertemplate": "%{y} · day %{x}: grade %{z}<extra></extra>",
            "colorbar": {
                "title": {"text": "grade", "side": "top"},
                "tickvals": [0, 1, 2, 3, 4, 5],
                "ticktext": ["0", "1", "2", "3", "4", "5"],
                "thickness": 12,
                # In pixels: half of a two-patient plot overlapped the six grade labels.
                "lenmode": "pixels",
                "len": 120,
                "y": 1,
                "yanchor": "top",
            },
        }
    ]
    layout = {
        "height": _height(len(order)),
        "margin": {"l": 80, "r": 12, "t": 16, "b": 48},
        # No zero line: on days it drew a stray rule through day 0's blank cells.
        "xaxis": {
            "title": {"text": "day after the infusion"},
            "dtick": 1,
            "showgrid": False,
            "zeroline": False,
        },
        "yaxis": {"autorange": "reversed", "tickfont": {"size": 10}, "showgrid": False},
    }
    return {"data": data, "layout": layout}
