"""The regimen-simulation report of ``cytosafe simulate``: one self-contained HTML file.

:func:`write_translate_report` turns a :class:`~cytosafe.translate.simulation.SimulationRun`
into a page with

* **Summary** — the regimen comparison table (peak IL-6 median and 90% interval, share of
  subjects above the threshold, time to target dose), the SIMULATED label when the
  regimen file carries it;
* **Time courses** — drug concentration and IL-6 over time, median and 90% band per
  regimen (Plotly), and the peak IL-6 of every dose;
* **Peaks per dose** and the **step-up search** ranking, when the file asks for one;
* **Model** — the equations in words, every parameter with unit, variability and source,
  the potency used and its in vitro-to-plasma scaling; **References**.

It extends the shared report frame (``_base.html``: stylesheet, scripts) and keeps its guarantees: plotly.js inlined once, no network,
the same run always renders to the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cytosafe.report.figures as figs
from cytosafe.report.figures import PALETTE, Figures, esc, num, rounded
from cytosafe.report.page import environment, input_files, page_scripts

if TYPE_CHECKING:
    from cytosafe.translate.simulation import SimulationRun

__all__ = ["render_translate_report", "write_translate_report"]


#: A horizontal legend at the foot of the figure (container coordinates), below the x axis
#: and its title whatever the number of regimens (the margin leaves room for three rows).
LEGEND_BELOW = {
    "orientation": "h",
    "x": 0,
    "xanchor": "left",
    "yref": "container",
    "y": 0,
    "yanchor": "bottom",
}


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def time_course_figure(bands, *, prefix: str, title: str, y_title: str, log: bool) -> dict:
    """Median line and 90% band per regimen over days."""
    traces = []
    for i, (name, g) in enumerate(bands.groupby("regimen", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        x = rounded(g["day"])
        lo, med, hi = (g[f"{prefix}_{q}"] for q in ("p05", "median", "p95"))
        label = esc(name)
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": x,
                "y": rounded(hi),
                "line": {"width": 0},
                "legendgroup": label,
                "showlegend": False,
                "hoverinfo": "skip",
                "name": f"{label} 95th",
            }
        )
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": x,
                "y": rounded(lo),
                "line": {"width": 0},
                "fill": "tonexty",
                "fillcolor": _rgba(color, 0.18),
                "legendgroup": label,
                "showlegend": False,
                "hoverinfo": "skip",
                "name": f"{label} 5th",
            }
        )
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": x,
                "y": rounded(med),
                "name": label,
                "legendgroup": label,
                "line": {"color": color, "width": 2},
                "hovertemplate": f"<b>{label}</b><br>day %{{x:.2f}}<br>median %{{y:.3g}}<extra></extra>",
            }
        )
    return {
        "data": traces,
        "layout": {
            "title": {"text": title, "font": {"size": 13}, "x": 0.02, "xanchor": "left"},
            "height": 420,
            "xaxis": {"title": {"text": "day (day 1 = first dose)"}},
            "yaxis": {"title": {"text": y_title}, **({"type": "log"} if log else {})},
            # Under the axis title, at the foot of the figure: never over the axis.
            "legend": LEGEND_BELOW,
            "margin": {"l": 60, "r": 12, "t": 40, "b": 110},
        },
    }


def peaks_figure(per_dose, threshold: float) -> dict:
    """Peak IL-6 of every dose: median with 90% interval, one series per regimen."""
    traces = []
    for i, (name, g) in enumerate(per_dose.groupby("regimen", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        label = esc(name)
        med = g["peak_il6_median"].to_numpy()
        traces.append(
            {
                "type": "scatter",
                "mode": "markers+lines",
                "name": label,
                "x": rounded(g["day"]),
                "y": rounded(med),
                "line": {"color": color, "width": 1, "dash": "dot"},
                "marker": {"color": color, "size": 9},
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": rounded(g["peak_il6_p95"].to_numpy() - med),
                    "arrayminus": rounded(med - g["peak_il6_p05"].to_numpy()),
                    "color": color,
                    "thickness": 1.2,
                    "width": 4,
                },
                "text": [
                    f"dose {int(r.dose_number)}: {num(r.amount)} {esc(r.unit)} {esc(r.route)}"
                    f"<br>{num(100 * r.share_above_threshold)}% above {num(threshold)} pg/mL"
                    for r in g.itertuples()
                ],
                "hovertemplate": f"<b>{label}</b><br>day %{{x:g}} · %{{text}}<br>median peak %{{y:.3g}} pg/mL<extra></extra>",
            }
        )
    return {
        "data": traces,
        "layout": {
            "title": {
                "text": "Peak IL-6 after each dose (median, 5th-95th percentile)",
                "font": {"size": 13},
                "x": 0.02,
                "xanchor": "left",
            },
            "height": 420,
            "xaxis": {"title": {"text": "day of the dose"}},
            "yaxis": {"title": {"text": "peak IL-6 (pg/mL)"}, "type": "log"},
            "shapes": [
                {
                    "type": "line",
                    "xref": "paper",
                    "x0": 0,
                    "x1": 1,
                    "yref": "y",
                    "y0": threshold,
                    "y1": threshold,
                    "line": {"color": figs.FAIL, "width": 1, "dash": "dash"},
                }
            ],
            # Under the axis title, at the foot of the figure: never over the axis.
            "legend": LEGEND_BELOW,
            "margin": {"l": 60, "r": 12, "t": 40, "b": 110},
        },
    }


def _refs():
    from cytosafe.translate.knowledge import references

    items = list(references().items())
    number = {k: i + 1 for i, (k, _) in enumerate(items)}
    return items, lambda *keys: "[" + ", ".join(str(number[k]) for k in keys if k in number) + "]"


def render_translate_report(
    run: SimulationRun,
    *,
    title: str | None = None,
    generated: str | None = None,
    packed: bool = False,
) -> str:
    """Render the simulation report as one self-contained HTML document (``packed``: see
    :func:`cytosafe.report.page.page_scripts`)."""
    from cytosafe import __version__
    from cytosafe.translate.model import GRADED_LEVELS

    res = run.result
    spec = run.spec
    figures = Figures()
    bands = res.time_courses()
    per_dose = res.per_dose()
    comparison = res.comparison()
    refs, cite = _refs()
    fig_ids = {
        "conc": figures.add(
            time_course_figure(
                bands,
                prefix="concentration",
                title="Drug concentration in plasma",
                y_title="concentration (ng/mL)",
                log=False,
            )
        ),
        "il6": figures.add(
            time_course_figure(
                bands, prefix="il6", title="Plasma IL-6", y_title="IL-6 (pg/mL)", log=True
            )
        ),
        "peaks": figures.add(peaks_figure(per_dose, res.threshold)),
    }
    s = res.settings
    model_text = [
        f"Pharmacokinetics: {s.compartments}-compartment model with linear clearance; IV doses as "
        f"bolus or zero-order infusion into the central compartment, SC doses as first-order absorption "
        f"from a depot with bioavailability f_sc {cite('Gabrielsson & Weiner 2016', 'Dirks & Meibohm 2010')}.",
        (
            "T-cell stimulation: Emax (Hill) function of the plasma concentration"
            if s.stimulation == "emax"
            else "T-cell stimulation: the target-drug-CD3 trimer at quasi-equilibrium, bell-shaped in the concentration, "
            f"normalised to its maximum {cite('Schropp 2019')}"
        )
        + f"; the plasma EC50 is the in vitro EC50 x {s.in_vitro_to_plasma:g} (in vitro-to-plasma scaling).",
        (
            "Priming: a depletable pool of releasable cytokine (1 = full) is spent by stimulation and recovers slowly, "
            "so the first exposure releases the most; a small first dose spends it with little release "
            f"{cite('Chen 2019', 'Hosseini 2020')}."
            if s.priming
            else "Priming is switched OFF in this run: every exposure meets a full releasable pool."
        ),
        "IL-6 is produced in proportion to stimulation x pool above its baseline and eliminated first-order.",
        f"Virtual population: {len(res.population['cl'])} subjects, log-normal between-subject variability "
        f"(theta_i = theta exp(omega z_i)) {cite('Karlsson & Sheiner 1993')}; every regimen is given to the "
        "same subjects. Integration: exact pharmacokinetic steps (matrix exponential) and "
        "fourth-order Runge-Kutta for the pool and IL-6, over all subjects at once "
        f"(step {spec.dt_hours:g} h; the first step after each dose start cut into pieces from "
        f"1/{2**GRADED_LEVELS} of a step), checked against SciPy solve_ivp.",
    ]
    pot = run.potency
    context = {
        "title": title or f"Cytokine-release simulation · {spec.title}",
        "version": __version__,
        "generated": generated,
        "spec": spec,
        "simulated": spec.simulated,
        "threshold": res.threshold,
        "days": res.days,
        "n_subjects": len(res.population["cl"]),
        "comparison": comparison.to_dict("records"),
        "per_dose": per_dose.to_dict("records"),
        "search": None if run.search is None else run.search.head(15).to_dict("records"),
        "parameters": run.parameters.to_dict("records"),
        "potency": pot,
        "inputs": input_files(
            [spec.path, *([spec.potency["table"]] if "table" in (spec.potency or {}) else [])]
        ),
        "model_text": model_text,
        "fig": fig_ids,
        "num": num,
        "references": refs,
    }
    env = environment()
    env.filters["num"] = num
    context.update(page_scripts(figures, packed=packed))
    return env.get_template("translate.html").render(**context)


def write_translate_report(
    run: SimulationRun,
    path: str | Path,
    *,
    title: str | None = None,
    generated: str | None = None,
    packed: bool = True,
) -> Path:
    """Write the simulation report (one HTML file, packed by default) to ``path``; a
    directory gets ``report.html``."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.html"
    text = render_translate_report(run, title=title, generated=generated, packed=packed)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    return path
