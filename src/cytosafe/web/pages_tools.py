"""The translation tools as pages: the first-in-human starting dose (MABEL) and the
regimen simulation, both answering first and then showing how.

* ``/mabel`` — the form of ``cytosafe mabel``: an ECx (in vitro potency), a Kd (receptor
  occupancy), a NOAEL with its species (FDA 2005 MRSD) and the PK assumptions. The
  answer comes first: the starting dose of the most conservative approach (EMA 2017),
  with the approach and its citations; then every approach side by side, the inputs and
  each step with its formula and source (:func:`cytosafe.translate.fih.fih_dose`, the
  same call as the command). A bad input is an :class:`~cytosafe.errors.InputError`
  shown as a message naming the field.
* ``/simulate`` — a form of the regimen file of ``cytosafe simulate``: up to
  :data:`MAX_REGIMENS` regimens (doses as ``day: amount`` pairs), the EC50 and the
  population, simulated by :func:`cytosafe.translate.simulation.run_regimen_file`.
  Every output is a model simulation, labelled SIMULATED: the drug concentration and
  IL-6 over time (median and 90% band per regimen), the comparison table and the
  regimen file to re-run it with the command.

The pages also bring in :mod:`cytosafe.web.downloads` (its routes and the Jinja global
of ``_downloads.html``): :func:`add_tools` adds both to the app.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse

from cytosafe.errors import InputError
from cytosafe.web import downloads
from cytosafe.web.pages import check_csrf, page, render, signed_in

__all__ = [
    "DEFAULT_REGIMENS",
    "MABEL_FIELDS",
    "MAX_REGIMENS",
    "MAX_SUBJECTS",
    "add_tools",
    "mabel_result",
    "regimen_toml",
    "router",
]

router = APIRouter(include_in_schema=False)


def add_tools(app: FastAPI) -> None:
    """Add the MABEL and simulation pages and the downloads to the CytoSafe ``app``."""
    app.include_router(router)
    app.include_router(downloads.router)


# --- form values ----------------------------------------------------------------------------


def _number(form: dict[str, str], name: str, label: str, *, positive: bool = True) -> float | None:
    """The form field ``name`` as a finite number (None when left empty)."""
    text = (form.get(name) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"'{text}' is not a number", field=label) from None
    if not math.isfinite(value):
        raise InputError(f"'{text}' is not a finite number", field=label)
    if positive and value <= 0:
        raise InputError(f"{value:g} is not positive", field=label, expected="a number > 0")
    return value


def _error(exc: InputError, label_of) -> dict[str, str]:
    """An InputError as the page shows it: the field in the form's words, the message
    and what was expected (the file is the page's own temporary one: left out)."""
    field = exc.field or ""
    label = label_of(field.lstrip("-").replace("-", "_")) or field or "input"
    text = exc.message + (f" (expected {exc.expected})" if exc.expected else "")
    return {"field": field, "label": label, "message": text}


# --- MABEL ----------------------------------------------------------------------------------

#: The MABEL form: (name, label, kind, help). ``kind`` is ``number``, a unit list or
#: ``species``/``distribution`` (choices from the knowledge file).
MABEL_FIELDS: tuple[tuple[str, str, Any, str], ...] = (
    ("analysis", "Potency of a stored analysis", "analysis", "its most sensitive assay"),
    ("treatment", "Test article in that analysis", "text", "e.g. TA-1"),
    ("aggregate", "Across donors", ("geomean", "median", "min"), "pooling of the donors' ECx"),
    ("ecx", "ECx of the most sensitive assay", "number", "or by hand (in vitro potency)"),
    ("ecx_unit", "ECx unit", ("ng/mL", "ug/mL", "pg/mL", "nM", "pM", "uM"), ""),
    ("ecx_percent", "x of the ECx (%)", "number", "20 for an EC20"),
    ("kd", "Binding affinity Kd", "number", "receptor occupancy (MABEL)"),
    ("kd_unit", "Kd and target unit", ("nM", "pM", "uM", "ng/mL", "ug/mL"), ""),
    ("occupancy", "Target receptor occupancy (%)", "number", "default 10"),
    ("target", "Total target concentration", "number", "target depletion (quadratic form)"),
    ("dose", "A planned dose", "number", "its receptor occupancy is reported (needs Kd)"),
    ("dose_unit", "Planned dose unit", ("mg/kg", "ug/kg", "mg", "ug"), ""),
    ("noael", "Animal NOAEL (mg/kg)", "number", "NOAEL-based MRSD (FDA 2005)"),
    ("species", "Species of the NOAEL", "species", ""),
    ("mw", "Molecular weight (kDa)", "number", "default 150"),
    ("body_weight", "Body weight (kg)", "number", "default 70"),
    ("distribution", "Initial distribution", "distribution", "default plasma, 40 mL/kg"),
    ("volume", "Distribution volume (L)", "number", "overrides the distribution"),
    ("mabel_safety_factor", "Safety factor on the MABEL", "number", "default 1"),
    ("mrsd_safety_factor", "Safety factor on the HED", "number", "default 10"),
)
_MABEL_LABELS = {name: label for name, label, _, _ in MABEL_FIELDS} | {
    "potency": "Potency of a stored analysis",
    "measure": "Potency of a stored analysis",
    "volume_l": "Distribution volume (L)",
    "mw_kda": "Molecular weight (kDa)",
    "body_weight_kg": "Body weight (kg)",
}
_MABEL_NUMBERS = [name for name, _, kind, _ in MABEL_FIELDS if kind == "number"]


def _choices() -> dict[str, list[tuple[str, str]]]:
    from cytosafe.data import load
    from cytosafe.translate.fih import species_table
    from cytosafe.translate.knowledge import FIH_FILE

    species = species_table()
    distribution = load(FIH_FILE).get("distribution", {})
    return {
        "species": [(r.species, r.name) for r in species.itertuples(index=False)],
        "distribution": [
            (key, value.get("title", key))
            for key, value in distribution.items()
            if isinstance(value, dict)
        ],
    }


def mabel_result(form: dict[str, str], potency: pd.DataFrame | None = None) -> dict[str, Any]:
    """The starting dose of the MABEL form's inputs, as ``cytosafe mabel`` computes it.

    ``potency`` is the potency table of a stored analysis (as ``cytosafe mabel
    --potency``): its most sensitive assay gives the ECx unless one is typed in.

    Returns ``summary`` (one row per approach, the lowest ``recommended``), ``steps``
    (every input, assumption and formula with its source), ``references`` (key ->
    citation of the sources used) and ``answer`` (the recommended approach: dose in
    ug/kg and mg, body weight, citations). Raises :class:`~cytosafe.errors.InputError`
    naming the form field.
    """
    from cytosafe.translate.fih import fih_dose, occupancy_at_dose
    from cytosafe.translate.knowledge import references

    values = {name: _number(form, name, name, positive=True) for name in _MABEL_NUMBERS}
    text = {k: (form.get(k) or "").strip() for k in ("ecx_unit", "kd_unit", "dose_unit")}
    species = (form.get("species") or "").strip() or None
    distribution = (form.get("distribution") or "").strip() or None
    occupancy = values["occupancy"]
    if occupancy is not None and not 0 < occupancy < 100:
        raise InputError(f"{occupancy:g} %", field="occupancy", expected="a percent in (0, 100)")
    common = {
        "mw_kda": values["mw"],
        "body_weight_kg": values["body_weight"],
        "distribution": distribution,
        "volume_l": values["volume"],
    }
    treatment = (form.get("treatment") or "").strip() or None
    aggregate = (form.get("aggregate") or "").strip() or "geomean"
    if aggregate not in ("geomean", "median", "min"):
        raise InputError(f"'{aggregate}'", field="aggregate", expected="geomean, median or min")
    summary, steps = fih_dose(
        potency=potency,
        treatment=treatment,
        aggregate=aggregate,
        ecx=values["ecx"],
        ecx_unit=text["ecx_unit"] or "ng/mL",
        ecx_percent=values["ecx_percent"] or 20.0,
        kd=values["kd"],
        kd_unit=text["kd_unit"] or "nM",
        occupancy=None if occupancy is None else occupancy / 100.0,
        target=values["target"],
        noael=values["noael"],
        species=species,
        mabel_safety_factor=values["mabel_safety_factor"],
        mrsd_safety_factor=values["mrsd_safety_factor"],
        **common,
    )
    if values["dose"] is not None:
        if values["kd"] is None:
            raise InputError("a planned dose needs the Kd to compute its occupancy", field="kd")
        at = occupancy_at_dose(
            values["dose"],
            text["dose_unit"] or "mg/kg",
            kd=values["kd"],
            kd_unit=text["kd_unit"] or "nM",
            target=values["target"],
            **common,
        )
        steps = pd.concat([steps, at.steps], ignore_index=True)
    refs = references()
    used = sorted({k for s in steps["source"] for k in refs if k in str(s)})
    best = summary[summary["recommended"]].iloc[0]
    mine = steps[steps["approach"] == best["approach"]]
    cited = sorted({k for s in mine["source"] for k in refs if k in str(s)})
    return {
        "summary": summary,
        "steps": steps,
        "references": {k: refs[k] for k in used},
        "answer": {
            "approach": best["approach"],
            "dose_ug_per_kg": float(best["dose_ug_per_kg"]),
            "dose_mg": float(best["dose_mg"]),
            "body_weight_kg": float(best["body_weight_kg"]),
            "citations": cited,
            "others": int(len(summary) - 1),
        },
    }


def _steps_by_approach(steps: pd.DataFrame) -> list[dict]:
    out = []
    for approach, g in steps.groupby("approach", sort=False):
        rows = []
        for r in g.to_dict("records"):
            value = r["value"]
            rows.append(
                {
                    **r,
                    "value_text": f"{value:.4g}"
                    if isinstance(value, int | float) and math.isfinite(value)
                    else ("" if value is None else str(value)),
                }
            )
        out.append({"approach": approach, "rows": rows})
    return out


_CHOSEN = ("species", "distribution", "aggregate")


def _potency_analyses(store, user) -> list[tuple[str, str]]:
    """The analyses ``user`` can see that have a potency table: (id, label)."""
    from cytosafe.web import services

    out = []
    for study in services.list_studies(store, user):
        for a in services.list_analyses(store, user, study.code):
            if a.status in ("completed", "signed_off") and "potency" in {t.name for t in a.tables}:
                out.append((str(a.id), f"{study.code} · {a.kind} analysis {a.id} (v{a.version})"))
    return out


def _stored_potency(store, user, form: dict[str, str]) -> pd.DataFrame | None:
    """The potency table of the analysis chosen in the form (None: none chosen)."""
    from fastapi import HTTPException

    from cytosafe.web import services

    chosen = (form.get("analysis") or "").strip()
    if not chosen:
        return None
    try:
        analysis = services.read_analysis(store, user, int(chosen))
    except (ValueError, HTTPException):
        raise InputError(f"no analysis {chosen} that you can see", field="analysis") from None
    table = services.stored_table(store, analysis.id, "potency")
    if table is None or table.empty:
        raise InputError(f"analysis {analysis.id} has no potency table", field="analysis")
    return table


@router.get("/mabel", response_class=HTMLResponse)
@page
def mabel(request: Request):
    """The MABEL form; with inputs (a GET, so a result can be bookmarked), the answer."""
    found = signed_in(request)
    store = request.app.state.store
    form = {k: v for k, v in request.query_params.items() if k in _MABEL_LABELS}
    result, error, status = None, None, 200
    if any(form.get(name, "").strip() for name in ("analysis", "ecx", "kd", "noael")):
        try:
            result = mabel_result(form, _stored_potency(store, found[0], form))
        except InputError as exc:
            error, status = _error(exc, _MABEL_LABELS.get), 422
    elif form:
        error = {
            "field": "ecx",
            "label": "ECx, Kd or NOAEL",
            "message": "nothing to compute a starting dose from: give an ECx, a Kd, "
            "or a NOAEL with its species",
        }
        status = 422
    inputs = []
    analyses = _potency_analyses(store, found[0])
    if result is not None:
        for name, label, kind, _ in MABEL_FIELDS:
            value = form.get(name, "").strip()
            if name == "analysis" and value:
                value = next((t for v, t in analyses if v == value), f"analysis {value}")
            if name in ("treatment", "aggregate") and not form.get("analysis"):
                continue  # they only qualify a stored potency table
            if value and (kind in ("number", "text", "analysis") or name in _CHOSEN):
                inputs.append((label, value))
    return render(
        request,
        "mabel.html",
        found,
        status,
        nav="mabel",
        fields=MABEL_FIELDS,
        choices=_choices() | {"analysis": analyses},
        form=form,
        result=result,
        steps=None if result is None else _steps_by_approach(result["steps"]),
        inputs=inputs,
        error=None if error is None else f"{error['label']}: {error['message']}",
        error_field=None if error is None else error["field"].lstrip("-").replace("-", "_"),
    )


# --- regimen simulation -----------------------------------------------------------------------

MAX_REGIMENS = 3
#: More subjects than this is a job for ``cytosafe simulate`` (Dask), not a page.
MAX_SUBJECTS = 2000
#: The form's first values: the SIMULATED TA-1 example (examples/translate).
DEFAULT_REGIMENS = (
    ("flat 10 mg weekly", "1: 10, 8: 10, 15: 10, 22: 10"),
    ("step-up 0.1 / 1 / 10 mg weekly", "1: 0.1, 8: 1, 15: 10, 22: 10"),
    ("step-up 1 / 10 mg, days 1 and 8", "1: 1, 8: 10, 15: 10, 22: 10"),
)
_SIM_DEFAULTS = {
    "days": "28",
    "subjects": "200",
    "seed": "20250117",
    "threshold": "100",
    "ec50": "1.2",
    "ec50_unit": "ug/mL",
    "unit": "mg",
    "route": "iv",
    "infusion_hours": "4",
}
_EC50_UNITS = ("ug/mL", "ng/mL", "pg/mL", "nM", "pM")
_DOSE_UNITS = ("mg", "ug", "mg/kg", "ug/kg")


def _sim_label(field: str) -> str:
    """A regimen-file field (``regimen[2].doses[3].day``) in the form's words."""
    m = re.match(r"regimen\[(\d+)\](?:\.doses\[(\d+)\])?(?:\.(\w+))?", field)
    if m:
        text = f"Regimen {m.group(1)}"
        if m.group(2):
            text += f", dose {m.group(2)}"
        if m.group(3):
            text += f" ({m.group(3).replace('_', ' ')})"
        return text
    names = {
        "simulation.days": "Days simulated",
        "simulation.subjects": "Virtual subjects",
        "simulation.seed": "Random seed",
        "simulation.threshold": "IL-6 threshold",
        "potency.ec50": "In vitro EC50",
        "potency.unit": "EC50 unit",
        "regimen": "Regimens",
    }
    return names.get(field, field)


def _doses(text: str, regimen: int) -> list[tuple[float, float]]:
    """``"1: 0.1, 8: 1"`` as (day, amount) pairs."""
    pairs = []
    for i, part in enumerate(p for p in re.split(r"[,;\n]+", text) if p.strip()):
        bits = [b for b in re.split(r"[:\s=]+", part.strip()) if b]
        label = f"Regimen {regimen}, dose {i + 1}"
        if len(bits) != 2:
            raise InputError(
                f"'{part.strip()}' is not 'day: amount'",
                field=label,
                expected="doses as 'day: amount' pairs, e.g. '1: 0.1, 8: 1, 15: 10'",
            )
        try:
            day, amount = float(bits[0]), float(bits[1])
        except ValueError:
            raise InputError(
                f"'{part.strip()}' is not 'day: amount' with numbers", field=label
            ) from None
        pairs.append((day, amount))
    return pairs


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"[\x00-\x1f]", " ", escaped) + '"'


