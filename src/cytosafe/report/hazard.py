"""The hazard-identification study report: one self-contained HTML file, and its PDF.

:func:`write_hazard_report` turns an :class:`~cytosafe.hazard.AnalysisResult`
(quantification + hazard) into the page a toxicologist sends to a colleague:

* **Executive summary** — the hazard call of every test article in every format with the
  reason in words, the validity of the study for hazard calling, every warning;
* **Study design** — treatments, roles, concentrations, matched controls, benchmarks,
  donors, analytes, inputs; positive-control acceptance;
* **Plate QC** — the quantification report's plate QC table (same rows, same rules);
* **Donor responses** — a heatmap of donors x analytes (log2 fold change over the
  matched negative control, a menu per treatment) and per-analyte dot plots of every
  treatment with a line per donor;
* **Concentration-response** — the quantification step's fits (4PL by default) with EC50/ECx;
* **Statistics** — across-donor summary (responders, GMR with CI, Wilcoxon, adjusted p),
  mixed models, ranking against benchmarks (with the concentration ratio to each
  benchmark and the comparison at a matched concentration);
* **Reference library** — how the study's responder rule and formats did on the cited
  reference compounds (sensitivity and specificity against clinical CRS with exact
  intervals, judged against the library's donor panel as ``cytosafe reference evaluate``
  judges, and again with the study's own donors; the compounds missed and why:
  :func:`cytosafe.reference.study_performance`),
  and each test article among the library's compounds tested in the same format
  (:func:`cytosafe.reference.place_in_library`);
* **Methods** — CytoSafe version, rule set, curve model, weighting, LLOQ rule,
  statistics, classification, with citations.

The page needs no network (plotly.js inlined once; figures drawn as they scroll into
view; ``window.csDrawAll()`` draws all, as printing and the PDF do). The same result
gives the same bytes. :func:`write_hazard_pdf` prints the page with headless Chromium
through Playwright.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

import cytosafe.report.figures as figs
from cytosafe.report.figures import PALETTE, Figures, esc, natural_key, num, rounded
from cytosafe.report.page import environment, input_files, page_scripts, simulated_reason
from cytosafe.report.qc import REFERENCES as QC_REFERENCES
from cytosafe.report.qc import qc_table, single_concentration
from cytosafe.schema.choices import CurveModel, Weighting
from cytosafe.schema.units import CONCENTRATION_UNIT

if TYPE_CHECKING:
    from cytosafe.hazard.pipeline import AnalysisResult

__all__ = ["CHROMIUM", "render_hazard_report", "write_hazard_pdf", "write_hazard_report"]

#: Debian's Chromium; Playwright drives it instead of downloading its own browser.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

ROLE_ORDER = {
    "negative_control": 0,
    "vehicle": 1,
    "isotype_control": 2,
    "positive_control": 4,
    "test": 5,
}
CLASS_STYLE = {
    "negative": "pass",
    "low": "warn",
    "moderate": "warn",
    "high": "fail",
    "invalid": "fail",
}


def _fmt(fmt: object, inc: object) -> str:
    text = str(fmt).replace("_", " ") if isinstance(fmt, str) and fmt else "no format"
    return text + (f" · {float(inc):g} h" if pd.notna(inc) and float(inc) >= 0 else "")


class _Refs:
    """Numbered references: the hazard data file's and the QC report's."""

    def __init__(self) -> None:
        from cytosafe.hazard.rules import references

        self.items: list[tuple[str, str]] = list(references().items())
        # A source both files cite (ICH M10, FDA 2018) is listed once.
        have = {k for k, _ in self.items}
        self.items += [(r.key, r.citation) for r in QC_REFERENCES if r.key not in have]
        self.number = {k: i + 1 for i, (k, _) in enumerate(self.items)}

    def cite(self, *keys: str) -> str:
        nums = sorted({self.number[k] for k in keys if k in self.number})
        return "[" + ", ".join(map(str, nums)) + "]" if nums else ""

    def add(self, key: str, citation: str) -> str:
        """Cite a source not in the data files (the reference library's), listed once."""
        if key not in self.number:
            self.items.append((key, citation))
            self.number[key] = len(self.items)
        return self.cite(key)


def _treatment_sort(design, name: str) -> tuple:
    t = design.treatments.get(name)
    role = t.role if t else "test"
    bench = 3 if (t and t.benchmark and role == "test") else ROLE_ORDER.get(role, 6)
    return (bench, natural_key(name))


# --- figures ---------------------------------------------------------------------------------
def heatmap_figure(responses: pd.DataFrame, design, *, title: str) -> dict | None:
    """Donors x analytes, log2 fold change at each treatment's top concentration; a menu
    per treatment. Cells of responders carry a dot, indeterminate calls a question mark."""
    if responses.empty:
        return None
    r = responses.copy()
    if "call" not in r:  # a responses table from before calls could be indeterminate
        r["call"] = np.where(r["responder"].astype(bool), "responder", "non-responder")
    r["_ind"] = r["call"].astype(str).eq("indeterminate")
    top = r.groupby("treatment")["treatment_concentration"].transform("max")
    r = r[r["treatment_concentration"] == top]
    donors = sorted(r["donor_id"].astype(str).unique(), key=natural_key)
    analytes = sorted(r["analyte"].astype(str).unique(), key=natural_key)
    d_ix = {d: i for i, d in enumerate(donors)}
    a_ix = {a: j for j, a in enumerate(analytes)}
    options = []
    # Test articles first: the menu opens on what the study is about.
    order = sorted(r["treatment"].unique(), key=lambda t: _treatment_sort(design, t))
    order = [t for t in order if design.role(t) == "test"] + [
        t for t in order if design.role(t) != "test"
    ]
    r = r.assign(_unit=_units(r))
    for treatment in order:
        g = r[r["treatment"] == treatment]
        g = g.groupby(["donor_id", "analyte"], sort=False).agg(
            l2=("log2_fold_change", "mean"),
            fc=("fold_change", "mean"),
            bound=("fold_change_bound", "first"),
            resp=("responder", "any"),
            ind=("_ind", "any"),
            rule=("rule_fired", "first"),
            why=("reason", "first"),
            t=("test_concentration", "mean"),
            tc=("test_censored", "first"),
            c=("control_concentration", "mean"),
            cc=("control_censored", "first"),
            u=("_unit", "first"),
        )
        z = [[None] * len(analytes) for _ in donors]
        text = [[""] * len(analytes) for _ in donors]
        hover = [[""] * len(analytes) for _ in donors]
        for row in g.reset_index().itertuples(index=False):
            donor, analyte = row.donor_id, row.analyte
            i, j = d_ix[str(donor)], a_ix[str(analyte)]
            z[i][j] = rounded([row.l2], 3)[0]
            text[i][j] = "●" if row.resp else ("?" if row.ind else "")
            bound = "" if row.bound in ("=", "") else f" ({row.bound})"
            hover[i][j] = (
                f"<b>{esc(donor)}</b> · {esc(analyte)}<br>fold change {num(row.fc)}{esc(bound)}"
                f"<br>test {esc(row.tc)}{num(row.t)} · control {esc(row.cc)}{num(row.c)} "
                f"{esc(row.u)}<br>"
                + (
                    f"responder: {esc(row.rule)}" + (f"<br>{esc(row.why)}" if row.why else "")
                    if row.resp
                    else f"<b>{esc(row.why)}</b>"
                    if row.ind
                    else f"not a responder: {esc(row.why)}"
                )
            )
        conc = g.index.size and float(
            r.loc[r["treatment"] == treatment, "treatment_concentration"].iloc[0]
        )
        unit = r.loc[r["treatment"] == treatment, "treatment_unit"].dropna()
        label = esc(treatment) + (f" {num(conc)} {esc(unit.iloc[0])}" if conc and len(unit) else "")
        options.append((label, z, text, hover))
    if not options:
        return None
    vals = [v for _, z, _, _ in options for row in z for v in row if v is not None]
    lim = max(1.0, float(np.nanpercentile(np.abs(vals), 98))) if vals else 1.0
    first = options[0]
    trace = {
        "type": "heatmap",
        "x": [esc(a) for a in analytes],
        "y": [esc(d) for d in donors],
        "z": first[1],
        "text": first[2],
        "customdata": first[3],
        "texttemplate": "%{text}",
        "hovertemplate": "%{customdata}<extra></extra>",
        "colorscale": "RdBu",  # Plotly's RdBu runs blue (low) to red (high): red = release
        "zmid": 0,
        "zmin": -lim,
        "zmax": lim,
        "colorbar": {"title": {"text": "log2 fold<br>change"}, "thickness": 12},
        "xgap": 2,
        "ygap": 2,
        "hoverongaps": False,
    }
    buttons = [
        {"label": lab, "method": "restyle", "args": [{"z": [z], "text": [t], "customdata": [h]}]}
        for lab, z, t, h in options
    ]
    layout = {
        "height": max(260, 120 + 22 * len(donors)),
        "xaxis": {
            "side": "top",
            "showgrid": False,
            "showline": False,
            "ticks": "",
            "title": {"text": "analyte", "standoff": 2, "font": {"size": 10}},
        },
        "yaxis": {
            "autorange": "reversed",
            "showgrid": False,
            "showline": False,
            "ticks": "",
            "title": {"text": "donor", "standoff": 2, "font": {"size": 10}},
        },
        "margin": {"l": 60, "r": 16, "t": 104, "b": 16},
        "updatemenus": [
            {
                "type": "dropdown",
                "buttons": buttons,
                "x": 0.0,
                "xanchor": "left",
                "y": 1.0,
                "yanchor": "bottom",
                "pad": {"b": 30},
                "bgcolor": "#ffffff",
                "font": {"size": 11},
            }
        ],
    }
    return {"data": [trace], "layout": layout}


def dot_plot_figure(responses: pd.DataFrame, design, *, analyte: str, title: str) -> dict | None:
    """One analyte in one format: every treatment (and concentration) on x, a point per
    donor at its concentration, the donor's points joined by a line."""
    g = responses[responses["analyte"] == analyte]
    if g.empty:
        return None
    unit = esc(figs.concentration_unit_of(g.assign(concentration_unit=_units(g))))
    ctrl = g.drop_duplicates(["donor_id", "control_treatment"])[
        ["donor_id", "control_treatment", "control_concentration", "control_censored"]
    ].rename(
        columns={
            "control_treatment": "treatment",
            "control_concentration": "y",
            "control_censored": "cens",
        }
    )
    ctrl["treatment_concentration"] = np.nan
    pts = g[
        ["donor_id", "treatment", "treatment_concentration", "test_concentration", "test_censored"]
    ].rename(columns={"test_concentration": "y", "test_censored": "cens"})
    allp = pd.concat([ctrl, pts], ignore_index=True)
    multi = g.groupby("treatment")["treatment_concentration"].nunique()

    def label(t: str, c: float) -> str:
        if pd.isna(c) or multi.get(t, 1) <= 1:
            return esc(t)
        return f"{esc(t)} {num(c)}"

    labels: dict = {}
    allp["x"] = [
        labels[(t, c)] if (t, c) in labels else labels.setdefault((t, c), label(t, c))
        for t, c in zip(allp["treatment"], allp["treatment_concentration"], strict=True)
    ]
    order = sorted(
        allp[["treatment", "treatment_concentration", "x"]]
        .drop_duplicates()
        .itertuples(index=False),
        key=lambda r: (
            *_treatment_sort(design, r.treatment),
            -1 if pd.isna(r.treatment_concentration) else r.treatment_concentration,
        ),
    )
    cats = list(dict.fromkeys(r.x for r in order))
    pos = {c: i for i, c in enumerate(cats)}
    allp["_o"] = allp["x"].map(pos)
    allp = allp.sort_values("_o", kind="stable")
    # Concentrations are written on the ticks only for treatments tested at several.
    t_units = sorted(
        {
            str(u)
            for t, u in zip(g["treatment"], g["treatment_unit"], strict=True)
            if multi.get(t, 1) > 1 and isinstance(u, str) and u
        }
    )
    traces = []
    for i, (donor, d) in enumerate(
        sorted(allp.groupby("donor_id"), key=lambda kv: natural_key(kv[0]))
    ):
        ok = np.isfinite(d["y"].to_numpy(dtype=float)) & (d["y"].to_numpy(dtype=float) > 0)
        d = d[ok]
        # A line joins a donor's points only within one treatment's concentration series: a
        # gap (None) between treatments, so unrelated treatments are never joined.
        xs: list = []
        ys: list = []
        symbols: list = []
        for k, (treatment, y, cens, x) in enumerate(
            zip(d["treatment"], rounded(d["y"]), d["cens"], d["x"], strict=True)
        ):
            if k and treatment != d["treatment"].iloc[k - 1]:
                xs.append(None)
                ys.append(None)
                symbols.append("circle")
            xs.append(x)
            ys.append(y)
            symbols.append("circle-open" if cens else "circle")
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": esc(donor),
                "legendgroup": esc(donor),
                "x": xs,
                "y": ys,
                "connectgaps": False,
                "line": {"color": PALETTE[i % len(PALETTE)], "width": 1},
                "marker": {
                    "color": PALETTE[i % len(PALETTE)],
                    "size": 6,
                    "symbol": symbols,
                },
                "hovertemplate": f"<b>{esc(donor)}</b><br>%{{x}}<br>%{{y}} {unit}<extra></extra>",
            }
        )
    layout = {
        "title": {"text": title, "font": {"size": 13}, "x": 0.02, "xanchor": "left"},
        "height": 380,
        "xaxis": {
            "type": "category",
            "categoryorder": "array",
            "categoryarray": cats,
            "tickangle": -40,
            "title": {
                "text": "treatment"
                + (f" and concentration ({', '.join(esc(u) for u in t_units)})" if t_units else ""),
                "font": {"size": 11},
            },
        },
        "yaxis": {"type": "log", "title": {"text": f"{esc(analyte)} ({unit})"}},
        # Beside the plot, top-aligned and tight, so eight donors fit without a scroll bar.
        "legend": {"font": {"size": 10}, "y": 1, "yanchor": "top", "tracegroupgap": 0},
        "margin": {"l": 56, "r": 12, "t": 40, "b": 90},
    }
    return {"data": traces, "layout": layout}


