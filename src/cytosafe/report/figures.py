"""The figure helpers every report (and the web app's comparison page) shares.

Plotly figure specifications for the reports, as plain JSON-ready dictionaries, with the
helpers that build them: :class:`Figures` (a page's figures under stable ids, written
once as JSON), the colours and layout template, and text helpers (:func:`esc`,
:func:`num`, :func:`rounded`, :func:`natural_key`).

Figures are built as ``{"data": [...], "layout": {...}}`` dictionaries rather than
``plotly.graph_objects`` figures: a QC report holds a hundred figures and the object
layer's validation costs seconds, and plain dictionaries let every number be rounded
before it is written (the size of a report is mostly its numbers). The shapes follow the
Plotly JSON schema; the tests pass every figure of a report through
``plotly.graph_objects.Figure`` to validate it.

Every user string (sample names, plate ids, analytes, donors, treatments) is HTML-escaped
here, because Plotly renders hover labels, titles and menu labels as a subset of HTML.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from cytosafe.curves.models import get_model
from cytosafe.schema.units import CONCENTRATION_UNIT
from cytosafe.schema.wells import PLATE_FORMATS, plate_format_for, well_index

__all__ = [
    "ACCENT",
    "FAIL",
    "GRID",
    "INK",
    "LAYOUT_TEMPLATE",
    "MUTED",
    "PALETTE",
    "PASS",
    "Figures",
    "concentration_unit_of",
    "describe_wells",
    "esc",
    "flag_map_figure",
    "four_pl",
    "natural_key",
    "num",
    "plate_heatmap_figure",
    "potency_columns",
    "potency_curve",
    "potency_curve_columns",
    "potency_figure",
    "potency_spec",
    "replicate_numbers",
    "rounded",
    "sample_columns",
    "signal_name",
    "standard_columns",
    "standard_curve_figure",
    "standard_curve_spec",
    "well_places",
]

#: Okabe & Ito's colour-blind-safe palette (without black), for donors.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#6A3D9A",
)

INK = "#1f2933"
MUTED = "#7b8794"
GRID = "#e6e9ee"
ACCENT = "#0b6e99"
PASS = "#1b7f5b"
FAIL = "#c2410c"
RANGE_FILL = "rgba(27,127,91,0.07)"

#: Shared layout defaults; the page applies them to every figure as its template, so
#: they are written once rather than once per figure.
LAYOUT_TEMPLATE = {
    "font": {
        "family": "Inter, system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif",
        "size": 12,
        "color": INK,
    },
    "paper_bgcolor": "#ffffff",
    "plot_bgcolor": "#ffffff",
    "colorway": list(PALETTE),
    "hovermode": "closest",
    "hoverlabel": {
        "align": "left",
        "bgcolor": "#ffffff",
        "bordercolor": GRID,
        "font": {"size": 12},
    },
    "xaxis": {
        "gridcolor": GRID,
        "linecolor": "#c5ccd6",
        "showline": True,
        "ticks": "outside",
        "tickcolor": "#c5ccd6",
        "zeroline": False,
        "automargin": True,
    },
    "yaxis": {
        "gridcolor": GRID,
        "linecolor": "#c5ccd6",
        "showline": True,
        "ticks": "outside",
        "tickcolor": "#c5ccd6",
        "zeroline": False,
        "automargin": True,
    },
    "legend": {"font": {"size": 11}, "bgcolor": "rgba(255,255,255,0.8)"},
    "margin": {"l": 56, "r": 16, "t": 36, "b": 48},
}

_REPLICATE_SYMBOLS = ("circle", "diamond", "square", "triangle-up", "cross", "star")
_CURVE_POINTS = 100  # fitted-curve grid; smooth at report sizes, small in the file


class Figures:
    """Collects a page's figure specifications under stable, sequential ids.

    Examples
    --------
    >>> figures = Figures()
    >>> figures.add({"data": [], "layout": {}})
    'fig1'
    >>> figures.to_json()
    '{"fig1":{"data":[],"layout":{}}}'
    """

    def __init__(self) -> None:
        self.specs: dict[str, dict] = {}

    def add(self, spec: dict) -> str:
        """Keep ``spec``'s data and layout; return its id (``fig1``, ``fig2``, ...)."""
        fig_id = f"fig{len(self.specs) + 1}"
        self.specs[fig_id] = {"data": spec["data"], "layout": spec["layout"]}
        return fig_id

    def to_json(self) -> str:
        """Every figure as one JSON object, safe to place inside a ``<script>`` element."""
        text = json.dumps(self.specs, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
        # Inside <script> the HTML parser only looks for "</script"; escaping "<", ">" and
        # "&" as JSON unicode escapes makes any user string inert there.
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def natural_key(text: object) -> tuple:
    """Sort key that orders embedded numbers by value (P2 before P10, D9 before D10)."""
    return tuple(
        (0, int(t), "") if t.isdigit() else (1, 0, t.lower())
        for t in re.split(r"(\d+)", str(text))
        if t
    )


def rounded(values: Iterable[float] | np.ndarray, digits: int = 4) -> list[float | None]:
    """Values rounded to ``digits`` significant digits as a JSON-ready list (NaN -> None).

    Rounding keeps reports small and byte-stable: four significant digits are more than a
    plotted point can show and more than any immunoassay signal carries.
    """
    arr = np.asarray(values, dtype=float).ravel()
    out: list[float | None] = []
    for v in arr.tolist():
        if not math.isfinite(v):
            out.append(None)
        elif v == 0:
            out.append(0.0)
        else:
            out.append(float(f"{v:.{digits}g}"))
    return out


def esc(value: object) -> str:
    """HTML-escape a user value for Plotly text; missing values become an empty string."""
    if type(value) is str:  # the common case, without pandas' missing-value checks
        return html.escape(value, quote=True)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return html.escape(str(value), quote=True)


def num(value: float, digits: int = 3) -> str:
    """A number for reading: thousands separated above 1,000, else ``digits`` significant."""
    if value is None:
        return "–"
    if isinstance(value, float):  # and np.float64: NumPy's ufunc is slow on one number
        if not math.isfinite(value):
            return "–"
    elif not np.isfinite(value):
        return "–"
    v = float(value)
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if v == 0:
        return "0"
    if abs(v) < 1e-3:
        return f"{v:.{digits - 1}e}"
    text = f"{v:.{digits}g}"
    return text if "e" not in text else f"{v:.{digits}f}"


#: The reader signal each export's convention or reader names, as an axis says it: MSD
#: imagers count electrochemiluminescence (ECL counts), Luminex xPONENT reports median
#: fluorescence intensity (MFI, net of the background when so stated), Bio-Rad Bio-Plex
#: fluorescence intensity (FI), absorbance readers optical density (OD). Checked in order.
_SIGNAL_NAMES = (
    (r"\bECL\b", "ECL counts"),
    (r"\bnet MFI\b", "net MFI"),
    (r"\bMFI\b", "MFI"),
    (r"\bFI\b", "FI"),
    (r"\b(OD|absorbance)\b", "OD"),
    (r"\bRLU\b", "RLU"),
)
_READER_SIGNALS = {"msd": "ECL counts", "xponent": "MFI", "bioplex": "FI"}


def signal_name(convention: object = None, reader: object = None) -> str:
    """The name of a plate's reader signal for an axis title (``ECL counts``, ``MFI``, ``OD``).

    ``convention`` is the ``signal`` text of the plate's calibration convention (what the
    export's software fits on), ``reader`` the name of the reader that read it; a tidy table
    without either gets ``signal as exported`` (its unit is whatever the instrument wrote).

    Examples
    --------
    >>> signal_name("Net MFI (Median minus the mean Background Median)")
    'net MFI'
    >>> signal_name("signal", "msd")
    'ECL counts'
    >>> signal_name()
    'signal as exported'
    """
    text = convention if isinstance(convention, str) else ""
    for pattern, name in _SIGNAL_NAMES:
        if re.search(pattern, text, flags=re.IGNORECASE):
            return name
    if isinstance(reader, str) and reader in _READER_SIGNALS:
        return _READER_SIGNALS[reader]
    return "signal as exported"


def _log_grid(lo: float, hi: float, n: int = _CURVE_POINTS) -> np.ndarray:
    return np.logspace(np.log10(lo), np.log10(hi), n)


def _vline(x: float, color: str, dash: str = "solid") -> dict:
    return {
        "type": "line",
        "xref": "x",
        "yref": "paper",
        "x0": rounded([x])[0],
        "x1": rounded([x])[0],
        "y0": 0,
        "y1": 1,
        "line": {"color": color, "width": 1.2, "dash": dash},
        "layer": "below",
    }


def _label(x: float, text: str, color: str) -> dict:
    return {
        "x": round(math.log10(x), 4),  # annotations on a log axis take log10 positions
        "xref": "x",
        "y": 1,
        "yref": "paper",
        "yanchor": "bottom",
        "text": text,
        "showarrow": False,
        "font": {"size": 10, "color": color},
    }


def standard_curve_figure(
    *,
    title: str,
    model,
    params: np.ndarray,
    curve: pd.Series,
    standards: pd.DataFrame,
    levels: pd.DataFrame,
    samples: pd.DataFrame,
    blank_subtracted: bool,
    unit: str = CONCENTRATION_UNIT,
    signal: str = "signal as exported",
) -> dict:
    """Standard curve of one plate x analyte: standards, fitted curve, range, samples.

    Parameters
    ----------
    title:
        Plot title (already escaped).
    model, params:
        The calibration model object and this curve's parameters ``(k,)``.
    curve:
        This curve's row of ``Calibration.curves`` (``lloq``, ``uloq``, ``lod``,
        ``blank_mean``, ``min_standard``, ``max_standard``, ``status``).
    standards:
        Its standard wells from ``Calibration.wells``.
    levels:
        Its rows of ``Calibration.standards`` (recovery, CV, pass flags per level).
    samples:
        Its sample and control wells from ``Calibration.wells``.
    blank_subtracted:
        Whether signals were blank-subtracted (the blank level is then zero, not drawn).
    unit:
        The curve's ``concentration_unit`` (pg/mL, or an arbitrary unit such as IU/mL):
        the concentration axis and every hover text say it.
    signal:
        The reader signal's name (:func:`signal_name`: ECL counts, MFI, OD) for the signal
        axis.

    Samples whose signal lies outside the curve's asymptotes (or at or below zero after
    blank subtraction) have no concentration; they are drawn at the edge of the plot they
    fall beyond, with a distinct open triangle and a hover text saying why, never dropped.
    """
    return standard_curve_spec(
        title=title,
        model=model,
        params=params,
        curve=curve,
        standards=standard_columns(standards),
        levels=levels.to_dict("records"),
        samples=sample_columns(samples),
        blank_subtracted=blank_subtracted,
        unit=unit,
        signal=signal,
    )


def replicate_numbers(replicate: pd.Series) -> np.ndarray:
    """Replicate numbers as integers, 1 where missing (the marker of a standard)."""
    return replicate.astype("Float64").fillna(1).to_numpy(dtype=float).astype(int)


def standard_columns(standards: pd.DataFrame) -> dict[str, np.ndarray]:
    """The columns of standard wells a standard-curve figure draws, as arrays."""
    return {
        "standard_concentration": standards["standard_concentration"].to_numpy(dtype=float),
        "signal_used": standards["signal_used"].to_numpy(dtype=float),
        "concentration_in_well": standards["concentration_in_well"].to_numpy(dtype=float),
        "replicate": replicate_numbers(standards["replicate"]),
        "well": standards["well"].to_numpy(dtype=object),
    }


def sample_columns(samples: pd.DataFrame) -> dict[str, np.ndarray]:
    """The columns of sample and control wells a standard-curve figure draws, as arrays."""
    return {
        "concentration_in_well": samples["concentration_in_well"].to_numpy(dtype=float),
        "signal_used": samples["signal_used"].to_numpy(dtype=float),
        "sample_type": samples["sample_type"].astype(str).to_numpy(dtype=object),
        "sample_id": samples["sample_id"].to_numpy(dtype=object),
        "flags": samples["flags"].to_numpy(dtype=object),
        "well": samples["well"].to_numpy(dtype=object),
    }


def standard_curve_spec(
    *,
    title: str,
    model,
    params: np.ndarray,
    curve: Mapping,
    standards: Mapping[str, np.ndarray],
    levels: list[dict],
    samples: Mapping[str, np.ndarray],
    blank_subtracted: bool,
    unit: str = CONCENTRATION_UNIT,
    signal: str = "signal as exported",
) -> dict:
    """:func:`standard_curve_figure` from arrays: the standards' and samples' columns
    (:func:`standard_columns`, :func:`sample_columns`), the curve's row and its levels as
    records. A report of many curves slices these out of arrays built once, instead of
    building a DataFrame per curve."""
    u = esc(unit)
    x_min, x_max = float(curve["min_standard"]), float(curve["max_standard"])
    traces: list[dict] = []
    have_params = params is not None and bool(np.all(np.isfinite(params)))

    # The axis spans the standards and the samples that back-calculate, but never more than
    # two decades beyond the standards (a wild extrapolation would flatten the plot).
    sx = samples["concentration_in_well"]
    sx = sx[np.isfinite(sx) & (sx > 0)]
    lo = x_min / 3
    hi = x_max * 3
    if sx.size:
        lo = max(min(lo, sx.min() / 1.5), x_min / 100)
        hi = min(max(hi, sx.max() * 1.5), x_max * 100)
    if have_params:
        grid = _log_grid(lo, hi)
        fitted = model.f(grid[None, :], params[None, :])[0]
        keep = np.isfinite(fitted) & (fitted > 0)
        # A fit that did not converge is still drawn (it shows where the fitter stopped),
        # dashed and grey, so that it cannot be mistaken for a usable curve.
        usable = str(curve["status"]) in ("converged", "stalled")
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{model.name} fit" if usable else f"{model.name} fit ({curve['status']})",
                "x": rounded(grid[keep]),
                "y": rounded(fitted[keep]),
                "line": {"color": ACCENT, "width": 2}
                if usable
                else {"color": MUTED, "width": 1.5, "dash": "dash"},
                "hovertemplate": "%{x:.3g} " + u + " → %{y:.4g}<extra>fit</extra>",
            }
        )

    # Standards: one trace per acceptance state; marker symbol by replicate.
    by_level = {r["nominal"]: r for r in levels}
    nominal = standards["standard_concentration"]
    state = np.full(len(nominal), "outside range", dtype=object)
    level_text = np.full(len(nominal), "", dtype=object)
    for i, x in enumerate(nominal):
        row = by_level.get(x)
        if row is None:
            continue
        if row["in_range"]:
            state[i] = "in range"
        elif not row["passes_as_end"]:
            state[i] = "failing"
        level_text[i] = (
            f"level recovery {num(row['recovery'])}% · CV {num(row['cv'])}%"
            f" · {'pass' if row['passes'] else 'end pass' if row['passes_as_end'] else 'fail'}"
        )
    y = standards["signal_used"]
    back = standards["concentration_in_well"]
    rep = standards["replicate"]
    hover = [
        f"well {esc(w)} · replicate {r}<br>nominal {num(n)} {u}<br>"
        f"back-calculated {num(b)} {u} ({num(100 * b / n)}%)<br>{t}"
        for w, r, n, b, t in zip(standards["well"], rep, nominal, back, level_text, strict=True)
    ]
    style = {
        "in range": {"color": ACCENT, "line": {"color": "#ffffff", "width": 1}},
        "outside range": {"color": "#9aa5b1", "line": {"color": "#ffffff", "width": 1}},
        "failing": {"color": "rgba(0,0,0,0)", "line": {"color": FAIL, "width": 1.6}},
    }
    for name in ("in range", "outside range", "failing"):
        sel = (state == name) & np.isfinite(y) & (y > 0)
        if not sel.any():
            continue
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"standards, {name}",
                "x": rounded(nominal[sel]),
                "y": rounded(y[sel]),
                "marker": {
                    "size": 8,
                    "symbol": [
                        _REPLICATE_SYMBOLS[(r - 1) % len(_REPLICATE_SYMBOLS)] for r in rep[sel]
                    ],
                    **style[name],
                },
                "text": [h for h, s in zip(hover, sel, strict=True) if s],
                "hovertemplate": "%{text}<extra></extra>",
            }
        )

    # Samples and kit controls at their back-calculated positions on the curve.
    n_off = 0
    off_x, off_y, off_sym, off_text = [], [], [], []
    y_all = np.concatenate([standards["signal_used"], samples["signal_used"]])
    y_all = y_all[np.isfinite(y_all) & (y_all > 0)]
    y_floor = float(y_all.min()) / 1.6 if y_all.size else 1.0
    top = float(np.nanmax(model.f(np.array([[hi]]), params[None, :]))) if have_params else np.nan
    bottom = float(np.nanmin(model.f(np.array([[lo]]), params[None, :]))) if have_params else np.nan
    for kind, color, symbol in (("sample", "#52606d", "circle"), ("control", "#b7791f", "diamond")):
        of_kind = samples["sample_type"] == kind
        if not of_kind.any():
            continue
        s = {name: values[of_kind] for name, values in samples.items()}
        x = s["concentration_in_well"]
        yy = s["signal_used"]
        ok = np.isfinite(x) & (x > 0) & np.isfinite(yy) & (yy > 0)
        names = s["sample_id"]
        flags = s["flags"]
        # No concentration (outside the asymptotes, below the blank, failed curve): at the
        # edge of the plot the signal lies beyond, so every well is seen.
        off = ~ok & np.isfinite(yy)
        n_off += int(off.sum())
        sig_off = yy[off]
        x_on = np.full(sig_off.shape, np.nan)
        if have_params and sig_off.size:
            with np.errstate(all="ignore"):
                x_on = model.inverse(sig_off[None, :], params[None, :])[0]
        for nm, w, sig, fl, xi in zip(
            names[off], s["well"][off], sig_off, flags[off], x_on, strict=True
        ):
            flag_text = esc(str(fl).replace(";", ", ")) if isinstance(fl, str) and fl else "none"
            if sig > 0 and np.isfinite(xi) and lo <= xi <= hi:
                # Within the curve's reach but given no concentration (a failed curve):
                # where the curve would put it, as an open square.
                off_x.append(float(xi))
                off_y.append(sig)
                off_sym.append("square-open")
                why = "no concentration reported (see flags)"
            else:
                high = bool(np.isfinite(top) and sig > 0 and abs(sig - top) < abs(sig - bottom))
                off_x.append(hi if high else lo)
                off_y.append(sig if sig > 0 else y_floor)
                off_sym.append("triangle-right-open" if high else "triangle-left-open")
                why = (
                    "net signal at or below zero (below the blank)"
                    if sig <= 0
                    else "signal beyond the curve's asymptote at high concentration"
                    if high
                    else "signal beyond the curve's asymptote at low concentration"
                    if have_params
                    else "no usable curve"
                ) + ", drawn at the plot's edge"
            off_text.append(
                f"{esc(nm) or kind} · well {esc(w)}<br>signal {num(sig, 4)}: no concentration"
                f"<br>{why}<br>flags: {flag_text}"
            )
        if not ok.any():
            continue
        text = [
            f"{esc(nm) or kind} · well {esc(w)}<br>signal {num(sig, 4)} → {num(c)} {u} in well"
            f"<br>flags: {esc(str(fl).replace(';', ', ')) if isinstance(fl, str) and fl else 'none'}"
            for nm, w, sig, c, fl, k in zip(names, s["well"], yy, x, flags, ok, strict=True)
            if k
        ]
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{kind}s",
                "x": rounded(x[ok]),
                "y": rounded(yy[ok]),
                "marker": {"size": 5, "color": color, "opacity": 0.55, "symbol": symbol},
                "text": text,
                "hovertemplate": "%{text}<extra></extra>",
            }
        )
    if off_x:
        # Wells at one edge spread a quarter decade inward, so that each stays visible and
        # can be hovered (many share a signal at or below zero).
        ox = np.array(off_x, dtype=float)
        for symbol, sign in (("triangle-left-open", 1.0), ("triangle-right-open", -1.0)):
            at = np.flatnonzero(np.array(off_sym) == symbol)
            if at.size > 1:
                ox[at] *= 10 ** (sign * 0.25 * np.arange(at.size) / (at.size - 1))
        off_x = ox.tolist()
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "no concentration (outside the curve)",
                "x": rounded(off_x),
                "y": rounded(off_y),
                "cliponaxis": False,
                "marker": {"size": 8, "color": FAIL, "symbol": off_sym, "line": {"width": 1.4}},
                "text": off_text,
                "hovertemplate": "%{text}<extra></extra>",
            }
        )

    shapes, annotations = [], []
    lloq, uloq, lod = (float(curve[k]) for k in ("lloq", "uloq", "lod"))
    if np.isfinite(lloq) and np.isfinite(uloq):
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": rounded([lloq])[0],
                "x1": rounded([uloq])[0],
                "y0": 0,
                "y1": 1,
                "fillcolor": RANGE_FILL,
                "line": {"width": 0},
                "layer": "below",
            }
        )
        shapes += [_vline(lloq, PASS), _vline(uloq, PASS)]
        annotations += [_label(lloq, "LLOQ", PASS), _label(uloq, "ULOQ", PASS)]
    if np.isfinite(lod) and lod > 0 and lo < lod < hi:
        shapes.append(_vline(lod, MUTED, "dot"))
    blank = float(curve["blank_mean"])
    if not blank_subtracted and np.isfinite(blank) and blank > 0:
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "yref": "y",
                "x0": 0,
                "x1": 1,
                "y0": rounded([blank])[0],
                "y1": rounded([blank])[0],
                "line": {"color": MUTED, "width": 1, "dash": "dash"},
            }
        )
    layout = {
        # The title (when the page gives none in a caption) sits at the very top, clear of
        # the LLOQ/ULOQ labels above the plot.
        **(
            {
                "title": {
                    "text": title,
                    "font": {"size": 13},
                    "x": 0.02,
                    "xanchor": "left",
                    "y": 0.985,
                    "yanchor": "top",
                }
            }
            if title
            else {}
        ),
        "height": 300,
        "showlegend": False,
        "xaxis": {"type": "log", "title": {"text": f"concentration in well ({u})"}},
        "yaxis": {
            "type": "log",
            "title": {
                "text": f"{'net ' if blank_subtracted and 'net' not in signal else ''}{esc(signal)}"
            },
        },
        "shapes": shapes,
        "annotations": annotations,
        "margin": {"l": 56, "r": 12, "t": 48 if title else 24, "b": 44},
    }
    return {"data": traces, "layout": layout, "meta": {"off_curve": n_off}}