def regimen_toml(form: dict[str, str]) -> str:
    """The regimen file (TOML, for ``cytosafe simulate``) of the simulation form; a bad
    field is an :class:`~cytosafe.errors.InputError` naming it in the form's words."""
    days = _number(form, "days", "Days simulated")
    subjects = _number(form, "subjects", "Virtual subjects")
    seed = _number(form, "seed", "Random seed", positive=False)
    threshold = _number(form, "threshold", "IL-6 threshold (pg/mL)")
    ec50 = _number(form, "ec50", "In vitro EC50")
    infusion = _number(form, "infusion_hours", "Infusion (h)", positive=False)
    if subjects is not None and (subjects != int(subjects) or subjects > MAX_SUBJECTS):
        raise InputError(
            f"{subjects:g}",
            field="Virtual subjects",
            expected=f"a whole number up to {MAX_SUBJECTS} (more: cytosafe simulate)",
        )
    unit = form.get("unit") or "mg"
    route = form.get("route") or "iv"
    if unit not in _DOSE_UNITS:
        raise InputError(f"'{unit}'", field="Dose unit", expected=", ".join(_DOSE_UNITS))
    if route not in ("iv", "sc"):
        raise InputError(f"'{route}'", field="Route", expected="iv or sc")
    ec50_unit = form.get("ec50_unit") or "ug/mL"
    if ec50_unit not in _EC50_UNITS:
        raise InputError(f"'{ec50_unit}'", field="EC50 unit", expected=", ".join(_EC50_UNITS))
    lines = ['title = "Regimen simulation (web form; SIMULATED)"', "simulated = true", ""]
    lines.append("[simulation]")
    for key, value in (
        ("days", days),
        ("subjects", None if subjects is None else int(subjects)),
        ("seed", None if seed is None else int(seed)),
        ("threshold", threshold),
    ):
        if value is not None:
            lines.append(f"{key} = {value!r}")
    if ec50 is not None:
        lines += ["", "[potency]", f"ec50 = {ec50!r}", f"unit = {_toml_string(ec50_unit)}"]
        lines.append('source = "given in the web form"')
    n = 0
    for i in range(1, MAX_REGIMENS + 1):
        name = (form.get(f"name{i}") or "").strip()
        doses = (form.get(f"doses{i}") or "").strip()
        if not name and not doses:
            continue
        if not doses:
            raise InputError("has no doses", field=f"Regimen {i}", expected="'day: amount' pairs")
        n += 1
        pairs = _doses(doses, i)
        lines += ["", "[[regimen]]", f"name = {_toml_string(name or f'regimen {i}')}"]
        lines.append("doses = [")
        for day, amount in pairs:
            dose = f"day = {day!r}, amount = {amount!r}, unit = {_toml_string(unit)}"
            dose += f', route = "{route}"'
            if route == "iv":
                dose += f", infusion_hours = {(infusion or 0.0)!r}"
            lines.append(f"  {{ {dose} }},")
        lines.append("]")
    if n == 0:
        raise InputError("no regimen", field="Regimen 1", expected="a name and its doses")
    return "\n".join(lines) + "\n"