def potency_figure(
    fits: list[dict],
    points: pd.DataFrame,
    *,
    title: str,
    analyte: str,
    unit: str,
    ecx: float,
    response_unit: str = CONCENTRATION_UNIT,
) -> dict:
    """Concentration-response of one test article x analyte x format: each donor's
    values (one point per concentration, replicates and plates averaged), its fitted curve
    and its EC50 (and ECx) with interval. A light version of the QC report's figure: the
    study report draws one per test article and analyte and must stay small. ``unit`` is
    the test article's unit, ``response_unit`` the cytokine's (pg/mL, or an arbitrary unit
    such as IU/mL)."""
    traces = []
    ru = esc(response_unit)
    # Plain arrays: pandas' per-donor filtering would dominate the report's build time.
    pd_donor = points["donor_id"].astype(str).to_numpy(dtype=object)
    px = points["treatment_concentration"].to_numpy(dtype=float)
    py = points["test_concentration"].to_numpy(dtype=float)
    pc = points["test_censored"].to_numpy(dtype=object)
    donors = sorted(set(pd_donor.tolist()), key=natural_key)
    x_lo, x_hi = float(np.nanmin(px)), float(np.nanmax(px))
    grid = np.exp(np.linspace(np.log(x_lo / 3), np.log(x_hi * 3), 40))
    fit_by = {str(r["donor_id"]): r for r in fits}
    ecn = f"ec{ecx:g}"
    for i, donor in enumerate(donors):
        color = PALETTE[i % len(PALETTE)]
        sel = np.flatnonzero(pd_donor == donor)
        sel = sel[np.argsort(px[sel], kind="stable")]
        p = {
            "treatment_concentration": px[sel],
            "test_concentration": py[sel],
            "test_censored": pc[sel],
        }
        f = fit_by.get(donor)
        status = "not fitted" if f is None else str(f["status"]).replace("_", " ")
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": esc(donor),
                "legendgroup": esc(donor),
                "x": rounded(p["treatment_concentration"]),
                "y": rounded(p["test_concentration"]),
                "marker": {
                    "color": color,
                    "size": 6,
                    "symbol": ["circle-open" if c else "circle" for c in p["test_censored"]],
                },
                "hovertemplate": f"<b>{esc(donor)}</b> · {esc(status)}<br>%{{x}} {esc(unit)}: %{{y}} {ru}<extra></extra>",
            }
        )
        if f is not None and all(
            np.isfinite(float(f.get(k, np.nan))) for k in figs.potency_curve_columns(f)
        ):
            yy = figs.potency_curve(f, grid)
            line = {
                "color": color,
                "width": 1.5 if f["status"] == "response" else 1,
                "dash": "solid" if f["status"] == "response" else "dot",
            }
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "legendgroup": esc(donor),
                    "showlegend": False,
                    "x": rounded(grid, 3),
                    "y": rounded(yy, 3),
                    "line": line,
                    "hoverinfo": "skip",
                }
            )
            marks = []
            for name, sym in (("ec50", "line-ns"), (ecn, "line-ns-open")):
                v = float(f.get(name, np.nan))
                if np.isfinite(v):
                    marks.append((name, sym, v))
            for name, sym, v in marks:
                yv = figs.potency_curve(f, np.array([v]))[0]
                traces.append(
                    {
                        "type": "scatter",
                        "mode": "markers",
                        "legendgroup": esc(donor),
                        "showlegend": False,
                        "x": rounded([v]),
                        "y": rounded([yv]),
                        "marker": {
                            "color": color,
                            "size": 13,
                            "symbol": sym,
                            "line": {"width": 2, "color": color},
                        },
                        "error_x": {
                            "type": "data",
                            "symmetric": False,
                            "array": rounded([float(f[f"{name}_ci_high"]) - v]),
                            "arrayminus": rounded([v - float(f[f"{name}_ci_low"])]),
                            "color": color,
                            "thickness": 1,
                            "width": 3,
                        },
                        "hovertemplate": f"<b>{esc(donor)}</b> {name.upper()} %{{x}} {esc(unit)}<extra></extra>",
                    }
                )
    layout = {
        "title": {"text": title, "font": {"size": 13}, "x": 0.02, "xanchor": "left"},
        "height": 340,
        "xaxis": {"type": "log", "title": {"text": f"concentration ({esc(unit)})"}},
        "yaxis": {"type": "log", "title": {"text": f"{esc(analyte)} ({ru})"}},
        "legend": {"font": {"size": 10}, "tracegroupgap": 0},
        "margin": {"l": 56, "r": 12, "t": 40, "b": 44},
    }
    return {"data": traces, "layout": layout}


