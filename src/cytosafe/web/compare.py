"""The side-by-side comparison of test articles on the web app's compare page.

Built from the tables a hazard analysis stores (``hazard``, ``summary``, ``benchmark``,
``positive_controls``, potency fits): the hazard calls per article and format, the fold
change over the negative control per cytokine at the concentration the calls rest on,
the potency, and one Plotly figure of fold change against concentration with one trace
per article. Pure functions of those tables; the route in :mod:`cytosafe.web.pages`
reads them and renders ``compare.html``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from cytosafe.report.figures import GRID, LAYOUT_TEMPLATE, PALETTE, esc, natural_key, num, rounded
from cytosafe.report.hazard import CLASS_STYLE  # badge style of a class, as in the report

__all__ = ["CLASS_STYLE", "comparison", "formats", "number", "text_cell"]


def text_cell(value: Any) -> str:
    """A text cell of a stored table; missing (None, NaN) as ""."""
    return value if isinstance(value, str) else ""


def number(value: Any) -> float | None:
    """A number cell of a stored table as a float; missing (None, NaN, text) as None."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v == v else None


def formats(hazard: pd.DataFrame) -> list[dict]:
    """The formats (assay format x incubation) of the hazard calls, in their order, each
    with the key used in the page's address and a label."""
    pairs = list(
        dict.fromkeys(
            (text_cell(f), number(i))
            for f, i in zip(hazard["assay_format"], hazard["incubation_h"], strict=True)
        )
    )
    out = []
    for fmt, inc in pairs:
        several = sum(f == fmt for f, _ in pairs) > 1
        key = fmt if not several else f"{fmt}@{'' if inc is None else f'{inc:g}'}h"
        label = (fmt.replace("_", " ") or "no format") + ("" if inc is None else f" · {inc:g} h")
        out.append({"key": key, "label": label, "format": fmt, "inc": inc})
    return out


def _in_format(frame: pd.DataFrame | None, where: dict) -> pd.DataFrame:
    """The rows of ``frame`` in one format (assay format x incubation)."""
    if frame is None or frame.empty:
        return pd.DataFrame() if frame is None else frame
    fmt = frame["assay_format"].map(text_cell) == where["format"]
    inc = frame["incubation_h"].map(number)
    same = inc.isna() if where["inc"] is None else inc.eq(where["inc"])
    return frame[fmt & same]


def _responders(r) -> str:
    """ "k/n" responders, with the donors whose call a censored value left undecided."""
    k, n = int(r["n_responders"]), int(r["n_donors"])
    m = number(r.get("n_indeterminate"))  # absent from tables stored before item 7
    return f"{k}/{n}" + (f" ({int(m)} indeterminate)" if m else "")


def _gmr(r: dict | None) -> dict:
    """GMR with its interval, responders and % of the positive control of one summary row."""
    if r is None:
        return {"tested": False}
    low, high = number(r.get("gmr_ci_low")), number(r.get("gmr_ci_high"))
    pct = number(r.get("median_percent_of_positive"))
    unit = text_cell(r.get("treatment_unit"))
    return {
        "tested": True,
        "gmr": num(r.get("gmr")),
        "ci": "" if low is None or high is None else f"[{num(low)}, {num(high)}]",
        "responders": _responders(r),
        "fraction": number(r.get("responder_fraction")) or 0.0,
        "conc": f"{num(r.get('treatment_concentration'))} {unit}".strip(),
        "pct": "" if pct is None else f"{num(pct)}%",
    }


def _ec(r: dict, name: str) -> dict:
    """One donor's EC50 / ECx with its interval (censored: the bound of the tested range)."""
    cens = text_cell(r.get(f"{name}_censored"))
    if cens:
        bound = r.get("max_tested") if cens == ">" else r.get("min_tested")
        return {"text": f"{cens} {num(bound)}", "ci": ""}
    v = number(r.get(name))
    if v is None:
        return {"text": "–", "ci": ""}
    low, high = number(r.get(f"{name}_ci_low")), number(r.get(f"{name}_ci_high"))
    ci = "" if low is None or high is None else f"[{num(low)}, {num(high)}]"
    return {"text": num(v), "ci": ci}