def _band(x, low, high, color: str, name: str, axis: str) -> dict:
    return {
        "type": "scatter",
        "x": [*x, *x[::-1]],
        "y": [*high, *low[::-1]],
        "fill": "toself",
        "fillcolor": color.replace("rgb", "rgba").replace(")", ",0.15)"),
        "line": {"width": 0},
        "hoverinfo": "skip",
        "showlegend": False,
        "legendgroup": name,
        "xaxis": "x",
        "yaxis": axis,
    }


_COLORS = ("rgb(37,99,235)", "rgb(217,119,6)", "rgb(5,150,105)")


def _figure(courses: pd.DataFrame, threshold: float) -> dict:
    """Drug concentration (top) and IL-6 (bottom) over time, median and 90% band per
    regimen; the legend in a row above the plot, clear of both axes."""
    data = []
    for i, (name, g) in enumerate(courses.groupby("regimen", sort=False)):
        color = _COLORS[i % len(_COLORS)]
        day = [round(v, 4) for v in g["day"]]

        def col(c, g=g):
            return [float(f"{v:.4g}") for v in g[c]]

        data.append(
            _band(day, col("concentration_p05"), col("concentration_p95"), color, name, "y")
        )
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": day,
                "y": col("concentration_median"),
                "name": name,
                "legendgroup": name,
                "line": {"color": color, "width": 2},
                "hovertemplate": "day %{x:.1f}: %{y:.3g} ng/mL<extra>" + name + "</extra>",
                "xaxis": "x",
                "yaxis": "y",
            }
        )
        data.append(_band(day, col("il6_p05"), col("il6_p95"), color, name, "y2"))
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": day,
                "y": col("il6_median"),
                "name": name,
                "legendgroup": name,
                "showlegend": False,
                "line": {"color": color, "width": 2},
                "hovertemplate": "day %{x:.1f}: IL-6 %{y:.3g} pg/mL<extra>" + name + "</extra>",
                "xaxis": "x",
                "yaxis": "y2",
            }
        )
    first, last = float(courses["day"].min()), float(courses["day"].max())
    data.append(
        {
            "type": "scatter",
            "mode": "lines",
            "x": [first, last],
            "y": [threshold, threshold],
            "name": f"IL-6 threshold {threshold:g} pg/mL",
            "line": {"color": "rgb(190,18,60)", "width": 1, "dash": "dash"},
            "hoverinfo": "skip",
            "xaxis": "x",
            "yaxis": "y2",
        }
    )
    return {
        "data": data,
        "layout": {
            "height": 560,
            "margin": {"l": 64, "r": 16, "t": 16, "b": 52},
            # Above the plot area (paper y > 1): Plotly widens the top margin to hold
            # all its rows, so it covers neither the data nor an axis at any width.
            "legend": {
                "orientation": "h",
                "x": 0,
                "xanchor": "left",
                "y": 1.02,
                "yanchor": "bottom",
                "font": {"size": 11},
            },
            "xaxis": {"title": {"text": "day (day 1 = first dose)"}, "anchor": "y2"},
            # One tick per decade: the 2 and 5 between them crowd a phone-sized panel.
            "yaxis": {
                "title": {"text": "drug (ng/mL)"},
                "type": "log",
                "dtick": 1,
                "domain": [0.56, 1],
            },
            "yaxis2": {
                "title": {"text": "IL-6 (pg/mL)"},
                "type": "log",
                "dtick": 1,
                "domain": [0, 0.46],
            },
            "annotations": [
                {
                    # In the gap between the panels, on the figure itself (a saved image
                    # says it too).
                    "text": "SIMULATED · median, 90% band",
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0,
                    "y": 0.51,
                    "xanchor": "left",
                    "yanchor": "middle",
                    "showarrow": False,
                    "font": {"size": 11, "color": "rgb(180,83,9)"},
                }
            ],
        },
    }