def _ec_cell(r: dict, name: str) -> dict:
    cens = r.get(f"{name}_censored")
    if isinstance(cens, str) and cens:
        bound = r["max_tested"] if cens == ">" else r["min_tested"]
        return {"text": f"{cens} {num(bound)}", "ci": ""}
    v = float(r.get(name, np.nan))
    if not np.isfinite(v):
        return {"text": "–", "ci": ""}
    return {"text": num(v), "ci": f"[{num(r[f'{name}_ci_low'])}, {num(r[f'{name}_ci_high'])}]"}


def _potency_section(result: AnalysisResult, figures: Figures) -> dict:
    """EC50/ECx table and concentration-response figures of the test articles."""
    q, hz = result.quantification, result.hazard
    design = hz.design
    ecx = float(q.potency_settings.ecx)
    ecn = f"ec{ecx:g}"
    pot = q.potency
    model = str(q.potency_settings.model)
    empty = {"rows": [], "panels": [], "ecx": f"EC{ecx:g}", "model": model, "counts": {}}
    if pot is None or pot.empty or "ec50" not in pot.columns:
        return empty
    pot = pot[pot["treatment"].map(lambda t: design.role(t) == "test")].copy()
    if pot.empty:
        return empty
    pot["_inc"] = pot["incubation_h"].astype(float).fillna(-1.0)
    resp = hz.responses
    resp = resp[resp["treatment_role"] == "test"].assign(
        _inc=resp["incubation_h"].astype(float).fillna(-1.0)
    )
    pts = (
        resp.groupby(
            ["assay_format", "_inc", "treatment", "analyte", "donor_id", "treatment_concentration"],
            sort=False,
        )
        .agg(
            test_concentration=("test_concentration", "mean"),
            test_censored=("test_censored", "first"),
        )
        .reset_index()
    )
    pts_by = {
        k: g for k, g in pts.groupby(["assay_format", "_inc", "treatment", "analyte"], sort=False)
    }
    many_formats = pot[["assay_format", "_inc"]].drop_duplicates().shape[0] > 1
    rows, panels = [], {}
    groups: dict[tuple, list[dict]] = {}
    for r in pot.to_dict("records"):
        groups.setdefault((r["assay_format"], r["_inc"], r["treatment"], r["analyte"]), []).append(
            r
        )
    keys = sorted(groups, key=lambda k: (natural_key(k[2]), natural_key(k[0]), natural_key(k[3])))
    for k in keys:
        fmt, inc, treatment, analyte = k
        fits = sorted(groups[k], key=lambda r: natural_key(r["donor_id"]))
        p = pts_by.get(k)
        units = [r["treatment_unit"] for r in fits if isinstance(r["treatment_unit"], str)]
        unit = units[0] if units else ""
        where = _fmt(fmt, inc)
        for r in fits:
            rows.append(
                {
                    "treatment": treatment,
                    "analyte": analyte,
                    "donor": r["donor_id"],
                    "format": where,
                    "status": str(r["status"]),
                    "ec50": _ec_cell(r, "ec50"),
                    "ecx": _ec_cell(r, ecn) if ecn != "ec50" else None,
                    "unit": unit,
                    "reason": r["reason"] if isinstance(r["reason"], str) else "",
                }
            )
        if p is None or p.empty:
            continue
        spec = potency_figure(
            fits,
            p,
            title="",  # the card's caption names the analyte (and format)
            analyte=str(analyte),
            unit=unit,
            ecx=ecx,
            response_unit=figs.concentration_unit_of(pd.DataFrame(fits)),
        )
        panels.setdefault(treatment, []).append(
            {
                "id": figures.add(spec),
                "analyte": analyte,
                "format": where if many_formats else "",
                "n_resp": sum(r["status"] == "response" for r in fits),
                "n": len(fits),
                "single": _single(resp, k, p, unit),
            }
        )
    return {
        "rows": rows,
        "panels": [{"label": t, "cards": c} for t, c in panels.items()],
        "ecx": f"EC{ecx:g}",
        "model": model,
        "counts": pot["status"].value_counts().sort_index().to_dict(),
    }