def _ec_summary(fits: pd.DataFrame, name: str) -> dict:
    """Median and range over the donors of a fitted (not censored) EC50 / ECx."""
    if fits.empty or name not in fits.columns:
        return {"text": "–", "range": "", "censored": 0}
    censored = fits.get(f"{name}_censored", pd.Series("", index=fits.index)).map(text_cell) != ""
    values = pd.to_numeric(fits.loc[~censored, name], errors="coerce").dropna()
    if values.empty:
        return {"text": "–", "range": "", "censored": int(censored.sum())}
    spread = "" if len(values) < 2 else f"{num(values.min())}–{num(values.max())}"
    return {"text": num(values.median()), "range": spread, "censored": int(censored.sum())}


def _compare_figure(
    summary: pd.DataFrame, articles: list[str], controls: list[str], analytes: list[str]
) -> dict | None:
    """Fold change over the negative control (GMR with its interval) against the
    concentration, one panel per cytokine, one trace per test article; each positive
    control as a dashed line at its GMR; a thin grey line at GMR 1 (no change)."""
    tests = summary[summary["treatment"].isin(articles)]
    conc = pd.to_numeric(tests["treatment_concentration"], errors="coerce")
    tests = tests[conc > 0]
    if tests.empty or not analytes:
        return None
    conc = pd.to_numeric(tests["treatment_concentration"], errors="coerce")
    lo, hi = float(conc.min()) / 2, float(conc.max()) * 2
    units = sorted({text_cell(u) for u in tests["treatment_unit"]} - {""})
    cols = min(4, len(analytes))
    rows = math.ceil(len(analytes) / cols)
    top, bottom, panel, gap = 64, 56, 190, 72  # pixels
    total = top + bottom + rows * panel + (rows - 1) * gap
    gap_x, gap_y = 0.06, gap / (total - top - bottom)
    width = (1 - gap_x * (cols - 1)) / cols
    height = (1 - gap_y * (rows - 1)) / rows
    pc_style = (("#3e4c59", "dash"), ("#9aa5b1", "dot"), ("#3e4c59", "dashdot"))
    layout: dict[str, Any] = {
        "height": total,
        "margin": {"l": 60, "r": 16, "t": top, "b": bottom},
        "legend": {
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": 0.995,
            "yref": "container",
            "yanchor": "top",
        },
        "annotations": [],
        "shapes": [],
    }
    data: list[dict] = []
    for i, analyte in enumerate(analytes):
        n = "" if i == 0 else str(i + 1)
        row, col = divmod(i, cols)
        x0 = col * (width + gap_x)
        y1 = 1 - row * (height + gap_y)
        layout[f"xaxis{n}"] = {
            "type": "log",
            "domain": [round(x0, 4), round(x0 + width, 4)],
            "anchor": f"y{n}",
            "range": [math.log10(lo), math.log10(hi)],
            "title": {"text": f"concentration ({esc(', '.join(units))})"}
            if row == rows - 1 and units
            else None,
        }
        layout[f"yaxis{n}"] = {
            "type": "log",
            "domain": [round(max(y1 - height, 0), 4), round(y1, 4)],
            "anchor": f"x{n}",
            "title": {"text": "fold change (GMR)"} if col == 0 else None,
            "gridcolor": GRID,
        }
        layout["annotations"].append(
            {
                "text": f"<b>{esc(analyte)}</b>",
                "xref": f"x{n} domain",
                "yref": f"y{n} domain",
                "x": 0.02,
                "y": 1.0,
                "xanchor": "left",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 12},
            }
        )
        layout["shapes"].append(
            {
                "type": "line",
                "xref": f"x{n} domain",
                "x0": 0,
                "x1": 1,
                "yref": f"y{n}",
                "y0": 1,
                "y1": 1,
                "line": {"color": "#c5ccd6", "width": 1},
                "layer": "below",
            }
        )
        g = summary[summary["analyte"] == analyte]
        for j, article in enumerate(articles):
            t = g[g["treatment"] == article].copy()
            t["_c"] = pd.to_numeric(t["treatment_concentration"], errors="coerce")
            t = t[t["_c"] > 0].sort_values("_c")
            if t.empty:
                continue
            gmr = t["gmr"].to_numpy(dtype=float)
            low = t["gmr_ci_low"].to_numpy(dtype=float)
            high = t["gmr_ci_high"].to_numpy(dtype=float)
            unit = esc(text_cell(t["treatment_unit"].iloc[0]))
            text = [
                f"<b>{esc(article)}</b> · {esc(analyte)}<br>{num(r['_c'])} {unit}: GMR "
                f"{num(r['gmr'])} [{num(r['gmr_ci_low'])}, {num(r['gmr_ci_high'])}]<br>"
                f"{_responders(r)} donors respond"
                + (
                    f" · {num(r['median_percent_of_positive'])}% of "
                    f"{esc(text_cell(r['positive_control']))}"
                    if number(r.get("median_percent_of_positive")) is not None
                    and text_cell(r.get("positive_control"))
                    else ""
                )
                for r in t.to_dict("records")
            ]
            color = PALETTE[j % len(PALETTE)]
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": esc(article),
                    "legendgroup": esc(article),
                    "showlegend": i == 0,
                    "xaxis": f"x{n}",
                    "yaxis": f"y{n}",
                    "x": rounded(t["_c"]),
                    "y": rounded(gmr),
                    "error_y": {
                        "type": "data",
                        "symmetric": False,
                        "array": rounded(high - gmr),
                        "arrayminus": rounded(gmr - low),
                        "color": color,
                        "thickness": 1,
                        "width": 3,
                    },
                    "line": {"color": color, "width": 1.6},
                    "marker": {
                        "color": color,
                        "size": 7,
                        "symbol": [
                            "circle" if number(s) == 1.0 else "circle-open"
                            for s in t["significant"]
                        ],
                    },
                    "text": text,
                    "hovertemplate": "%{text}<extra></extra>",
                }
            )
        for k, control in enumerate(controls):
            c = g[g["treatment"] == control]
            if c.empty:
                continue
            r = c.sort_values("n_responders", ascending=False, kind="stable").iloc[0]
            if number(r["gmr"]) is None:
                continue
            label = f"{esc(control)} (positive control)"
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": label,
                    "legendgroup": esc(control),
                    "showlegend": i == 0,
                    "xaxis": f"x{n}",
                    "yaxis": f"y{n}",
                    "x": rounded([lo, hi]),
                    "y": rounded([r["gmr"], r["gmr"]]),
                    "line": {
                        "color": pc_style[k % len(pc_style)][0],
                        "width": 1.3,
                        "dash": pc_style[k % len(pc_style)][1],
                    },
                    "hovertemplate": f"<b>{label}</b> · {esc(analyte)}<br>"
                    f"{num(r['treatment_concentration'])} {esc(text_cell(r['treatment_unit']))}: "
                    f"GMR {num(r['gmr'])}<br>{_responders(r)} donors respond<extra></extra>",
                }
            )
    for key in [k for k in layout if k[1:5] == "axis"]:
        if layout[key].get("title") is None:
            layout[key].pop("title", None)
    return {"data": data, "layout": layout}


