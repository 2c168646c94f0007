"""The knowledge bases: the assay recommender and the CRS adverse outcome pathway figure."""

from __future__ import annotations

import json

from cytosafe.errors import InputError
from cytosafe.web.tables import records

__all__ = ["aop_figure", "recommend_assays"]


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