def _single(resp: pd.DataFrame, key: tuple, points: pd.DataFrame, unit: str) -> str:
    """The caption of a test article tested at one concentration (no curve): its fold change
    over the matched negative control and its responder calls (:func:`single_concentration`)."""
    fmt, inc, treatment, analyte = key
    if points["treatment_concentration"].nunique() != 1:
        return ""
    r = resp[
        (resp["assay_format"] == fmt)
        & (resp["_inc"] == inc)
        & (resp["treatment"] == treatment)
        & (resp["analyte"] == analyte)
    ]
    per_donor = r.groupby("donor_id").agg(
        test=("test_concentration", "mean"),
        control=("control_concentration", "mean"),
        responder=("responder", "any"),
    )
    negatives = per_donor.reset_index()[["donor_id", "control"]].rename(
        columns={"control": "response"}
    )
    tested = r.rename(columns={"test_concentration": "response"})
    return single_concentration(
        tested,
        negatives,
        unit,
        responders=(int(per_donor["responder"].sum()), len(per_donor)),
    )


def _units(responses: pd.DataFrame) -> pd.Series:
    """The ``concentration_unit`` of each response (pg/mL for a table from before units)."""
    if "concentration_unit" not in responses.columns:
        return pd.Series(CONCENTRATION_UNIT, index=responses.index, dtype=object)
    units = responses["concentration_unit"].astype(object)
    return units.where(units.notna(), CONCENTRATION_UNIT)


# --- tables ------------------------------------------------------------------------------------
def _summary_rows(summary: pd.DataFrame, design) -> list[dict]:
    if summary.empty:
        return []
    s = summary.copy()
    s["_k"] = [
        (natural_key(f), _treatment_sort(design, t), c, natural_key(a))
        for f, t, c, a in zip(
            s["assay_format"],
            s["treatment"],
            s["treatment_concentration"],
            s["analyte"],
            strict=True,
        )
    ]
    s = s.sort_values("_k", kind="stable")
    rows = []
    for r in s.itertuples(index=False):
        rows.append(
            {
                "format": _fmt(r.assay_format, r.incubation_h),
                "treatment": r.treatment,
                "role": str(r.treatment_role).replace("_", " "),
                "conc": f"{num(r.treatment_concentration)} {r.treatment_unit if isinstance(r.treatment_unit, str) else ''}".strip(),
                "analyte": r.analyte,
                "resp": f"{r.n_responders}/{r.n_donors}",
                "frac": r.responder_fraction,
                "ind": int(getattr(r, "n_indeterminate", 0) or 0),
                "ind_donors": getattr(r, "indeterminate_donors", "") or "",
                "gmr": num(r.gmr),
                "ci": f"[{num(r.gmr_ci_low)}, {num(r.gmr_ci_high)}]"
                if np.isfinite(r.gmr_ci_low)
                else "",
                "v": num(r.wilcoxon_v),
                "p": _p(r.p_value),
                "padj": _p(r.p_adjusted),
                "sig": bool(r.significant),
                "pct": num(r.median_percent_of_positive),
                "note": r.note,
            }
        )
    return rows