_COMPARISON_COLUMNS = (
    ("regimen", "Regimen", None),
    ("n_doses", "Doses", "{:.0f}"),
    ("target_dose", "Target dose", "{:g}"),
    ("unit", "Unit", None),
    ("time_to_target_day", "Target reached on day", "{:g}"),
    ("peak_il6_median", "Peak IL-6, median (pg/mL)", "{:.3g}"),
    ("peak_il6_p05", "5th pct (pg/mL)", "{:.3g}"),
    ("peak_il6_p95", "95th pct (pg/mL)", "{:.3g}"),
    ("share_above_threshold", "Subjects above threshold (%)", "pct"),
    ("first_dose_peak_median", "First-dose peak, median (pg/mL)", "{:.3g}"),
    ("dose_with_highest_median_peak", "Dose with the highest peak", "{:.0f}"),
    ("n_subjects", "Subjects", "{:.0f}"),
)


def _comparison(table: pd.DataFrame) -> dict:
    head = [label for col, label, _ in _COMPARISON_COLUMNS if col in table.columns]
    rows = []
    for r in table.to_dict("records"):
        cells = []
        for col, _, fmt in _COMPARISON_COLUMNS:
            if col not in table.columns:
                continue
            v = r[col]
            if isinstance(v, float) and not math.isfinite(v):
                cells.append("–")
            elif fmt == "pct":
                cells.append(f"{100 * v:.0f}")
            elif fmt and isinstance(v, int | float):
                cells.append(fmt.format(v))
            else:
                cells.append(str(v))
        rows.append(cells)
    return {"head": head, "rows": rows}


