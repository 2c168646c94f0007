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
#: Colours of the vasopressor lanes (Okabe & Ito's purple, blue, vermilion, ...).
PRESSOR_COLORS = ("#6A3D9A", "#0072B2", "#D55E00", "#CC79A7", "#56B4E9")
_TREATMENT_SYMBOLS = {
    "antipyretic": "circle", "tocilizumab": "diamond", "corticosteroid": "square",
    "anakinra": "triangle-up", "siltuximab": "star", "fluid_bolus": "cross",
}  # fmt: skip


def _xs(tl: pd.DataFrame) -> list:
    return rounded(tl["hours"].to_numpy(), 6)


#: Each vasopressor's dose unit as the grading scales state it (clinical_scales.toml: Lee
#: 2014 Table 2 after Russell 2008; vasopressin in U/min, dopamine per kg of body weight).
VASOPRESSOR_UNITS = {
    "norepinephrine": "ug/min", "epinephrine": "ug/min", "dopamine": "ug/kg/min",
    "phenylephrine": "ug/min", "vasopressin": "U/min",
}  # fmt: skip
#: Oxygen devices from least to most support, and their band colours (light to dark).
_DEVICE_COLORS = {
    "room_air": None, "nasal_cannula": "#d1fae5", "low_flow": "#d1fae5",
    "simple_face_mask": "#a7f3d0", "face_mask": "#a7f3d0", "venturi_mask": "#a7f3d0",
    "non_rebreather": "#6ee7b7", "high_flow": "#6ee7b7", "high_flow_nasal_cannula": "#6ee7b7",
    "cpap": "#fcd34d", "bipap": "#fcd34d", "mechanical_ventilation": "#f97316",
}  # fmt: skip
#: Reference lines of the vital-sign panels: the fever threshold of every scale (38.0 C,
#: ASTCT 2019) and the systolic pressure below which hypotension is charted (90 mmHg).
FEVER_C = 38.0
HYPOTENSION_MMHG = 90.0


def _segments(hours: np.ndarray, values: list) -> list[tuple[float, float, object]]:
    """Runs of equal values as ``(start, end, value)``: a state holds until the next
    observation (the last one for an hour)."""
    out: list[tuple[float, float, object]] = []
    for i, v in enumerate(values):
        end = float(hours[i + 1]) if i + 1 < len(hours) else float(hours[i]) + 1.0
        if out and out[-1][2] == v:
            out[-1] = (out[-1][0], end, v)
        else:
            out.append((float(hours[i]), end, v))
    return out


def _hline(axis: str, y: float, text: str) -> tuple[dict, dict]:
    shape = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": axis, "y0": y, "y1": y,
             "line": {"color": "#9aa5b1", "width": 1, "dash": "dash"}, "layer": "below"}  # fmt: skip
    label = {"xref": "paper", "x": 1, "xanchor": "left", "yref": axis, "y": y,
             "yanchor": "middle", "text": text, "showarrow": False,
             "font": {"size": 10, "color": "#616e7c"}}  # fmt: skip
    return shape, label