def _plate_grid(wells: Sequence[str]) -> tuple[int, int]:
    return PLATE_FORMATS[plate_format_for(list(wells))]


def _grid_values(wells: Sequence[str], values: Sequence, shape: tuple[int, int], fill=None):
    grid = [[fill for _ in range(shape[1])] for _ in range(shape[0])]
    for w, v in zip(wells, values, strict=True):
        r, c = well_index(w)
        grid[r][c] = v
    return grid


def concentration_unit_of(rows: pd.DataFrame) -> str:
    """The concentration unit of rows of one curve (pg/mL for a table without one)."""
    if "concentration_unit" not in rows.columns:
        return CONCENTRATION_UNIT
    units = rows["concentration_unit"].dropna().astype(str).unique()
    return " / ".join(sorted(units)) if len(units) else CONCENTRATION_UNIT


def describe_wells(plate: pd.DataFrame) -> dict[str, str]:
    """Hover description of what each well of one plate holds (the same for every analyte)."""
    names = ["well", "analyte", "sample_type", "sample_id", "standard_concentration",
             "treatment_concentration", "treatment_unit", "donor_id", "treatment"]  # fmt: skip
    col = {n: plate[n].tolist() for n in names}
    units = plate["concentration_unit"].tolist() if "concentration_unit" in plate else None
    well, analyte = col["well"], col["analyte"]
    out = {}
    # Each well's first row by analyte (the row order breaks ties), wells in order.
    for i in sorted(range(len(well)), key=lambda i: (well[i], analyte[i])):
        w = well[i]
        if w in out:
            continue
        stype = col["sample_type"][i]
        parts = [f"<b>{esc(w)}</b> · {esc(stype)}"]
        if esc(col["sample_id"][i]):
            parts.append(esc(col["sample_id"][i]))
        nominal = col["standard_concentration"][i]
        if stype in ("standard", "control") and np.isfinite(nominal):
            unit = units[i] if units is not None else None
            unit = unit if isinstance(unit, str) else CONCENTRATION_UNIT
            parts.append(f"nominal {num(nominal)} {esc(unit)}")
        dose_x = col["treatment_concentration"][i]
        dose = f"{num(dose_x)} {esc(col['treatment_unit'][i])}" if np.isfinite(dose_x) else ""
        culture = " · ".join(
            x for x in (esc(col["donor_id"][i]), esc(col["treatment"][i]), dose) if x
        )
        if culture:
            parts.append(culture)
        out[w] = "<br>".join(parts)
    return out