def _best(frame: pd.DataFrame) -> pd.DataFrame:
    """Per treatment x analyte of one format the concentration with the most responders
    (the row the hazard classes and the benchmarks rest on)."""
    if frame.empty:
        return frame
    f = frame.assign(_g=pd.to_numeric(frame["gmr"], errors="coerce").fillna(-float("inf")))
    f = f.assign(_c=pd.to_numeric(f["treatment_concentration"], errors="coerce"))
    f = f.sort_values(["n_responders", "_g", "_c"], ascending=False, kind="stable")
    return f.drop_duplicates(["treatment", "analyte"]).drop(columns=["_g", "_c"])


def comparison(tables: dict[str, pd.DataFrame | None], articles: list[str], where: dict) -> dict:
    """What the comparison page shows of ``articles`` in one format."""
    from cytosafe.report.figures import Figures as _Figures

    hazard = tables["hazard"]
    summary = tables.get("summary")
    summary = pd.DataFrame() if summary is None else summary
    here = _in_format(summary, where)
    roles = (
        dict(zip(summary["treatment"], summary["treatment_role"], strict=True))
        if len(summary)
        else {}
    )
    # The benchmark table holds each treatment's best concentration per analyte (with its
    # rank); older analyses without it: chosen here the same way.
    bench = tables.get("benchmark")
    best = _in_format(bench, where) if bench is not None and len(bench) else _best(here)
    acceptance = _in_format(tables.get("positive_controls"), where)
    controls = [str(t) for t in dict.fromkeys(acceptance["treatment"])] if len(acceptance) else []
    present = set(here["treatment"]) if len(here) else set()
    controls += [
        t for t, r in roles.items() if r == "positive_control" and t in present - set(controls)
    ]
    references = sorted({text_cell(p) for p in here.get("positive_control", [])} - {""})
    controls.sort(key=lambda c: c not in references)  # the reference control first
    calls = _in_format(hazard, where)
    call_of = {r["treatment"]: r for r in calls.to_dict("records")}
    analytes = sorted({str(a) for a in here["analyte"]}, key=natural_key) if len(here) else []
    best_of = {(r["treatment"], r["analyte"]): r for r in best.to_dict("records")}
    cytokines = []
    for analyte in analytes:
        cells = []
        for article in articles:
            call = call_of.get(article)
            cell = _gmr(best_of.get((article, analyte)))
            qualifies = call is not None and analyte in text_cell(call["analytes"]).split()
            cell.update(
                article=article,
                qualifies=qualifies,
                call=text_cell(call["hazard_class"]) if qualifies else "",
                style=CLASS_STYLE.get(text_cell(call["hazard_class"]), "") if qualifies else "",
            )
            cells.append(cell)
        pcs = [dict(_gmr(best_of.get((c, analyte))), treatment=c) for c in controls]
        cytokines.append({"analyte": analyte, "cells": cells, "controls": pcs})
    # Potency: the donors' EC50 / ECx of each article x cytokine.
    potency = _in_format(tables.get("potency"), where)
    if len(potency):
        potency = potency[potency["treatment"].isin(articles)]
    percents = potency.get("ecx_percent", pd.Series(dtype=float)).dropna()
    ecx = number(percents.iloc[0]) if len(percents) else None
    ecn = f"ec{ecx:g}" if ecx is not None and ecx != 50 else None
    pot_rows, donors = [], []
    for analyte in analytes if len(potency) else []:
        cells = []
        for article in articles:
            fits = potency[(potency["treatment"] == article) & (potency["analyte"] == analyte)]
            responding = fits[fits["status"].map(text_cell) == "response"]
            cells.append(
                {
                    "article": article,
                    "n": f"{len(responding)}/{len(fits)}" if len(fits) else "",
                    "ec50": _ec_summary(responding, "ec50"),
                    "ecx": _ec_summary(responding, ecn) if ecn else None,
                    "unit": text_cell(fits["treatment_unit"].iloc[0]) if len(fits) else "",
                }
            )
            for r in sorted(
                responding.to_dict("records"), key=lambda r: natural_key(r["donor_id"])
            ):
                donors.append(
                    {
                        "article": article,
                        "analyte": analyte,
                        "donor": r["donor_id"],
                        "ec50": _ec(r, "ec50"),
                        "ecx": _ec(r, ecn) if ecn else None,
                        "unit": text_cell(r.get("treatment_unit")),
                    }
                )
        pot_rows.append({"analyte": analyte, "cells": cells})
    figures = _Figures()
    spec = _compare_figure(here, articles, controls, analytes) if len(here) else None
    height = None if spec is None else spec["layout"]["height"]
    return {
        "cytokines": cytokines,
        "controls": controls,
        "reference": references[0] if len(references) == 1 else "the positive control",
        "acceptance": acceptance.to_dict("records") if len(acceptance) else [],
        "potency": {
            "rows": pot_rows,
            "donors": donors,
            "ecx": f"EC{ecx:g}" if ecn else None,
        },
        "figure": None if spec is None else figures.add(spec),
        "figure_height": height,
        "figures_json": figures.to_json(),
        "template_json": json.dumps({"layout": LAYOUT_TEMPLATE}, separators=(",", ":")),
    }