def timeline_figure(tl: pd.DataFrame, *, title: str) -> dict:
    """The timeline of one patient under one scale, as a Plotly figure dictionary.

    Five stacked panels sharing the time axis (hours after infusion):

    * temperature (C) with the 38 C fever line;
    * systolic pressure (mmHg) with the 90 mmHg line;
    * oxygen: FiO2 (%) used for grading, and the device as a labelled band under it (what
      sets the oxygen criterion is on the page, not only in the hover text);
    * vasopressors, one lane per agent (norepinephrine, epinephrine, dopamine,
      phenylephrine, vasopressin), each bar labelled with its dose and unit, the
      norepinephrine equivalent in the hover; treatments (antipyretic, tocilizumab, ...)
      as markers on their own lane;
    * the grade as a step line over coloured bands;

    and a death, when charted, as a dashed line through every panel with a cross at grade 5.
    """
    x = _xs(tl)
    h = tl["hours"].to_numpy(dtype=float)
    events = tl["event"].fillna("").astype(str)
    data = [
        {
            "type": "scatter", "mode": "lines+markers", "x": x, "y": rounded(tl["temperature_c"]),
            "name": "temperature (°C)", "yaxis": "y5", "connectgaps": True, "showlegend": False,
            "line": {"shape": "hv", "color": "#c2410c"}, "marker": {"size": 4},
            "hovertemplate": "%{y} °C at %{x} h<extra></extra>",
        },
        {
            "type": "scatter", "mode": "lines+markers", "x": x, "y": rounded(tl["systolic_bp"]),
            "name": "systolic BP (mmHg)", "yaxis": "y4", "connectgaps": True, "showlegend": False,
            "line": {"shape": "hv", "color": "#0072B2"}, "marker": {"size": 4},
            "hovertemplate": "%{y} mmHg at %{x} h<extra></extra>",
        },
        {
            "type": "scatter", "mode": "lines", "x": x, "y": rounded(tl["fio2"]),
            "name": "FiO2 (%)", "yaxis": "y3", "line": {"shape": "hv", "color": "#009E73"},
            "showlegend": False,
            "text": [esc(d).replace("_", " ") or "device not charted" for d in tl["oxygen_device"]],
            "hovertemplate": "FiO2 %{y}% at %{x} h<br>%{text}<extra></extra>",
        },
    ]  # fmt: skip
    shapes: list[dict] = []
    annotations: list[dict] = []

    # Oxygen device: a band under the FiO2 line, one labelled block per device run.
    flow = tl["oxygen_flow"] if "oxygen_flow" in tl else pd.Series(np.nan, index=tl.index)
    devices = [
        (str(d), float(f) if pd.notna(f) else None) if isinstance(d, str) and d else None
        for d, f in zip(tl["oxygen_device"], flow, strict=True)
    ]
    label_x, label_text = [], []
    for x0, x1, dev in _segments(h, devices):
        if dev is None or dev[0] == "room_air":
            continue
        name, rate = dev
        color = _DEVICE_COLORS.get(name, "#d1fae5") or "#d1fae5"
        shapes.append({"type": "rect", "xref": "x", "x0": x0, "x1": x1, "yref": "y3",
                       "y0": 15, "y1": 32, "line": {"width": 0}, "fillcolor": color,
                       "layer": "below"})  # fmt: skip
        label_x.append(round(x0, 3))
        label_text.append(esc(name.replace("_", " ")) + (f" {rate:g} L/min" if rate else ""))
    if label_x:
        data.append({"type": "scatter", "mode": "text", "x": label_x, "y": [23.5] * len(label_x),
                     "text": label_text, "textposition": "middle right",
                     "textfont": {"size": 10, "color": "#1f2933"}, "yaxis": "y3",
                     "name": "oxygen device", "showlegend": False,
                     "hovertemplate": "%{text} from %{x} h<extra></extra>"})  # fmt: skip

    # Vasopressors: one lane per agent given (all five when none was), dose on each bar.
    given = [a for a in VASOPRESSOR_UNITS if a in tl and tl[a].fillna(0).gt(0).any()]
    lanes = given or ["norepinephrine"]
    ne = tl["ne_equivalent"].fillna(0).to_numpy(dtype=float)
    for k, agent in enumerate(given):
        unit = VASOPRESSOR_UNITS[agent]
        doses = [float(v) if v > 0 else None for v in tl[agent].fillna(0)]
        bx, by, bt, labels = [], [], [], []
        for x0, x1, dose in _segments(h, doses):
            if dose is None:
                continue
            ne_at = ne[int(np.searchsorted(h, x0))]
            hover = f"{agent} {dose:g} {unit} from {x0:g} h to {x1:g} h<br>NE equivalent {ne_at:g} ug/min"
            bx += [round(x0, 3), round(x1, 3), None]
            by += [agent, agent, None]
            bt += [hover, hover, None]
            labels.append((round(x0, 3), agent, f"{dose:g} {unit}"))
        data.append({"type": "scatter", "mode": "lines", "x": bx, "y": by, "yaxis": "y2",
                     "name": f"{agent} ({unit})", "showlegend": False, "line": {"width": 9, "color": PRESSOR_COLORS[k % len(PRESSOR_COLORS)]},
                     "text": bt, "hovertemplate": "%{text}<extra></extra>"})  # fmt: skip
        data.append({"type": "scatter", "mode": "text", "x": [v[0] for v in labels],
                     "y": [v[1] for v in labels], "text": [v[2] for v in labels],
                     "textposition": "top right", "yaxis": "y2",
                     "textfont": {"size": 10}, "showlegend": False, "hoverinfo": "skip",
                     "name": f"{agent} dose"})  # fmt: skip
    treated = False
    for name, symbol in _TREATMENT_SYMBOLS.items():
        at = np.flatnonzero(events.str.contains(name, regex=False).to_numpy())
        if at.size:
            treated = True
            data.append({"type": "scatter", "mode": "markers", "x": [x[i] for i in at],
                         "y": ["treatments"] * int(at.size), "name": name.replace("_", " "),
                         "yaxis": "y2", "marker": {"symbol": symbol, "size": 10, "color": "#E69F00"},
                         "hovertemplate": name.replace("_", " ") + " at %{x} h<extra></extra>"})  # fmt: skip
    if treated:
        lanes = [*lanes, "treatments"]

    data.append(
        {
            "type": "scatter", "mode": "lines", "x": x, "y": tl["grade"].astype(int).tolist(),
            "name": "grade", "yaxis": "y", "showlegend": False, "line": {"shape": "hv", "color": "#111827", "width": 2},
            "text": [esc(c) for c in tl["criterion"]],
            "hovertemplate": "grade %{y} at %{x} h<br>%{text}<extra></extra>",
        }
    )  # fmt: skip
    g = tl["grade"].to_numpy()
    for i in range(len(g)):
        if g[i] <= 0:
            continue
        x1 = h[i + 1] if i + 1 < len(h) else h[i] + 1.0
        shapes.append({"type": "rect", "xref": "x", "yref": "y domain", "x0": float(h[i]),
                       "x1": float(x1), "y0": 0, "y1": 1, "line": {"width": 0},
                       "fillcolor": GRADE_COLORS[int(g[i])], "opacity": 0.8, "layer": "below"})  # fmt: skip

    for axis, y, text in (("y5", FEVER_C, "38 °C"), ("y4", HYPOTENSION_MMHG, "90 mmHg")):
        shape, label = _hline(axis, y, text)
        shapes.append(shape)
        annotations.append(label)

    died = np.flatnonzero(events.str.contains("death", regex=False).to_numpy())
    if died.size:
        t = float(h[died[0]])
        shapes.append({"type": "line", "xref": "x", "x0": t, "x1": t, "yref": "paper", "y0": 0,
                       "y1": 1, "line": {"color": "#111827", "width": 1.5, "dash": "dash"}})  # fmt: skip
        annotations.append({"xref": "x", "x": t, "yref": "paper", "y": 1, "yanchor": "bottom",
                            "text": "† death", "showarrow": False,
                            "font": {"size": 11, "color": "#111827"}})  # fmt: skip
        data.append({"type": "scatter", "mode": "markers", "x": [round(t, 3)], "y": [5],
                     "yaxis": "y", "name": "death",
                     "marker": {"symbol": "x-thin", "size": 14, "line": {"width": 3, "color": "#111827"}},
                     "hovertemplate": "death at %{x} h<extra></extra>"})  # fmt: skip

    dom = [(0.0, 0.13), (0.18, 0.38), (0.43, 0.59), (0.64, 0.80), (0.85, 1.0)]
    layout = {
        "title": {"text": esc(title), "font": {"size": 13}},
        "height": 600,
        "showlegend": True,
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "yref": "container", "y": 0,
                   "yanchor": "bottom"},
        "xaxis": {"title": {"text": "hours after infusion"}, "anchor": "y"},
        "yaxis": {"domain": list(dom[0]), "range": [0, 5.4], "title": {"text": "grade"},
                  "dtick": 1},
        "yaxis2": {"domain": list(dom[1]), "type": "category", "categoryorder": "array",
                   "categoryarray": lanes[::-1], "range": [-0.6, len(lanes) - 0.1],
                   "showgrid": False},
        "yaxis3": {"domain": list(dom[2]), "title": {"text": "FiO2 %"}, "range": [15, 105]},
        "yaxis4": {"domain": list(dom[3]), "title": {"text": "SBP mmHg"}},
        "yaxis5": {"domain": list(dom[4]), "title": {"text": "temp °C"}},
        "shapes": shapes,
        "annotations": annotations,
        "margin": {"l": 64, "r": 56, "t": 48, "b": 72},
    }  # fmt: skip
    return {"data": data, "layout": layout}


