"""The reference compound library as a page: would this format, with this rule, have
flagged the drugs that caused cytokine release syndrome in people?

``/reference`` scores one responder rule set on the library's published cytokine release
assay results, as ``cytosafe reference evaluate`` does (:func:`cytosafe.web.services.
reference_evaluation`, the same call as ``/api/reference/evaluate``): sensitivity and
specificity per format against clinical CRS with exact intervals, the compounds each
format misses with the mechanism that explains the miss, the probability that donor
panels of several sizes show each response, and the compounds with their clinical
outcome and source. The form sets the rule set, the study's donor panel (or the papers'
means alone), how the authors' qualitative calls count and whether unconfirmed figures
are used; a bad value is an :class:`~cytosafe.errors.InputError` shown as a message
naming the field. The library's figures come from the cited publications; the calls
support, never replace, a toxicologist's judgement.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cytosafe.errors import InputError
from cytosafe.reference.power import chance_text
from cytosafe.web import services
from cytosafe.web.pages import _message, page, render, signed_in
from cytosafe.web.services.knowledge import MAX_DONORS

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

#: The page's choices of ``qualitative`` (the values of :data:`cytosafe.reference.
#: calibration.QUALITATIVE`), in words.
QUALITATIVE_CHOICES = (
    ("not_evaluable", "not evaluable (no number)"),
    ("authors", "the authors' call counts"),
)


def _pct(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}%"


def _ci(p: Any, lo: Any, hi: Any) -> str:
    return "–" if p is None else f"{_pct(p)} ({_pct(lo)}–{_pct(hi)})"


def _donors(text: str | None) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    n = int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else 0
    if not 1 <= n <= MAX_DONORS:
        raise InputError(
            f"'{text}'", field="donors", expected=f"a whole number of donors from 1 to {MAX_DONORS}"
        )
    return n


def _flag(text: str | None, field: str) -> bool:
    """A checkbox: absent or empty is off; what a browser sends ("on") or true is on."""
    value = (text or "").strip().lower()
    if value in ("", "0", "off", "false", "no"):
        return False
    if value in ("1", "on", "true", "yes"):
        return True
    raise InputError(f"'{text}'", field=field, expected="on or off")


def _context(result: dict, format_names: dict[str, str]) -> dict[str, Any]:
    """The evaluation as the template shows it: words and percentages, not raw numbers."""
    names = {c["compound"]: c["name"] for c in result["compounds"]}

    def fmt(key: str) -> str:
        return format_names.get(key, key.replace("_", " "))

    performance = [
        {
            "format": fmt(r["format"]),
            "endpoint": r["endpoint"].removeprefix("CRS of ").replace(">=", "≥"),
            "counts": f"{r['tp']}/{r['fn']}/{r['fp']}/{r['tn']}",
            "sens": _ci(r["sensitivity"], r["sensitivity_ci_low"], r["sensitivity_ci_high"]),
            "spec": _ci(r["specificity"], r["specificity_ci_low"], r["specificity_ci_high"]),
            "not_evaluable": ", ".join(
                names.get(k.strip(), k.strip()) for k in r["not_evaluable"].split(",") if k.strip()
            ),
            "authors": ", ".join(
                names.get(k.strip(), k.strip())
                for k in (r.get("on_authors_call") or "").split(",")
                if k.strip()
            ),
        }
        for r in result["performance"]
    ]
    misses = [
        {
            "format": fmt(m["format"]),
            "endpoint": m["endpoint"].replace(">=", "≥"),
            "kind": m["kind"],
            "compound": m["name"],
            "mechanism": m["mechanisms_in_format"],
            "reason": m["reasons"],
        }
        for m in result["misses"]
    ]
    # One rule set was evaluated, so each published response has one row.
    sizes = sorted(
        {int(k[2:-7]) for r in result["detection_by_panel"] for k in r if k.startswith("p_")}
    )
    panel = [
        {
            "compound": names.get(r["compound"], r["compound"]),
            "format": fmt(r["format"]),
            "fc": f"{r['fold_change']:g}",
            "n90": r["donors_for_power"],
            "effect": f"{r['effect_size']:.2f}",
            "p": [chance_text(r[f"p_{n}_donors"], "") for n in sizes],
            "source": f"{r['source']} ({r['location']})",
        }
        for r in result["detection_by_panel"]
    ]

    def outcome(flag: Any, percent: Any) -> str:
        if flag is None:
            return "unknown"
        text = "yes" if flag else "no"
        return f"{text} ({percent:g}%)" if percent is not None else text

    compounds = [
        {
            "name": c["name"],
            "modality": c["modality"].replace("_", " "),
            "target": c["target"],
            "mechanisms": str(c["mechanisms"]).replace("_", " "),
            "fc": c["fc_format"].replace("_", " "),
            "crs": outcome(c["crs_any"], c["crs_any_percent"]),
            "severe": outcome(c["crs_severe"], c["crs_severe_percent"]),
            "patients": "–" if c["patients"] is None else f"{c['patients']:g}",
            "dose": c["dose"],
            "source": f"{c['clinical_source_key']} ({c['clinical_location']})",
            "confirmed": "yes" if c["clinical_confirmed"] else "no",
            "readouts": c["readouts"],
        }
        for c in result["compounds"]
    ]
    return {
        "performance": performance,
        "misses": misses,
        "panel": panel,
        "sizes": sizes,
        "compounds": compounds,
    }


@router.get("/reference", response_class=HTMLResponse)
@page
def reference(
    request: Request,
    rule_set: str | None = None,
    donors: str | None = None,
    mean_only: str | None = None,
    qualitative: str = "not_evaluable",
    confirmed_only: str | None = None,
):
    """One rule set scored on the reference library (the calibration of the hazard call)."""
    found = signed_in(request)
    from cytosafe.assays import load_knowledge_base
    from cytosafe.hazard.rules import presets
    from cytosafe.reference import donor_panel, load_library

    rule_sets = [(name, rs.title) for name, rs in presets().items()]
    form = {
        "rule_set": rule_set or "",
        "donors": (donors or "").strip(),
        "mean_only": bool(mean_only),
        "qualitative": qualitative,
        "confirmed_only": bool(confirmed_only),
    }
    library = load_library()
    panel = donor_panel(library)
    error, error_field, result, shown, code = None, None, None, None, 200
    try:
        form["mean_only"] = _flag(mean_only, "mean_only")
        form["confirmed_only"] = _flag(confirmed_only, "confirmed_only")
        result = services.reference_evaluation(
            rule_set or None,
            _donors(donors),
            mean_only=form["mean_only"],
            qualitative=qualitative,
            confirmed_only=form["confirmed_only"],
        )
        kb = load_knowledge_base()
        shown = _context(result, {k: f.name for k, f in kb.formats.items()})
    except InputError as exc:
        error, error_field, code = _message(exc), exc.field, 422
    study_donors = None if result is None else result["settings"].get("donors")
    return render(
        request,
        "reference.html",
        found,
        code,
        result=result,
        shown=shown,
        form=form,
        error=error,
        error_field=error_field,
        rule_sets=rule_sets,
        qualitative_choices=QUALITATIVE_CHOICES,
        panel=panel,
        study_donors=study_donors,
        library_version=library.version,
        n_compounds=len(library.compounds),
    )
