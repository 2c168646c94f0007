"""The clinical CRS grading report: one self-contained HTML page.

:func:`write_clinical_report` turns a :class:`~cytosafe.clinical.GradeResult` into a page
with the scales and their sources, the cohort table (incidence with exact 95% intervals,
onset and duration), the concordance of scales when several were graded, the per-patient
table, and one interactive timeline per patient (temperature, systolic pressure, oxygen
support, vasopressors as norepinephrine equivalents, treatments and the grade band).
The style is the quantification QC report's (:mod:`cytosafe.report.qc`); plotly.js is
inlined, figures are drawn on scroll, and the same result gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cytosafe.report.figures import Figures, esc, natural_key, rounded
from cytosafe.report.page import environment, input_files, page_scripts, simulated_reason

if TYPE_CHECKING:
    from cytosafe.clinical import GradeResult

__all__ = ["render_clinical_report", "timeline_figure", "write_clinical_report"]

#: Grade colours (0 to 5), light to dark.
GRADE_COLORS = ("#e3f4ec", "#fde68a", "#fbbf24", "#f97316", "#c2410c", "#111827")
_TREATMENT_SYMBOLS = {
    "antipyretic": "circle", "tocilizumab": "diamond", "corticosteroid": "square",
    "anakinra": "triangle-up", "siltuximab": "star", "fluid_bolus": "cross",
}  # fmt: skip


def _xs(tl: pd.DataFrame) -> list:
    return rounded(tl["hours"].to_numpy(), 6)


def timeline_figure(tl: pd.DataFrame, *, title: str) -> dict:
    """The timeline of one patient under one scale, as a Plotly figure dictionary.

    Five stacked panels sharing the time axis (hours after infusion): temperature (with the
    38 C line), systolic pressure, oxygen support (FiO2 used for grading, device in the
    hover text), vasopressors (norepinephrine equivalent, ug/min; vasopressin in the hover)
    with treatments as markers, and the grade as a step line over coloured bands.
    """
    x = _xs(tl)
    hover_dev = [esc(d) or "not charted" for d in tl["oxygen_device"]]
    events = tl["event"].fillna("")
    data = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": x,
            "y": rounded(tl["temperature_c"]),
            "name": "temperature (C)",
            "yaxis": "y5",
            "line": {"shape": "hv", "color": "#c2410c"},
            "marker": {"size": 4},
            "hovertemplate": "%{y} C<extra></extra>",
        },
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": x,
            "y": rounded(tl["systolic_bp"]),
            "name": "systolic BP (mmHg)",
            "yaxis": "y4",
            "line": {"shape": "hv", "color": "#0072B2"},
            "marker": {"size": 4},
            "hovertemplate": "%{y} mmHg<extra></extra>",
        },
        {
            "type": "scatter",
            "mode": "lines",
            "x": x,
            "y": rounded(tl["fio2"]),
            "name": "FiO2 (%)",
            "yaxis": "y3",
            "line": {"shape": "hv", "color": "#009E73"},
            "text": hover_dev,
            "hovertemplate": "FiO2 %{y}%<br>%{text}<extra></extra>",
        },
        {
            "type": "scatter",
            "mode": "lines",
            "x": x,
            "y": rounded(tl["ne_equivalent"]),
            "name": "vasopressors (NE eq., ug/min)",
            "yaxis": "y2",
            "line": {"shape": "hv", "color": "#6A3D9A"},
            "text": [
                f"vasopressin {v:g} U/min" if v > 0 else "" for v in tl["vasopressin"].fillna(0)
            ],
            "hovertemplate": "NE eq. %{y} ug/min<br>%{text}<extra></extra>",
        },
        {
            "type": "scatter",
            "mode": "lines",
            "x": x,
            "y": tl["grade"].astype(int).tolist(),
            "name": "grade",
            "yaxis": "y",
            "line": {"shape": "hv", "color": "#111827", "width": 2},
            "text": [esc(c) for c in tl["criterion"]],
            "hovertemplate": "grade %{y}<br>%{text}<extra></extra>",
        },
    ]
    for name, symbol in _TREATMENT_SYMBOLS.items():
        at = events.str.contains(name, regex=False).to_numpy()
        if at.any():
            data.append({"type": "scatter", "mode": "markers", "x": [x[i] for i in np.flatnonzero(at)],
                         "y": [0] * int(at.sum()), "name": name.replace("_", " "), "yaxis": "y2",
                         "marker": {"symbol": symbol, "size": 10, "color": "#E69F00"},
                         "hovertemplate": name + " at %{x} h<extra></extra>"})  # fmt: skip
    shapes = []
    g = tl["grade"].to_numpy()
    h = tl["hours"].to_numpy()
    for i in range(len(g)):
        if g[i] <= 0:
            continue
        x1 = h[i + 1] if i + 1 < len(h) else h[i] + 1.0
        shapes.append({"type": "rect", "xref": "x", "yref": "y domain", "x0": float(h[i]),
                       "x1": float(x1), "y0": 0, "y1": 1, "line": {"width": 0},
                       "fillcolor": GRADE_COLORS[int(g[i])], "opacity": 0.8, "layer": "below"})  # fmt: skip
    dom = [(0.0, 0.14), (0.19, 0.36), (0.41, 0.58), (0.63, 0.80), (0.85, 1.0)]
    layout = {
        "title": {"text": esc(title), "font": {"size": 13}},
        "height": 560,
        "showlegend": True,
        "legend": {"orientation": "h", "y": -0.12},
        "xaxis": {"title": {"text": "hours after infusion"}, "anchor": "y"},
        "yaxis": {
            "domain": list(dom[0]),
            "range": [0, 5.2],
            "title": {"text": "grade"},
            "dtick": 1,
        },
        "yaxis2": {"domain": list(dom[1]), "title": {"text": "NE eq."}, "rangemode": "tozero"},
        "yaxis3": {"domain": list(dom[2]), "title": {"text": "FiO2 %"}, "range": [15, 105]},
        "yaxis4": {"domain": list(dom[3]), "title": {"text": "SBP"}},
        "yaxis5": {"domain": list(dom[4]), "title": {"text": "temp C"}},
        "shapes": shapes,
        "margin": {"l": 64, "r": 16, "t": 40, "b": 40},
    }
    return {"data": data, "layout": layout}


def _fmt(v: object, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)) or pd.isna(v):
        return "–"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.{digits}f}"


def render_clinical_report(
    result: GradeResult,
    *,
    title: str | None = None,
    sources: list[str] | None = None,
    max_patients: int = 200,
    generated: str | None = None,
    packed: bool = False,
    inputs: list[dict] | None = None,
) -> str:
    """Render the grading report of ``result`` as one self-contained HTML document.

    Parameters
    ----------
    result:
        The result of :func:`cytosafe.clinical.grade`.
    title:
        Page title (default: "CRS grading" and the scales).
    sources:
        Input files to list in the header.
    max_patients:
        Timelines are drawn for at most this many patients (the highest grades first);
        the tables always hold every patient.
    generated:
        Text shown as the generation time; left out by default (byte-stable output).
    packed:
        plotly.js and the figures gzip-packed (:func:`cytosafe.report.page.page_scripts`).
    inputs:
        The inputs as a face recorded them (``name``, ``sha256``); by default each file of
        ``sources`` is hashed (:func:`cytosafe.report.page.input_files`).
    """
    from cytosafe import __version__
    from cytosafe.clinical import concordance
    from cytosafe.clinical.criteria import criteria, reference

    crit = criteria()
    scales = list(result.scales)
    figures = Figures()
    scale_info = []
    for name in scales:
        meta = crit["scale"][name]
        scale_info.append({"name": name, "label": result.scales[name], "source": reference(meta["source"]),
                           "criteria": meta["criteria"], "notes": meta.get("notes", [])})  # fmt: skip
    cohort_rows = []
    for measure, block in result.cohort.groupby("measure", sort=False):
        cohort_rows.append(
            {
                "measure": measure,
                "cells": [block.set_index("scale")["text"].get(s, "–") for s in scales],
            }
        )
    conc = concordance(result.patients).to_dict("records") if len(scales) > 1 else []
    main = scales[0]
    p = result.patients
    pmain = p[p["scale"] == main].sort_values(["max_grade", "patient_id"], ascending=[False, True])
    patients = []
    for r in p.sort_values(
        ["patient_id", "scale"], key=lambda c: c.map(natural_key) if c.name == "patient_id" else c
    ).itertuples(index=False):
        patients.append({"patient_id": r.patient_id, "scale": r.scale, "max_grade": int(r.max_grade),
                         "onset": _fmt(r.onset_hours), "max_at": _fmt(r.hours_of_max_grade),
                         "duration": _fmt(r.duration_hours), "episodes": int(r.n_episodes),
                         "ongoing": bool(r.ongoing_at_last_observation), "criterion": r.criterion_at_max,
                         "treatments": r.treatments, "estimates": r.estimates})  # fmt: skip
    tl = result.timeline[result.timeline["scale"] == main]
    by_patient = dict(tuple(tl.groupby("patient_id", sort=False)))
    cards = []
    for pid in pmain["patient_id"].head(max_patients):
        fig_id = figures.add(timeline_figure(by_patient[pid], title=f"{pid} · {main}"))
        row = pmain[pmain["patient_id"] == pid].iloc[0]
        cards.append({"id": fig_id, "patient_id": pid, "max_grade": int(row["max_grade"])})
    estimates_used = sorted({e for v in p["estimates"] for e in str(v).split(";") if e})
    context = {
        "title": title or "CRS grading · " + ", ".join(scales),
        "version": __version__,
        "generated": generated,
        "sources": sources or [],
        "inputs": input_files(sources or [], inputs=inputs),
        "simulated": simulated_reason(
            sources=sources or [], patient_ids=p["patient_id"].astype(str).unique()
        ),
        "n_patients": int(p["patient_id"].nunique()),
        "scales": scale_info,
        "scale_names": scales,
        "cohort_rows": cohort_rows,
        "concordance": conc,
        "patients": patients,
        "cards": cards,
        "n_quarantined": len(result.quarantine),
        "estimates_used": estimates_used,
        "criteria_version": crit["version"],
        "main_scale": main,
        "grade_colors": GRADE_COLORS,
    }
    context.update(page_scripts(figures, packed=packed))
    return environment().get_template("clinical_grading.html").render(**context)


def write_clinical_report(result: GradeResult, path: str | Path, **kwargs) -> Path:
    """Write :func:`render_clinical_report` to ``path`` (UTF-8, ``\\n`` line ends; packed
    unless ``packed=False``)."""
    path = Path(path)
    kwargs.setdefault("packed", True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(render_clinical_report(result, **kwargs))
    return path