def _grade_reasons(tl: pd.DataFrame) -> list[str]:
    """What set each severe grade of a timeline (each grade >= 3 reached, or the highest
    grade when below 3), highest first: "grade 4 from 112 h: <criterion>"."""
    g = tl["grade"].astype(int).to_numpy()
    if g.max(initial=0) <= 0:
        return []
    levels = sorted({int(v) for v in g if v >= 3} or {int(g.max())}, reverse=True)
    out = []
    for level in levels:
        first = int(np.flatnonzero(g == level)[0])
        out.append(
            f"grade {level} from {_fmt(tl['hours'].iat[first])} h: {tl['criterion'].iat[first]}"
        )
    return out


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
    by_patient = dict(tuple(tl.groupby("patient_id", sort=False, observed=True)))
    cards = []
    for pid in pmain["patient_id"].head(max_patients):
        fig_id = figures.add(timeline_figure(by_patient[pid], title=f"{pid} · {main}"))
        row = pmain[pmain["patient_id"] == pid].iloc[0]
        cards.append(
            {
                "id": fig_id,
                "patient_id": pid,
                "max_grade": int(row["max_grade"]),
                "max_at": _fmt(row["hours_of_max_grade"]),
                "reasons": _grade_reasons(by_patient[pid]),
            }
        )
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
