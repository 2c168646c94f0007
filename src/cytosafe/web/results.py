"""The answer an analysis page opens with, built from the tables the analysis stored.

* a hazard analysis: each test article's class per format as a badge with a one-line
  reason; indeterminate donor calls and invalid formats said plainly (which positive
  control failed, which format has none);
* a quantification: the QC of each analyte over its curves (passed and failed, the share
  of samples below the LLOQ and above the ULOQ, the reasons a curve failed);
* a standard-curve figure per curve whose standard points show whether they entered the
  fit, and which a click ticks for exclusion in the page's form.

Pure functions of stored tables; :mod:`cytosafe.web.pages` reads the tables and renders
``analysis.html`` (issue 15, item 1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from cytosafe.curves.models import MODELS
from cytosafe.report.figures import ACCENT, FAIL, MUTED, PASS, RANGE_FILL, esc, natural_key
from cytosafe.report.hazard import CLASS_STYLE
from cytosafe.report.qc import MOSTLY_BELOW_LLOQ
from cytosafe.web.compare import formats, number, text_cell
from cytosafe.web.tables import MISSING, cell

__all__ = ["hazard_summary", "qc_summary", "standard_figure", "well_id"]


def _int(value: Any) -> int | None:
    v = number(value)
    return None if v is None else int(v)


def _one_line(row: dict) -> str:
    """Why a test article got its class in one format, in one line; the full reason stays
    in the stored table (and the page's "full reason")."""
    cls = text_cell(row.get("hazard_class"))
    reason = text_cell(row.get("reason"))
    n, k = _int(row.get("n_donors")), _int(row.get("max_responders"))
    donors = f"{k}/{n} donors" if n is not None and k is not None else ""
    if cls == "invalid" or row.get("valid") is False or row.get("valid") == 0:
        # "Not called: the positive control X failed in F (why); the assay could not …"
        return reason.split("; the assay", 1)[0] or "not called"
    analytes = text_cell(row.get("analytes")).split()
    if cls == "negative" or not analytes:
        return f"No class condition met; at most {donors} respond in any cytokine"
    names = ", ".join(analytes[:8]) + (
        f" and {len(analytes) - 8} more" if len(analytes) > 8 else ""
    )
    # The class condition itself is on the badge (its title) and in the full reason.
    return f"{len(analytes)} cytokine(s) meet the {cls} condition: {names}; up to {donors} respond"


def _indeterminate(row: dict) -> str:
    """What the indeterminate donor calls could change, or ""."""
    n = _int(row.get("n_indeterminate")) or 0
    if not n:
        return ""
    where = text_cell(row.get("indeterminate_by_analyte"))
    could = text_cell(row.get("class_could_be")).split()
    text = f"{n} donor call(s) indeterminate" + (f" ({where})" if where else "")
    text += (
        f": censored values leave the class open between {' and '.join(could)}"
        if len(could) > 1
        else ": they do not change the class"
    )
    return text


def hazard_summary(
    hazard: pd.DataFrame | None, positive_controls: pd.DataFrame | None = None
) -> dict:
    """The hazard calls of an analysis as the page opens with them.

    Returns ``calls`` (one per test article x format: ``article``, ``format`` label,
    ``cls``, badge ``style``, ``valid``, one-line ``line``, ``indeterminate`` sentence,
    full ``reason``) grouped by article in ``articles``, and ``formats``: per format its
    positive controls (passed, failed, not expected) and what is missing (no positive
    control, so a release could not have been shown).
    """
    if hazard is None or hazard.empty:
        return {"articles": [], "formats": [], "n_invalid": 0}
    found = formats(hazard)
    label = {(f["format"], f["inc"]): f["label"] for f in found}
    calls = []
    for row in hazard.to_dict("records"):
        fmt = (text_cell(row.get("assay_format")), number(row.get("incubation_h")))
        cls = text_cell(row.get("hazard_class")) or "not called"
        calls.append(
            {
                "article": text_cell(row.get("treatment")) or MISSING,
                "format": label.get(fmt, fmt[0]),
                "cls": cls,
                "style": CLASS_STYLE.get(cls, ""),
                "valid": cls != "invalid" and row.get("valid") is not False,
                "rule": text_cell(row.get("class_rule")),
                "order": [f["label"] for f in found].index(label.get(fmt, fmt[0]))
                if label.get(fmt) is not None
                else len(found),
                "line": _one_line(row),
                "indeterminate": _indeterminate(row),
                "reason": text_cell(row.get("reason")),
            }
        )
    articles: dict[str, list[dict]] = {}
    # Each test article's formats in one order (that of the analysis), whatever the rows'.
    for c in sorted(calls, key=lambda c: c["order"]):
        articles.setdefault(c["article"], []).append(c)
    per_format = []
    pcs = positive_controls if positive_controls is not None else pd.DataFrame()
    for f in found:
        rows = []
        if not pcs.empty:
            mine = pcs[
                (pcs["assay_format"].map(text_cell) == f["format"])
                & pcs["incubation_h"]
                .map(number)
                .map(lambda v, inc=f["inc"]: v == inc or (v is None and inc is None))
            ]
            for r in mine.to_dict("records"):
                expected, passed = bool(r.get("expected")), bool(r.get("passed"))
                rows.append(
                    {
                        "treatment": text_cell(r.get("treatment")),
                        "state": "passed" if passed else "failed" if expected else "not expected",
                        "style": "pass" if passed else "fail" if expected else "",
                        "reason": text_cell(r.get("reason")),
                    }
                )
        missing = (
            ""
            if any(r["state"] != "not expected" for r in rows)
            else "No positive control expected to respond in this format: the assay's "
            "ability to show a release is not verified."
        )
        per_format.append({"label": f["label"], "controls": rows, "missing": missing})
    return {
        "articles": [{"name": a, "calls": c} for a, c in articles.items()],
        "formats": per_format,
        "n_invalid": sum(not c["valid"] for c in calls),
    }


def _share(rows: pd.DataFrame, column: str) -> float | None:
    """The share of an analyte's samples with a flag, over its curves (weighted by their
    samples), in percent."""
    if column not in rows or "n_samples" not in rows:
        return None
    n = pd.to_numeric(rows["n_samples"], errors="coerce").fillna(0)
    share = pd.to_numeric(rows[column], errors="coerce")
    ok = share.notna() & (n > 0)
    total = float(n[ok].sum())
    return None if total == 0 else 100.0 * float((share[ok] * n[ok]).sum()) / total


def _percent(value: float | None) -> str:
    if value is None:
        return MISSING
    return "0%" if value == 0 else f"{value:.1f}%" if value < 99.95 else "100%"


#: The sample flags a curve counts (``n_*`` columns of the stored ``curves`` table) and how
#: the QC summary names them.
SAMPLE_FLAGS = {
    "n_outside_asymptotes": "outside the curve's asymptotes",
    "n_below_blank": "below the blank",
    "n_extrapolated": "extrapolated",
    "n_high_cv": "high replicate CV",
    "n_low_bead_count": "low bead count",
}


def qc_summary(qc: pd.DataFrame | None, curves: pd.DataFrame | None = None) -> list[dict]:
    """Per analyte, its curves' QC: ``analyte``, ``n_curves``, ``passed``, ``failed``,
    the share of its samples below the LLOQ and above the ULOQ (text and number), the
    ``flags``: the reasons curves failed (with how many curves) and, from the ``curves``
    table, how many wells carry each sample flag (:data:`SAMPLE_FLAGS`); ``mostly_below``
    when at least half of the samples are below the LLOQ (the report's threshold,
    :data:`MOSTLY_BELOW_LLOQ`): a curve that passes says little about samples it cannot
    quantify (issue 15, "Why" 6)."""
    if qc is None or qc.empty or "analyte" not in qc:
        return []
    out = []
    counted = {}
    if curves is not None and "analyte" in curves:
        present = [c for c in SAMPLE_FLAGS if c in curves]
        sums = curves.groupby(curves["analyte"].astype(str))[present].sum(numeric_only=True)
        counted = {a: sums.loc[a].to_dict() for a in sums.index}
    groups = dict(tuple(qc.groupby(qc["analyte"].astype(str), sort=False)))
    for analyte in sorted(groups, key=natural_key):
        rows = groups[analyte]
        passed = rows["qc_pass"].map(lambda v: v is True or v == 1) if "qc_pass" in rows else None
        n_pass = int(passed.sum()) if passed is not None else 0
        reasons: dict[str, int] = {}
        for text in rows.get("qc_reasons", pd.Series(dtype=object)):
            for part in text_cell(text).split(";"):
                if part.strip():
                    reasons[part.strip()] = reasons.get(part.strip(), 0) + 1
        below, above = _share(rows, "share_below_lloq"), _share(rows, "share_above_uloq")
        out.append(
            {
                "analyte": analyte,
                "n_curves": len(rows),
                "passed": n_pass,
                "failed": len(rows) - n_pass,
                "below": _percent(below),
                "above": _percent(above),
                "mostly_below": below is not None and below >= 100 * MOSTLY_BELOW_LLOQ,
                "flags": [f"{r} ({k} curve{'s' if k > 1 else ''})" for r, k in reasons.items()]
                + [
                    f"{int(n)} well{'s' if n > 1 else ''} {SAMPLE_FLAGS[c]}"
                    for c, n in counted.get(analyte, {}).items()
                    if n == n and n > 0
                ],
            }
        )
    return out


def well_id(plate: str, well: str, analyte: str) -> str:
    """The HTML id of a standard point's checkbox (the figure's points carry it)."""
    raw = f"{plate}|{well}|{analyte}"
    return "w-" + "".join(ch if ch.isalnum() else f"_{ord(ch):x}" for ch in raw)


def _point_id(point: dict) -> str:
    key = point["key"]
    return point.get("id") or well_id(key["plate_id"], key["well"], key["analyte"])


def standard_figure(
    curve: dict,
    points: list[dict],
    fit: dict | None,
    signal: str = "signal",
    *,
    editable: bool = False,
) -> dict:
    """One curve's standards (signal against nominal concentration), the fitted curve of
    the run and its quantification range; each point says whether it entered the fit and
    carries the id of its checkbox (``customdata``), so that a click ticks it.

    Parameters
    ----------
    curve:
        The curve of :func:`cytosafe.web.pages._standard_curves` (``plate``, ``analyte``).
    points:
        Its standard points (``nominal``, ``signal``, ``in_run``, ``now``, ``well``, ``key``).
    fit:
        Its row of the stored ``curves`` table (``model``, parameters, ``lloq``, ``uloq``,
        ``status``, ``concentration_unit``), or None.
    signal:
        The reader signal's name for the axis (ECL counts, MFI, OD).
    editable:
        Whether the page has the exclusion form: the points then say a click ticks them,
        and a last, empty trace is kept for the points ticked so far (the page's script
        fills it).
    """
    unit = esc(text_cell((fit or {}).get("concentration_unit")) or "concentration units")
    traces: list[dict] = []
    usable = [
        p
        for p in points
        if p["type"] == "standard"
        and (number(p["nominal"]) or 0) > 0
        and (number(p["signal_used"]) or 0) > 0
    ]
    xs = [float(p["nominal"]) for p in usable]
    model = MODELS.get(text_cell((fit or {}).get("model")))
    if fit is not None and model is not None and xs:
        params = np.array([number(fit.get(n)) for n in model.names], dtype=float)
        if np.all(np.isfinite(params)):
            grid = np.geomspace(min(xs) / 3, max(xs) * 3, 80)
            with np.errstate(all="ignore"):
                y = model.f(grid[None, :], params[None, :])[0]
            keep = np.isfinite(y) & (y > 0)
            ok = text_cell(fit.get("status")) in ("converged", "stalled")
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"{model.name} fit of this run",
                    "x": [float(f"{v:.4g}") for v in grid[keep]],
                    "y": [float(f"{v:.4g}") for v in y[keep]],
                    "line": {"color": ACCENT if ok else MUTED, "width": 2}
                    | ({} if ok else {"dash": "dash"}),
                    "hoverinfo": "skip",
                }
            )
    states = (
        ("in the fit", lambda p: not p["in_run"] and not p["now"], ACCENT, "circle"),
        ("excluded from the fit", lambda p: p["in_run"] and p["now"], FAIL, "x-thin-open"),
        (
            "ticked out, not yet refitted",
            lambda p: p["now"] and not p["in_run"],
            FAIL,
            "circle-open",
        ),
        ("restored, not yet refitted", lambda p: p["in_run"] and not p["now"], PASS, "circle-open"),
    )
    for name, chosen, color, symbol in states:
        mine = [p for p in usable if chosen(p)]
        if not mine:
            continue
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": name,
                "x": [float(p["nominal"]) for p in mine],
                "y": [float(p["signal_used"]) for p in mine],
                "customdata": [_point_id(p) for p in mine],
                "text": [
                    f"well {esc(p['well'])} · nominal {cell(p['nominal'])} {unit}<br>"
                    f"signal {cell(p['signal'])} · {name}"
                    + (
                        f"<br>reason: {esc(p['now_reason'] or p['run_reason'])}"
                        if p["now"] or p["in_run"]
                        else ""
                    )
                    for p in mine
                ],
                "hovertemplate": "%{text}"
                + ("<extra>click to tick</extra>" if editable else "<extra></extra>"),
                "marker": {
                    "size": 10,
                    "color": color,
                    "symbol": symbol,
                    "line": {"width": 1.5, "color": color},
                },
            }
        )
    if editable:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "ticked in the form",
                "x": [],
                "y": [],
                "showlegend": False,
                "hoverinfo": "skip",
                "marker": {
                    "size": 18,
                    "symbol": "square-open",
                    "color": "#b7791f",
                    "line": {"width": 2.5, "color": "#b7791f"},
                },
                "meta": "ticked",
            }
        )
    shapes = []
    lloq, uloq = number((fit or {}).get("lloq")), number((fit or {}).get("uloq"))
    if lloq and uloq and math.isfinite(lloq) and math.isfinite(uloq) and lloq > 0:
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": lloq,
                "x1": uloq,
                "y0": 0,
                "y1": 1,
                "fillcolor": RANGE_FILL,
                "line": {"width": 0},
                "layer": "below",
            }
        )
    layout = {
        "height": 340,
        # The legend runs under the plot, never over the points (issue 15, item 4).
        "margin": {"l": 60, "r": 12, "t": 12, "b": 90},
        "showlegend": True,
        "legend": {"orientation": "h", "x": 0, "y": -0.3, "yanchor": "top", "font": {"size": 11}},
        "xaxis": {"type": "log", "title": {"text": f"nominal concentration ({unit})"}},
        "yaxis": {"type": "log", "title": {"text": esc(signal)}},
        "shapes": shapes,
        "hovermode": "closest",
    }
    return {"data": traces, "layout": layout}