def _map_layout(title: str, shape: tuple[int, int], buttons: list[dict]) -> dict:
    return {
        "title": {"text": title, "font": {"size": 13}, "x": 0.02, "xanchor": "left"},
        "height": 150 + 26 * shape[0] if shape[0] <= 8 else 120 + 20 * shape[0],
        "xaxis": {
            "side": "top",
            "showgrid": False,
            "showline": False,
            "ticks": "",
            "title": {"text": "plate column", "standoff": 2, "font": {"size": 10}},
        },
        "yaxis": {
            "autorange": "reversed",
            "showgrid": False,
            "showline": False,
            "ticks": "",
            "title": {"text": "plate row", "standoff": 2, "font": {"size": 10}},
        },
        "margin": {"l": 44, "r": 16, "t": 96, "b": 16},
        "updatemenus": [_menu(buttons)],
    }


def _axes(shape: tuple[int, int]) -> tuple[list[str], list[str]]:
    return [str(j + 1) for j in range(shape[1])], [chr(ord("A") + i) for i in range(shape[0])]


def plate_heatmap_figure(
    plate: pd.DataFrame,
    *,
    title: str,
    described: dict[str, str],
    signal: str = "signal as exported",
) -> dict:
    """Plate layout of one plate coloured by log10 signal, with a menu per analyte.

    ``plate`` holds the plate's rows of ``Calibration.wells`` (all analytes);
    ``described`` the hover description of each well (:func:`describe_wells`); ``signal``
    the reader signal's name (:func:`signal_name`) for the colour bar and hover text.
    """
    shape = _plate_grid(plate["well"].unique())
    wells_all = sorted(described)
    custom = _grid_values(wells_all, [described[w] for w in wells_all], shape)
    per_analyte = []
    analytes = plate["analyte"].to_numpy(dtype=object)
    signals = plate["signal"].to_numpy(dtype=float)
    concentrations = plate["concentration"].to_numpy(dtype=float)
    all_flags = plate["flags"].to_numpy(dtype=object)
    all_wells = plate["well"].to_numpy(dtype=object)
    all_units = (
        plate["concentration_unit"].to_numpy(dtype=object)
        if "concentration_unit" in plate.columns
        else None
    )
    for analyte in sorted(pd.unique(analytes)):  # groupby's order
        rows = np.flatnonzero(analytes == analyte)
        sig = signals[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(sig > 0, np.log10(sig), np.nan)
        if all_units is None:
            unit = esc(CONCENTRATION_UNIT)
        else:
            known = sorted({str(u) for u in all_units[rows] if pd.notna(u)})
            unit = esc(" / ".join(known) if known else CONCENTRATION_UNIT)
        head = f"{esc(analyte)}: {esc(signal)} "
        text = [
            head
            + num(s, 4)
            + (f" · {num(c)} {unit}" if np.isfinite(c) else "")
            + (f"<br>flags: {esc(f.replace(';', ', '))}" if isinstance(f, str) and f else "")
            for s, c, f in zip(sig, concentrations[rows], all_flags[rows], strict=True)
        ]
        wells = all_wells[rows].tolist()
        per_analyte.append(
            (
                analyte,
                _grid_values(wells, rounded(z, 3), shape),
                _grid_values(wells, text, shape, fill=""),
            )
        )
    x, y = _axes(shape)
    first = per_analyte[0]
    trace = {
        "type": "heatmap",
        "x": x,
        "y": y,
        "z": first[1],
        "text": first[2],
        "customdata": custom,
        "hovertemplate": "%{customdata}<br>%{text}<extra></extra>",
        "colorscale": "Viridis",
        "colorbar": {
            "title": {"text": f"log10<br>{esc(signal).replace(' ', '<br>', 1)}"},
            "thickness": 12,
        },
        "xgap": 2,
        "ygap": 2,
        "hoverongaps": False,
    }
    buttons = [
        {"label": esc(name), "method": "restyle", "args": [{"z": [z], "text": [t]}]}
        for name, z, t in per_analyte
    ]
    return {"data": [trace], "layout": _map_layout(title, shape, buttons)}


def _menu(buttons: list[dict]) -> dict:
    return {
        "type": "dropdown",
        "buttons": buttons,
        "x": 1.0,
        "xanchor": "right",
        "y": 1.0,
        "yanchor": "bottom",
        "pad": {"b": 28},
        "bgcolor": "#ffffff",
        "bordercolor": GRID,
        "font": {"size": 11},
        "showactive": True,
    }


def flag_map_figure(
    plate: pd.DataFrame, flags: Sequence[str], *, title: str, described: dict[str, str]
) -> dict:
    """Which wells of one plate carry which flags, over all analytes; a menu per flag."""
    shape = _plate_grid(plate["well"].unique())
    well, analyte = plate["well"].tolist(), plate["analyte"].tolist()
    texts = plate["flags"].tolist()
    wells = sorted(set(well))
    at = {w: i for i, w in enumerate(wells)}
    counts = np.zeros((len(wells), len(flags)), dtype=np.int64)
    np.add.at(
        counts,
        np.array([at[w] for w in well], dtype=np.int64),
        np.column_stack([plate[f].to_numpy(dtype=np.int64) for f in flags]),
    )
    # Each well's flagged analytes, in analyte order.
    lines: dict[str, list[str]] = {}
    for i in sorted(range(len(well)), key=lambda i: (well[i], analyte[i])):
        f = texts[i]
        if isinstance(f, str) and f:
            lines.setdefault(well[i], []).append(f"{esc(analyte[i])}: {esc(f.replace(';', ', '))}")
    text = {w: "<br>".join(v) for w, v in lines.items()}
    custom = _grid_values(
        wells, [described.get(w, esc(w)) + "<br>" + text.get(w, "no flags") for w in wells], shape
    )
    total = counts.sum(axis=1)
    options = [("all flags", total)] + [
        (f.replace("_", " "), counts[:, j]) for j, f in enumerate(flags)
    ]
    zs = [_grid_values(wells, [float(v) for v in o], shape) for _, o in options]
    x, y = _axes(shape)
    trace = {
        "type": "heatmap",
        "x": x,
        "y": y,
        "z": zs[0],
        "customdata": custom,
        "hovertemplate": "%{customdata}<br><i>count: %{z}</i><extra></extra>",
        "colorscale": [[0, "#f5f7fa"], [0.0001, "#fde9c8"], [0.5, "#f0a04b"], [1, "#b5370d"]],
        # One colour scale for every menu option, so a colour means the same count.
        "zmin": 0,
        "zmax": max(1, int(total.max()) if len(wells) else 1),
        "colorbar": {"title": {"text": "flags<br>(count)"}, "thickness": 12},
        "xgap": 2,
        "ygap": 2,
        "hoverongaps": False,
    }
    buttons = [
        {"label": name, "method": "restyle", "args": [{"z": [z]}]}
        for (name, _), z in zip(options, zs, strict=True)
    ]
    return {"data": [trace], "layout": _map_layout(title, shape, buttons)}


def four_pl(x: np.ndarray, bottom: float, top: float, slope: float, ec50: float) -> np.ndarray:
    """The potency 4PL, ``y = d + (a - d) / (1 + (x/c)^b)`` with a = bottom, d = top."""
    with np.errstate(all="ignore"):
        return top + (bottom - top) / (1 + (x / ec50) ** slope)


#: Columns of the potency table holding each curve parameter.
_POTENCY_PARAMETERS = {"a": "bottom", "b": "slope", "c": "midpoint", "d": "top", "g": "asymmetry"}


def potency_curve_columns(row: Mapping) -> tuple[str, ...]:
    """The potency-table columns holding the parameters of ``row``'s model (the 4PL's
    ``bottom``, ``slope``, ``midpoint``, ``top``; the 5PL adds ``asymmetry``)."""
    name = row.get("model", "4PL")
    names = get_model(name if isinstance(name, str) else "4PL").names
    return tuple(_POTENCY_PARAMETERS[k] for k in names)


def potency_curve(row: Mapping, x: np.ndarray) -> np.ndarray:
    """The fitted concentration-response curve of a potency table row, at ``x``.

    The row's ``model`` (the 4PL when absent) with its parameters from the ``bottom``,
    ``slope``, ``midpoint``, ``top`` (and for the 5PL ``asymmetry``) columns; NaN where a
    parameter is missing.
    """
    x = np.asarray(x, dtype=float)
    name = row.get("model", "4PL")
    name = "4PL" if not isinstance(name, str) else name
    if name == "4PL":
        return four_pl(
            x, *(float(row.get(k, np.nan)) for k in ("bottom", "top", "slope", "midpoint"))
        )
    p = np.array([[float(row.get(k, np.nan)) for k in potency_curve_columns(row)]])
    with np.errstate(all="ignore"):
        return get_model(name).f(x.reshape(1, -1), p)[0]


def potency_figure(
    *,
    title: str,
    points: pd.DataFrame,
    negatives: pd.DataFrame,
    fits: pd.DataFrame,
    ecx: float,
    unit: str,
    analyte: str,
    response_unit: str = CONCENTRATION_UNIT,
) -> dict:
    """Concentration-response of one treatment x analyte: donors' wells and fitted curves.

    ``unit`` is the treatment's concentration unit, ``response_unit`` the cytokine's
    (``concentration_unit``: pg/mL, or an arbitrary unit such as IU/mL).

    Parameters
    ----------
    points:
        The treatment's sample wells (``donor_id``, ``treatment_concentration``,
        ``response``, ``censored``, ``well``, ``plate_id``).
    negatives:
        The same donors' negative-control wells (drawn one decade below the lowest tested
        concentration, as a log axis has no zero).
    fits:
        The rows of the potency table for these donors.
    """
    return potency_spec(
        title=title,
        points=potency_columns(points),
        negatives=potency_columns(negatives),
        fits=fits.to_dict("records"),
        ecx=ecx,
        unit=unit,
        analyte=analyte,
        response_unit=response_unit,
    )


def well_places(plate_id: Iterable, well: Iterable) -> list[str]:
    """``plate P · well W`` of each row, escaped (the potency figures' hover line)."""
    return [f"plate {esc(pl)} · well {esc(w)}" for pl, w in zip(plate_id, well, strict=True)]


def potency_columns(frame: pd.DataFrame) -> dict[str, np.ndarray | list]:
    """The columns of concentration-response wells a potency figure draws, as arrays."""
    return {
        "donor": frame["donor_id"].to_numpy(dtype=object),
        "x": frame["treatment_concentration"].to_numpy(dtype=float),
        "y": frame["response"].to_numpy(dtype=float),
        "cens": frame["censored"].to_numpy(dtype=bool),
        "where": well_places(frame["plate_id"], frame["well"]),
    }


def _skipna(values: np.ndarray, how) -> float:
    """pandas' ``min``/``max`` of a float column: NaN skipped, NaN when nothing is left."""
    kept = values[~np.isnan(values)]
    return float(how(kept)) if kept.size else math.nan


def potency_spec(
    *,
    title: str,
    points: Mapping,
    negatives: Mapping,
    fits: list[dict],
    ecx: float,
    unit: str,
    analyte: str,
    response_unit: str = CONCENTRATION_UNIT,
) -> dict:
    """:func:`potency_figure` from arrays: the points' and negatives' columns
    (:func:`potency_columns`) and the fits as records. Plain arrays: a study has hundreds
    of donor x treatment x analyte series, and pandas' per-group overhead would dominate
    the report's build time."""
    traces = []
    x_lo = _skipna(points["x"], np.min)
    x_hi = _skipna(points["x"], np.max)
    x_neg = x_lo / 10
    donors = sorted(set(points["donor"]) | {r["donor_id"] for r in fits}, key=natural_key)
    fit_by = {}
    for row in fits:
        fit_by.setdefault(row["donor_id"], row)
    cols = {"p": points, "n": negatives}
    ecn = f"ec{ecx:g}"
    unit_text, analyte_text, response_text = esc(unit), esc(analyte), esc(response_unit)
    grid = grid_x = None  # the fitted curves' grid, the same for every donor
    for i, donor in enumerate(donors):
        # Past eight donors the colours repeat; the line style tells the cycles apart.
        color = PALETTE[i % len(PALETTE)]
        dash = ("solid", "dash", "dashdot", "longdash")[(i // len(PALETTE)) % 4]
        label = esc(donor) or "(no donor)"
        sel_p = np.flatnonzero(cols["p"]["donor"] == donor)
        sel_n = np.flatnonzero(cols["n"]["donor"] == donor)
        f = fit_by.get(donor)
        status = "not fitted" if f is None else str(f["status"])
        xs = np.concatenate([cols["p"]["x"][sel_p], np.full(sel_n.size, x_neg)])
        ys = np.concatenate([cols["p"]["y"][sel_p], cols["n"]["y"][sel_n]])
        cens = np.concatenate([cols["p"]["cens"][sel_p], cols["n"]["cens"][sel_n]])
        wells = [cols["p"]["where"][j] for j in sel_p] + [cols["n"]["where"][j] for j in sel_n]
        kinds = [""] * sel_p.size + ["negative control<br>"] * sel_n.size
        ok = np.isfinite(xs) & np.isfinite(ys) & (ys > 0)
        head = f"<b>{label}</b> · {status.replace('_', ' ')}<br>"
        text = [
            f"{head}{k}{'' if k else f'{num(x)} {unit_text}<br>'}"
            f"{analyte_text} {num(y)} {response_text}"
            f"{' (censored at LLOQ/2 or ULOQ)' if c else ''}<br>{w}"
            for x, y, c, w, k, good in zip(xs, ys, cens, wells, kinds, ok, strict=True)
            if good
        ]
        sym = np.where(cens, "circle-open", "circle")
        sym = np.where(np.arange(len(xs)) >= sel_p.size, np.where(cens, "x-open", "x"), sym)
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": label,
                "legendgroup": label,
                "x": rounded(xs[ok]),
                "y": rounded(ys[ok]),
                "marker": {"color": color, "size": 7, "symbol": sym[ok].tolist(), "opacity": 0.85},
                "text": text,
                "hovertemplate": "%{text}<extra></extra>",
            }
        )
        drawn = f is not None and all(
            np.isfinite(float(f.get(k, np.nan))) for k in potency_curve_columns(f)
        )
        if drawn:
            if grid is None:
                grid = _log_grid(x_lo / 3, x_hi * 3, 60)
                grid_x = rounded(grid)
            line_x, line_y = grid, potency_curve(f, grid)
            line = {"color": color, "width": 2, "dash": dash}
            name = f"{label} {f.get('model', '4PL')}"
        else:
            # No curve to draw (no response, censored ECs, too few concentrations): join
            # the donor's geometric means per tested concentration, dotted, so the series
            # still reads as one donor.
            tested = ok[: sel_p.size]
            px, py = xs[: sel_p.size][tested], ys[: sel_p.size][tested]
            line_x = np.unique(px)
            line_y = np.array([np.exp(np.mean(np.log(py[px == x]))) for x in line_x])
            line = {"color": color, "width": 1, "dash": "dot"}
            name = f"{label} means"
        if len(line_x):
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": name,
                    "legendgroup": label,
                    "showlegend": False,
                    "x": list(grid_x) if drawn else rounded(line_x),
                    "y": rounded(line_y),
                    "line": line,
                    "hoverinfo": "skip",
                }
            )
        if f is None:
            continue
        for name, symbol in (("ec50", "line-ns"), (ecn, "line-ns-open")):
            if not np.isfinite(float(f.get(name, np.nan))):
                continue
            xe = float(f[name])
            lo_ci, hi_ci = float(f[f"{name}_ci_low"]), float(f[f"{name}_ci_high"])
            ye = potency_curve(f, np.array([xe]))[0] if drawn else np.nan
            if not np.isfinite(ye):
                continue
            traces.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"{label} {name.upper()}",
                    "legendgroup": label,
                    "showlegend": False,
                    "x": rounded([xe]),
                    "y": rounded([ye]),
                    "error_x": {
                        "type": "data",
                        "symmetric": False,
                        "array": rounded([hi_ci - xe]),
                        "arrayminus": rounded([xe - lo_ci]),
                        "color": color,
                        "thickness": 1,
                        "width": 3,
                    },
                    "marker": {
                        "color": color,
                        "size": 14,
                        "symbol": symbol,
                        "line": {"width": 2, "color": color},
                    },
                    "hovertemplate": (
                        f"<b>{label}</b><br>{name.upper()} {num(xe)} {esc(unit)}"
                        f" [{num(lo_ci)}, {num(hi_ci)}]<extra></extra>"
                    ),
                }
            )
    layout = {
        "title": {"text": title, "font": {"size": 13}, "x": 0.02, "xanchor": "left"},
        "height": 340,
        "xaxis": {"type": "log", "title": {"text": f"concentration ({esc(unit)})"}},
        "yaxis": {"type": "log", "title": {"text": f"{esc(analyte)} ({esc(response_unit)})"}},
        "legend": {"font": {"size": 10}, "itemclick": "toggle", "tracegroupgap": 0},
        "margin": {"l": 56, "r": 12, "t": 40, "b": 44},
    }
    return {"data": traces, "layout": layout}