def _simulate_page(request: Request, found, form: dict[str, str], run: bool, csrf: str = ""):
    from cytosafe.report.figures import LAYOUT_TEMPLATE, Figures

    result, error, status, toml = None, None, 200, None
    figures = Figures()
    if run:
        check_csrf(found[1], csrf)
        try:
            toml = regimen_toml(form)
            result = _simulate(toml)
        except InputError as exc:
            error, status = _error(exc, _sim_label), 422
    context: dict[str, Any] = {
        "nav": "simulate",
        "form": form,
        "n_regimens": MAX_REGIMENS,
        "dose_units": _DOSE_UNITS,
        "ec50_units": _EC50_UNITS,
        "max_subjects": MAX_SUBJECTS,
        "result": result,
        "toml": toml,
        "error": None if error is None else f"{error['label']}: {error['message']}",
        "figure": None,
    }
    if result is not None:
        context["figure"] = figures.add(_figure(result["courses"], result["threshold"]))
        context["comparison"] = _comparison(result["comparison"])
    context["figures_json"] = figures.to_json()
    context["template_json"] = json.dumps({"layout": LAYOUT_TEMPLATE}, separators=(",", ":"))
    return render(request, "simulate.html", found, status, **context)


def _simulate(toml: str) -> dict:
    from cytosafe.translate.regimen import load_regimen_file
    from cytosafe.translate.simulation import run_regimen_file

    with tempfile.TemporaryDirectory(prefix="cytosafe-simulate-") as tmp:
        path = Path(tmp) / "regimen.toml"
        path.write_text(toml, encoding="utf-8")
        spec = load_regimen_file(path)
        run = run_regimen_file(spec, search=False, chunk_size=None)
    res = run.result
    return {
        "title": spec.title,
        "threshold": spec.threshold,
        "subjects": len(res.population["cl"]),
        "days": spec.days,
        "potency": run.potency,
        "courses": res.time_courses(),
        "comparison": res.comparison(),
    }