def _parts(text: object, treatment: str = "") -> list[str]:
    """A "; "-joined comparison text (:func:`cytosafe.hazard.benchmark`) as its parts (none
    for a missing value), without what the row already says: the treatment's name, and
    the measure the column's header names. Text of another form is kept whole."""
    if not isinstance(text, str):
        return []
    parts = []
    for t in (t.strip() for t in text.split("; ")):
        if not t:
            continue
        if treatment:
            t = t.replace(f": {treatment} {_MATCHED_MEASURE} ", ": ")
            t = t.removeprefix(f"{treatment} at ")
        parts.append(t)
    return parts


#: The measure the ranking's matched comparisons are given in (hazard.classify).
_MATCHED_MEASURE = "mean log2 fold change over analytes"


def _p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "–"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _mixed_rows(mixed: pd.DataFrame) -> list[dict]:
    rows = []
    for r in mixed.itertuples(index=False):
        rows.append(
            {
                "treatment": r.treatment,
                "analyte": r.analyte,
                "format": _fmt(r.assay_format, np.nan) if r.assay_format else "–",
                "conc": num(r.treatment_concentration),
                "ratio": num(r.ratio),
                "ci": f"[{num(r.ci_low)}, {num(r.ci_high)}]" if np.isfinite(r.ci_low) else "",
                "p": _p(r.p_value),
                "joint": _p(r.joint_p_adjusted),
                "sd": num(r.donor_sd),
                "status": r.status,
            }
        )
    return rows


def _design_rows(design, responses: pd.DataFrame) -> list[dict]:
    rows = []
    for name in sorted(design.treatments, key=lambda n: _treatment_sort(design, n)):
        t = design.treatments[name]
        rows.append(
            {
                "name": name,
                "role": t.role.replace("_", " "),
                "conc": ", ".join(num(c) for c in t.concentrations if c > 0) or "–",
                "unit": t.unit or "",
                "formats": ", ".join(f.replace("_", " ") for f in t.formats) or "as in the data",
                "control": "–" if t.role == "negative_control" else _safe_control(design, name),
                "benchmark": name in design.benchmarks,
                "expect": ", ".join(t.expect_response_in).replace("_", " ")
                if t.expect_response_in
                else ("all formats" if t.role == "positive_control" else ""),
                "description": t.description,
            }
        )
    return rows


def _flagged_simulated(path: Path | None) -> bool:
    """Whether the study file says ``simulated = true`` in its ``[study]`` table."""
    import tomllib

    try:
        with Path(path).open("rb") as fh:
            return bool(tomllib.load(fh).get("study", {}).get("simulated", False))
    except (OSError, TypeError, ValueError):  # no file (a web design), or not TOML
        return False


def _safe_control(design, name: str) -> str:
    try:
        return design.matched_control(name)
    except Exception:  # the design was checked on loading; here only a label
        return "?"


def _ci(value: float, low: float, high: float) -> str:
    """A proportion with its exact interval, in percent (``–`` when nothing was counted)."""
    if value is None or not np.isfinite(value):
        return "–"
    return f"{100 * value:.0f}% ({100 * low:.0f}–{100 * high:.0f}%)"


def _test_article_fold_changes(hz) -> list[tuple[str, str, str, float]]:
    """Per format x test article: the arithmetic mean over analytes of the GMR over the
    matched negative control at its top concentration, the study's nearest counterpart of
    the library's "relative mean" of several cytokines (Vessillier 2015, Table 2).
    ``(format, treatment, label, fold change)``."""
    s = hz.summary
    if s is None or s.empty:
        return []
    s = s[(s["treatment_role"] == "test") & np.isfinite(s["gmr"].astype(float))]
    out = []
    for (fmt, treatment), g in s.groupby(["assay_format", "treatment"], sort=True):
        top = g["treatment_concentration"].max()
        at = g[g["treatment_concentration"] == top]
        unit = at["treatment_unit"].iloc[0] if "treatment_unit" in at else ""
        unit = unit if isinstance(unit, str) else ""
        label = (
            f"{treatment} (this study: mean over {at['analyte'].nunique()} analytes of the GMR "
            f"over the matched negative control at {num(top)} {unit})".replace(" )", ")")
        )
        out.append((str(fmt), str(treatment), label, float(at["gmr"].astype(float).mean())))
    return out


