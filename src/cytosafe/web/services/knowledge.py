"""The knowledge bases: the assay recommender and the CRS adverse outcome pathway figure."""

from __future__ import annotations

import json

from cytosafe.errors import InputError
from cytosafe.web.tables import records

__all__ = [
    "MAX_DONORS",
    "aop_evidence",
    "aop_figure",
    "hazard_analyses",
    "recommend_assays",
    "reference_evaluation",
]


def recommend_assays(
    modality: str,
    target: str | None = None,
    fc: str | None = None,
    intended_use: str = "hazard_identification",
) -> dict:
    """The ranked CRA formats for a molecule and what they cannot see, as JSON."""
    from cytosafe.assays.recommend import recommend

    rec = recommend(modality, target, fc, intended_use)
    return {
        "modality": rec.modality,
        "modality_name": rec.modality_name,
        "target": rec.target,
        "fc": rec.fc,
        "intended_use": rec.intended_use,
        "chosen": rec.chosen,
        "uncovered": rec.uncovered,
        "notes": rec.notes,
        "panel": rec.panel,
        "controls": json.loads(json.dumps(rec.controls, default=str)),
        "ranking": records(rec.ranking),
        "citations": rec.citations,
        "knowledge_base_version": rec.kb_version,
    }


#: The largest donor panel the reference page and API take (a bound, not a
#: recommendation).
MAX_DONORS = 10_000


def reference_evaluation(
    rule_set: str | None = None,
    donors: int | None = None,
    *,
    mean_only: bool = False,
    qualitative: str = "not_evaluable",
    confirmed_only: bool = False,
) -> dict:
    """One rule set scored on the reference library, as ``cytosafe reference evaluate``
    scores it (:func:`cytosafe.reference.evaluate`), as JSON: the settings, performance
    per format and endpoint, misses and false alarms with their mechanisms, the calls,
    the probability that panels of several sizes show each response
    (:func:`cytosafe.reference.detection_by_panel`), the compounds and the disclaimer.

    ``rule_set``: a shipped rule set (the hazard layer's default when ``None``);
    ``donors``: the study's donor panel (the library's cited panel when ``None``);
    ``mean_only``: judge every readout on its paper's mean alone (no panel).
    """
    from cytosafe.hazard import get_rule_set
    from cytosafe.reference import DISCLAIMER, detection_by_panel, evaluate
    from cytosafe.reference.calibration import panel_choice

    panel = panel_choice(
        donors, mean_only, names=("a donor panel", "'means alone'"), field="donors"
    )
    rs = get_rule_set(rule_set or None)
    ev = evaluate(
        rs,
        donors=panel,
        qualitative=qualitative,
        confirmed_only=confirmed_only,
    )
    return {
        "rule_set": rs.name,
        "rule_set_title": rs.title,
        "rules": [r.describe() for r in rs.rules],
        "settings": json.loads(json.dumps(ev.settings, default=str)),
        "performance": records(ev.performance),
        "misses": records(ev.misses),
        "calls": records(ev.calls),
        "detection_by_panel": records(detection_by_panel(ev)),
        "compounds": records(ev.compounds),
        "disclaimer": DISCLAIMER,
    }


def aop_figure(modality: str | None = None, highlight: str | None = None) -> str:
    """The CRS adverse outcome pathway as SVG (one modality's pathway when given), with
    the comma-separated key events of ``highlight`` emphasised."""
    from cytosafe.aop import aop_svg, load_crs_aop

    aop = load_crs_aop()
    marks = {h.strip() for h in (highlight or "").split(",") if h.strip()}
    unknown = sorted(marks - set(aop.events))
    if unknown:
        raise InputError(
            f"unknown key event '{unknown[0]}'",
            field="highlight",
            expected="keys of the AOP's events: " + ", ".join(sorted(aop.events)),
        )
    if modality is not None and not aop.mies_for(modality):
        raise InputError(
            f"unknown modality '{modality}'",
            field="modality",
            expected="a modality of the AOP, e.g. cd3_bispecific",
        )
    return aop_svg(aop, highlight=marks, modality=modality)


def hazard_analyses(store, user) -> list[tuple[int, str]]:
    """The completed (or signed-off) hazard analyses ``user`` can see, as (id, label),
    newest first: the studies whose evidence the AOP page can map."""
    from cytosafe.web.services.analyses import list_analyses
    from cytosafe.web.services.studies import list_studies

    out = []
    for study in list_studies(store, user):
        for a in list_analyses(store, user, study.code):
            if a.kind == "hazard" and a.status in ("completed", "signed_off"):
                out.append((a.id, f"{study.code} · hazard analysis {a.id} (v{a.version})"))
    return sorted(out, reverse=True)


def aop_evidence(store, user, analysis_id: int, modality: str | None = None):
    """A study's evidence on the CRS pathway: the donor-level responses of a hazard
    analysis ``user`` can see, mapped as ``cytosafe aop map`` maps them
    (:func:`cytosafe.aop.evidence.map_evidence`: mechanism-aware, positive controls as the
    assay's own sensitivity evidence), and the pathway drawn with the numbers beside each
    event (:func:`cytosafe.aop.aop_svg`).

    Returns ``(svg, table, study)``: the drawing, the evidence table (one row per key
    event, source and format) and the study's code. ``modality``: the test article's
    (without it no molecular initiating event gets evidence, as the mechanism that would
    start it is unknown).
    """
    from cytosafe.aop import aop_svg, load_crs_aop
    from cytosafe.aop.evidence import map_evidence
    from cytosafe.assays.knowledge import load_knowledge_base
    from cytosafe.web.services.analyses import read_analysis, stored_table

    analysis = read_analysis(store, user, analysis_id)  # 404 when the user may not see it
    if analysis.kind != "hazard" or analysis.status not in ("completed", "signed_off"):
        raise InputError(
            f"analysis {analysis_id} is a {analysis.status} {analysis.kind} analysis",
            field="analysis",
            expected="a completed hazard analysis",
        )
    responses = stored_table(store, analysis.id, "responses")
    if responses is None or responses.empty:
        raise InputError(f"analysis {analysis_id} has no donor responses", field="analysis")
    key = load_knowledge_base().modality(modality).key if modality else None
    aop = load_crs_aop()
    table, lit = map_evidence(aop, responses=responses, study=analysis.study, modality=key)
    return aop_svg(aop, highlight=lit, modality=key, evidence=table), table, analysis.study