@router.get("/simulate", response_class=HTMLResponse)
@page
def simulate_form(request: Request):
    found = signed_in(request)
    form = dict(_SIM_DEFAULTS)
    for i, (name, doses) in enumerate(DEFAULT_REGIMENS, start=1):
        form[f"name{i}"], form[f"doses{i}"] = name, doses
    return _simulate_page(request, found, form, run=False)


@router.post("/simulate", response_class=HTMLResponse)
@page
def simulate_run(
    request: Request,
    days: Annotated[str, Form()] = "",
    subjects: Annotated[str, Form()] = "",
    seed: Annotated[str, Form()] = "",
    threshold: Annotated[str, Form()] = "",
    ec50: Annotated[str, Form()] = "",
    ec50_unit: Annotated[str, Form()] = "ug/mL",
    unit: Annotated[str, Form()] = "mg",
    route: Annotated[str, Form()] = "iv",
    infusion_hours: Annotated[str, Form()] = "",
    name1: Annotated[str, Form()] = "",
    doses1: Annotated[str, Form()] = "",
    name2: Annotated[str, Form()] = "",
    doses2: Annotated[str, Form()] = "",
    name3: Annotated[str, Form()] = "",
    doses3: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
):
    """Simulate the regimens of the form (nothing is stored; CSRF-checked as every
    form that posts)."""
    found = signed_in(request)
    form = {
        "days": days,
        "subjects": subjects,
        "seed": seed,
        "threshold": threshold,
        "ec50": ec50,
        "ec50_unit": ec50_unit,
        "unit": unit,
        "route": route,
        "infusion_hours": infusion_hours,
        "name1": name1,
        "doses1": doses1,
        "name2": name2,
        "doses2": doses2,
        "name3": name3,
        "doses3": doses3,
    }
    return _simulate_page(request, found, form, run=True, csrf=csrf)