def _reference_section(hz, refs: _Refs) -> dict:
    """How the study's rule set and formats did on the reference library, and where each
    test article sits among the library's compounds in the same format."""
    from cytosafe.errors import InputError
    from cytosafe.reference import DISCLAIMER, load_library, place_in_library, study_performance
    from cytosafe.reference.calibration import CLOPPER_PEARSON, donor_panel

    resp = hz.responses
    # A study without formats (one unnamed format) has nothing to compare with the library.
    named = {str(f).strip() for f in resp["assay_format"].dropna()} if len(resp) else set()
    formats = sorted(named - {""}, key=natural_key)
    rule_set = hz.settings.rule_set
    library = load_library()
    # Judged as `cytosafe reference evaluate` judges: against the library's cited donor
    # panel, so a paper's result that needs more donors for 90 % power is not detected.
    panel = donor_panel(library)
    if not formats:
        return {
            "rule": rule_set.name,
            "n_donors": int(resp["donor_id"].nunique()) if len(resp) else 0,
            "panel_donors": panel.donors,
            "panel_cite": "",
            "rows": [],
            "misses": [],
            "chances": [],
            "places": [],
            "disclaimer": DISCLAIMER,
            "exact": "",
            "version": library.version,
        }
    perf, _ = study_performance(rule_set, formats, library=library, donors=panel.donors)
    # With the study's donors, a paper's result that needs more donors for 90 % power is
    # not counted as detected: what this study, as run, could have seen.
    n_donors = int(resp["donor_id"].nunique())
    with_donors, misses = study_performance(
        rule_set, formats, library=library, donors=max(n_donors, 1)
    )
    powered = {(r["study_format"], r.get("endpoint")): r for r in with_donors.to_dict("records")}
    exact = refs.add("Clopper & Pearson 1934", CLOPPER_PEARSON)
    for key in panel.citations:
        source = library.sources.get(key)
        refs.add(key, source.citation if source is not None else key)
    panel_cite = refs.cite(*panel.citations)
    rows = []
    for r in perf.to_dict("records"):
        counted = pd.notna(r.get("tp"))
        d = powered.get((r["study_format"], r.get("endpoint")), {})
        rows.append(
            {
                "format": str(r["study_format"]).replace("_", " "),
                "library_format": str(r.get("format") or "–").replace("_", " "),
                "endpoint": r.get("endpoint") or "–",
                "counts": (
                    f"{int(r['tp'])}/{int(r['fn'])}/{int(r['fp'])}/{int(r['tn'])}"
                    if counted
                    else "–"
                ),
                "sens": _ci(
                    r.get("sensitivity"), r.get("sensitivity_ci_low"), r.get("sensitivity_ci_high")
                )
                if counted
                else "–",
                "spec": _ci(
                    r.get("specificity"), r.get("specificity_ci_low"), r.get("specificity_ci_high")
                )
                if counted
                else "–",
                "sens_donors": _ci(
                    d.get("sensitivity"), d.get("sensitivity_ci_low"), d.get("sensitivity_ci_high")
                )
                if counted and d
                else "–",
                "not_evaluable": r.get("not_evaluable") or "",
                "note": r.get("note") or "",
            }
        )
    chances = _panel_chances(rule_set, formats, library, max(n_donors, 1), panel.donors, refs)
    missed = [
        {
            "format": str(m["study_format"]).replace("_", " "),
            "endpoint": m["endpoint"],
            "kind": m["kind"],
            "compound": m["name"],
            "mechanism": m["mechanisms_in_format"],
            "reason": m["reasons"],
        }
        for m in misses.to_dict("records")
    ]
    places = []
    by_format: dict[str, list[tuple[str, str, float]]] = {}
    for fmt, treatment, label, fc in _test_article_fold_changes(hz):
        by_format.setdefault(fmt, []).append((treatment, label, fc))
    for fmt in formats:
        tested = by_format.get(fmt, [])
        if not tested:
            continue
        try:
            placed = [
                place_in_library(fmt, fc, treatment=label, library=library)
                for _, label, fc in tested
            ]
        except InputError as exc:
            places.append({"format": fmt.replace("_", " "), "rows": [], "note": str(exc)})
            continue
        table = placed[0]
        lib_rows = table[table["source"] != "this study"]
        entries = [
            {
                "compound": r["name"],
                "fc": float(r["fold_change"]),
                "analyte": r["analyte"],
                "comparator": r["comparator"],
                "crs": _yes_no_unknown(r["crs_any"]),
                "severe": _yes_no_unknown(r["crs_severe"]),
                "source": r["location"],
                "cite": refs.add(r["source"], r["source"]),
                "study": False,
            }
            for r in lib_rows.to_dict("records")
        ]
        # Each test article's row as place_in_library made it (source "this study").
        entries += [
            {
                "compound": r["compound"],
                "fc": float(r["fold_change"]),
                "analyte": "",
                "comparator": "matched negative control",
                "crs": "",
                "severe": "",
                "source": "this study",
                "cite": "",
                "study": True,
            }
            for t in placed
            for r in t[t["source"] == "this study"].to_dict("records")
        ]
        entries.sort(key=lambda e: -e["fc"])  # stable: the library's order on a tie
        for rank, e in enumerate(entries, start=1):
            e["rank"] = rank
            e["fc"] = num(e["fc"])
        places.append(
            {
                "format": fmt.replace("_", " "),
                "library_format": str(table["format"].iloc[0]).replace("_", " "),
                "rows": entries if len(lib_rows) else [],
                "note": ""
                if len(lib_rows)
                else "the library holds no numeric fold change in this format",
            }
        )
    return {
        "rule": rule_set.name,
        "n_donors": n_donors,
        "panel_donors": panel.donors,
        "panel_cite": panel_cite,
        "rows": rows,
        "misses": missed,
        "chances": chances,
        "places": places,
        "disclaimer": DISCLAIMER,
        "exact": exact,
        "version": library.version,
    }


def _panel_chances(
    rule_set, formats, library, n_donors: int, panel_donors: int, refs: _Refs
) -> list[dict]:
    """The probability that this study's donors, and the library's panel, show each
    published response in the study's formats that passes the rule on its mean and whose
    paper says how many donors 90 % power takes (:func:`cytosafe.reference.
    detection_by_panel`)."""
    from cytosafe.reference import detection_by_panel, evaluate, library_format
    from cytosafe.reference.power import chance_text

    ev = evaluate(rule_set, library=library, donors=n_donors)
    table = detection_by_panel(ev, sizes=(panel_donors,))
    names = dict(zip(ev.compounds["compound"], ev.compounds["name"], strict=True))
    out = []
    for study_format in formats:
        key = library_format(study_format, library)
        for r in table[table["format"] == key].to_dict("records"):
            out.append(
                {
                    "format": study_format.replace("_", " "),
                    "compound": names.get(r["compound"], r["compound"]),
                    "fc": num(r["fold_change"]),
                    "n90": int(r["donors_for_power"]),
                    "study": chance_text(r[f"p_{n_donors}_donors"], ""),
                    "panel": chance_text(r[f"p_{panel_donors}_donors"], ""),
                    "source": r["location"],
                    "cite": refs.add(r["source"], library.sources[r["source"]].citation),
                }
            )
    return out


def _yes_no_unknown(flag: object) -> str:
    if flag is None or (isinstance(flag, float) and np.isnan(flag)):
        return "unknown"
    return "yes" if bool(flag) else "no"


def _methods(result: AnalysisResult, refs: _Refs) -> list[str]:
    from cytosafe import __version__
    from cytosafe.hazard.design import BELOW_LLOQ, MULTIPLICITY
    from cytosafe.hazard.rules import censoring

    q, hz = result.quantification, result.hazard
    s = hz.settings
    cal = q.calibration.settings
    model = q.calibration.fit.model
    rs = s.rule_set
    rules = "; ".join(f"“{r.name}”: {r.describe()}" for r in rs.rules)
    cls = "; ".join(f"{c.name}: {c.describe()}" for c in s.classification.classes)
    weight = Weighting(cal.weighting).brief
    text = [
        f"Cytokine concentrations were quantified with CytoSafe {__version__}: a {model.name} "
        f"standard curve ({model.formula}) per plate and analyte by weighted least squares "
        f"({weight}) {refs.cite('Findlay & Dillard 2007')}, blanks handled as “{cal.blank}”, "
        f"calibrator acceptance {cal.recovery_range[0]:g}-{cal.recovery_range[1]:g}% of nominal "
        f"{refs.cite('ICH M10', 'FDA 2018')}, and the LLOQ and ULOQ read off the accepted standards "
        f"under the acceptance criteria of {_acceptance_title(cal)}. "
        + (
            "Values of plate x analyte curves that failed QC were left out of the hazard analysis. "
            if s.exclude_failed_qc
            else ""
        ),
        "Each donor culture was compared with the same donor's negative control of the same "
        "format and incubation on the same plate"
        + (
            " (only)"
            if s.require_same_plate
            else ", or on another plate when the plate had none (recorded)"
        )
        + f". Values below the LLOQ were {BELOW_LLOQ[s.below_lloq]} {refs.cite('Helsel 2012')}. "
        f"Responders were called with the rule set “{rs.name}” ({rs.title}): {rules} "
        f"{refs.cite(*rs.citations)}. Each call records the rule that fired. "
        + (
            f"{censoring()['description']} {refs.cite(*censoring()['citations'])}"
            if s.below_lloq == "censored"
            else "Substituted values are treated as measured, so no call is indeterminate."
        ),
        f"Across donors, the paired differences of log concentrations (test - matched negative "
        f"control) were tested with the Wilcoxon signed-rank test ({s.alternative}) "
        f"{refs.cite('Wilcoxon 1945', 'Hollander & Wolfe 1999')}; p-values were adjusted across "
        f"analytes with {MULTIPLICITY[s.multiplicity]} "
        f"{refs.cite('Benjamini & Hochberg 1995' if s.multiplicity == 'fdr_bh' else 'Holm 1979')} "
        f"(significance: adjusted p < {s.alpha:g} and a geometric mean ratio above 1). Effect "
        f"sizes are geometric mean ratios with {100 * s.confidence:g}% t intervals. "
        + (
            "Treatments tested at several concentrations or in several formats were also analysed "
            "with a linear mixed model of the log concentration (format and format x concentration "
            f"fixed effects, a random intercept per donor, REML) {refs.cite('Laird & Ware 1982')}."
            if s.mixed_model == "auto"
            else ""
        ),
        f"A positive control passed in a format when at least "
        f"{100 * s.positive_control_min_fraction:g}% of donors responded in at least one analyte; "
        f"a format in which an expected positive control failed is invalid for hazard calling "
        f"{refs.cite('Romer 2011')}. Responses are expressed as a percentage of the reference "
        f"positive control ({s.reference_positive_control or 'the strongest in each format'}) in the "
        f"same donor and ranked against the study's benchmarks "
        f"{refs.cite('Finco 2014', 'Grimaldi 2016', 'Iwata 2016')}. Hazard classes "
        f"(“{s.classification.name}”, first that applies): {cls}; otherwise negative "
        f"{refs.cite(*s.classification.citations)}.",
        f"Concentration-response curves: a {CurveModel(q.potency_settings.model).family} "
        f"model per donor, "
        f"treatment and analyte with EC50 and EC{q.potency_settings.ecx:g} {refs.cite('Ritz 2015')}.",
    ]
    return [re.sub(r"\s+", " ", t).replace(" .", ".").replace(" ,", ",").strip() for t in text]


def render_hazard_report(
    result: AnalysisResult,
    *,
    title: str | None = None,
    generated: str | None = None,
    packed: bool = False,
    inputs: list[dict] | None = None,
) -> str:
    """Render the study report of an analysis as one self-contained HTML document.

    ``packed``: see :func:`cytosafe.report.page.page_scripts`. ``inputs``: the study file
    and measurement inputs as a face recorded them (``name``, ``sha256``; see
    :func:`cytosafe.report.page.input_files`); by default the study file and each input
    file are hashed here.
    """
    from cytosafe import __version__
    from cytosafe.hazard.rules import censoring

    q, hz = result.quantification, result.hazard
    design = hz.design
    figures = Figures()
    refs = _Refs()
    many = q.calibration.wells["study_id"].nunique() > 1
    qc_rows, plate_cards = qc_table(q, many)
    resp = hz.responses
    formats = (
        sorted(
            resp[["assay_format", "incubation_h"]].drop_duplicates().itertuples(index=False),
            key=lambda r: natural_key(r[0]),
        )
        if len(resp)
        else []
    )
    heatmaps, dots = [], []
    for fmt, inc in formats:
        sel = (resp["assay_format"] == fmt) & (
            resp["incubation_h"].fillna(-1) == (inc if pd.notna(inc) else -1)
        )
        rf = resp[sel]
        label = _fmt(fmt, inc)
        spec = heatmap_figure(rf, design, title=f"log2 fold change · {html.escape(label)}")
        if spec:
            heatmaps.append({"label": label, "id": figures.add(spec)})  # title in the caption
        cards = []
        for analyte in sorted(rf["analyte"].unique(), key=natural_key):
            spec = dot_plot_figure(rf, design, analyte=analyte, title=html.escape(str(analyte)))
            if spec:
                cards.append({"analyte": analyte, "id": figures.add(spec)})
        dots.append({"label": label, "cards": cards})
    potency = _potency_section(result, figures)
    hazard_rows = []
    for r in hz.hazard.itertuples(index=False):
        hazard_rows.append(
            {
                "treatment": r.treatment,
                "format": _fmt(r.assay_format, r.incubation_h),
                "cls": r.hazard_class,
                "style": CLASS_STYLE.get(r.hazard_class, ""),
                "reason": r.reason,
                "analytes": r.analytes,
                "n_ind": int(getattr(r, "n_indeterminate", 0) or 0),
                "ind_by": getattr(r, "indeterminate_by_analyte", "") or "",
                "could_be": " or ".join(str(getattr(r, "class_could_be", "") or "").split()),
                "rank": f"{r.rank}/{r.n_ranked}" if pd.notna(r.rank) else "–",
            }
        )
    ranking = []
    for r in hz.ranking.itertuples(index=False):
        test = r.treatment_role == "test"
        ranking.append(
            {
                "format": _fmt(r.assay_format, r.incubation_h),
                "treatment": r.treatment,
                "role": str(r.treatment_role).replace("_", " "),
                "bench": bool(r.is_benchmark),
                "score": num(r.score),
                "pct": num(r.median_percent_of_positive),
                "rank": f"{r.rank}/{r.n_ranked}",
                # Like with like? (hazard.classify.benchmark): a test article's concentration
                # against each benchmark's, and the two compared where both were tested. The
                # controls' comparisons with one another are in benchmark.csv.
                "test": test,
                "ratio": _parts(getattr(r, "concentration_comparison", ""), r.treatment)
                if test
                else [],
                "matched": _parts(getattr(r, "matched_comparison", ""), r.treatment)
                if test
                else [],
                "unmatched": test and not bool(getattr(r, "concentration_matched", True)),
            }
        )
    per_analyte = []
    b = hz.benchmark
    if len(b):
        b = b[b["treatment_role"] == "test"]
        for r in b.itertuples(index=False):
            per_analyte.append(
                {
                    "format": _fmt(r.assay_format, r.incubation_h),
                    "treatment": r.treatment,
                    "analyte": r.analyte,
                    "conc": num(r.treatment_concentration),
                    "resp": f"{r.n_responders}/{r.n_donors}",
                    "l2": num(r.median_log2_fold_change),
                    "pct": num(r.median_percent_of_positive),
                    "rank": f"{r.rank}/{r.n_ranked}",
                    "above": ", ".join(str(r.above).split()) if isinstance(r.above, str) else "",
                    "below": ", ".join(str(r.below).split()) if isinstance(r.below, str) else "",
                }
            )
    acceptance = [
        {
            "format": _fmt(r.assay_format, r.incubation_h),
            "treatment": r.treatment,
            "resp": f"{r.n_responding_donors}/{r.n_donors}",
            "expected": bool(r.expected),
            "passed": bool(r.passed),
            "reason": r.reason,
        }
        for r in hz.acceptance.itertuples(index=False)
    ]
    s = hz.settings
    n_donors = int(resp["donor_id"].nunique()) if len(resp) else 0
    settings_rows = [
        (
            "Responder rule set",
            f"{s.rule_set.name}: " + "; ".join(r.describe() for r in s.rule_set.rules),
            refs.cite(*s.rule_set.citations),
        ),
        (
            "Values below the LLOQ",
            f"{s.below_lloq}"
            + (f": {censoring()['title'].lower()}" if s.below_lloq == "censored" else ""),
            refs.cite(*censoring()["citations"])
            if s.below_lloq == "censored"
            else refs.cite("Helsel 2012"),
        ),
        ("Paired test", f"Wilcoxon signed-rank, {s.alternative}", refs.cite("Wilcoxon 1945")),
        (
            "Multiplicity across analytes",
            s.multiplicity,
            refs.cite("Benjamini & Hochberg 1995")
            if s.multiplicity == "fdr_bh"
            else refs.cite("Holm 1979"),
        ),
        ("Significance", f"adjusted p < {s.alpha:g}", ""),
        (
            "Mixed model",
            "donor random intercept (REML)" if s.mixed_model == "auto" else "not fitted",
            refs.cite("Laird & Ware 1982"),
        ),
        (
            "Reference positive control",
            s.reference_positive_control or "strongest in each format",
            "",
        ),
        (
            "Positive-control acceptance",
            f"≥ {100 * s.positive_control_min_fraction:g}% of donors respond",
            "",
        ),
        (
            "Hazard classes",
            s.classification.name
            + ": "
            + "; ".join(f"{c.name}: {c.describe()}" for c in s.classification.classes),
            refs.cite(*s.classification.citations),
        ),
        (
            "Standard curve",
            f"{q.calibration.fit.model.name}, weights {q.calibration.settings.weighting}",
            "",
        ),
    ]
    context = {
        "title": title or "Cytokine release hazard · " + (design.study_id or "study"),
        "study": {
            "id": design.study_id or "–",
            "title": design.title,
            "source": str(design.path) if design.path else design.source,
            "sources": list(getattr(q, "sources", [])),
            "inputs": input_files(
                [*([design.path] if design.path else []), *getattr(q, "sources", [])],
                inputs=inputs,
                table=q.measurements,
            ),
            "donors": sorted(resp["donor_id"].unique(), key=natural_key) if len(resp) else [],
            "analytes": sorted(q.calibration.wells["analyte"].unique(), key=natural_key),
            "n_donors": n_donors,
        },
        "version": __version__,
        "generated": generated,
        "simulated": simulated_reason(
            sources=[design.path, *getattr(q, "sources", [])],
            titles=[design.title],
            flagged=_flagged_simulated(design.path),
        ),
        "valid": hz.valid,
        "warnings": hz.warnings,
        "hazard_rows": hazard_rows,
        "design_rows": _design_rows(design, resp),
        "acceptance": acceptance,
        "qc_rows": qc_rows,
        "plate_cards": plate_cards,
        "n_pass": sum(r["passed"] for r in qc_rows),
        "heatmaps": heatmaps,
        "dots": dots,
        "potency": potency,
        "summary_rows": _summary_rows(hz.summary, design),
        "mixed_rows": _mixed_rows(hz.mixed),
        "ranking": ranking,
        "per_analyte": per_analyte,
        "reference": _reference_section(hz, refs),
        "settings": settings_rows,
        "methods": _methods(result, refs),
        "references": refs.items,
    }
    env = environment()
    context.update(page_scripts(figures, packed=packed))
    return env.get_template("hazard.html").render(**context)


def write_hazard_report(
    result: AnalysisResult,
    path: str | Path,
    *,
    title: str | None = None,
    generated: str | None = None,
    packed: bool = True,
) -> Path:
    """Write the study report (one HTML file, packed by default) to ``path``; a directory
    gets ``report.html``."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.html"
    text = render_hazard_report(result, title=title, generated=generated, packed=packed)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    return path


def write_hazard_pdf(
    html_path: str | Path, pdf_path: str | Path, *, executable: str = CHROMIUM, browser=None
) -> Path:
    """Print a report to PDF with headless Chromium (Playwright), every figure drawn.

    Parameters
    ----------
    html_path, pdf_path:
        The report to print and the PDF to write.
    executable:
        The Chromium binary (Debian's ``/usr/bin/chromium`` by default).
    browser:
        An already launched Playwright browser to use (it is left open).

    Raises
    ------
    RuntimeError
        When Chromium cannot be started (not installed at ``executable``).
    """
    html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path)
    if browser is not None:
        _print_pdf(browser, html_path, pdf_path)
        return pdf_path
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        try:
            own = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as exc:  # playwright raises its own Error type
            raise RuntimeError(f"cannot start Chromium at {executable}: {exc}") from exc
        try:
            _print_pdf(own, html_path, pdf_path)
        finally:
            own.close()
    return pdf_path


#: A4 less the PDF's 10 mm side margins, in CSS pixels (96 per inch): the page is laid out
#: and every figure drawn at the width it is printed at, so no legend or colour bar is cut.
PRINT_WIDTH_PX = round((210 - 2 * 10) / 25.4 * 96)


def _print_pdf(browser, html_path: Path, pdf_path: Path) -> None:
    page = browser.new_page(viewport={"width": PRINT_WIDTH_PX, "height": 1000})
    try:
        page.goto(html_path.as_uri(), wait_until="load")
        page.emulate_media(media="print")
        page.evaluate("() => window.csDrawAll(true)")
        page.pdf(
            path=str(pdf_path),
            format="A4",
            print_background=True,
            margin={"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"},
        )
    finally:
        page.close()


def _acceptance_title(settings) -> str:
    """The named acceptance set the calibration used, in words (the QC report's)."""
    from cytosafe.curves.calibration import ACCEPTANCE_TITLES, acceptance_name

    return ACCEPTANCE_TITLES.get(acceptance_name(settings), "the settings, set field by field")
