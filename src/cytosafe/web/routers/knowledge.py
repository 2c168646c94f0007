"""The knowledge bases: the assay recommender (``/api/assays/recommend``), the CRS
adverse outcome pathway (``/api/aop``) and the reference compound library's calibration
of the hazard call (``/api/reference/evaluate``)."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from cytosafe.errors import InputError
from cytosafe.web import services
from cytosafe.web.deps import Viewer
from cytosafe.web.schemas import AopQuery
from cytosafe.web.services.knowledge import MAX_DONORS

__all__ = ["router"]

router = APIRouter(prefix="/api")


@router.get("/assays/recommend", tags=["knowledge"])
def recommend_assays(
    user: Viewer,
    modality: str,
    target: str | None = None,
    fc: str | None = None,
    intended_use: str = "hazard_identification",
) -> dict:
    """Rank CRA formats for a molecule and name what they cannot see."""
    return services.recommend_assays(modality, target, fc, intended_use)


@router.get("/reference/evaluate", tags=["knowledge"])
def reference_evaluate(
    user: Viewer,
    rule_set: Annotated[
        str | None, Query(description="A shipped responder rule set (the default one if absent).")
    ] = None,
    donors: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_DONORS,
            description="The study's donor panel (the library's cited panel if absent).",
        ),
    ] = None,
    mean_only: Annotated[
        bool, Query(description="Judge every readout on its paper's mean alone.")
    ] = False,
    qualitative: Annotated[
        str,
        Query(description="'not_evaluable' (default) or 'authors': count the authors' call."),
    ] = "not_evaluable",
    confirmed_only: Annotated[
        bool, Query(description="Only what was confirmed against its source.")
    ] = False,
) -> dict:
    """A responder rule set scored on the reference library's published CRA results, per
    format, against clinical CRS (``cytosafe reference evaluate``): sensitivity and
    specificity with exact 95 % intervals, the compounds missed with their mechanism, and
    the probability that donor panels of several sizes show each response. The library's
    figures come from the cited publications; the calls support, never replace, a
    toxicologist's judgement."""
    return services.reference_evaluation(
        rule_set,
        donors,
        mean_only=mean_only,
        qualitative=qualitative,
        confirmed_only=confirmed_only,
    )


@router.post("/aop/probability", tags=["knowledge"])
def aop_probability(body: AopQuery, user: Viewer) -> dict:
    """P(CRS), P(severe CRS) and P(no CRS) for a modality, given key-event evidence
    (the quantitative CRS AOP, a Bayesian network), with the ``basis`` of its tables:
    ``elicited`` (expert values with their citations) or fitted to the reference
    library (:mod:`cytosafe.aop.fit`), so that no caller reads an elicited number as a
    measured one (issue 18 item 4)."""
    from cytosafe.aop.bayes import CrsBayesNetwork

    try:
        network = CrsBayesNetwork.for_modality(body.modality)
    except KeyError:
        raise InputError(f"unknown modality '{body.modality}'", field="modality") from None
    return {
        "modality": body.modality,
        "evidence": body.evidence,
        **network.probability(body.evidence),
        "basis": network.basis,
    }


@router.get(
    "/aop/figure.svg",
    tags=["knowledge"],
    responses={200: {"content": {"image/svg+xml": {}}, "description": "The AOP figure."}},
)
def aop_figure(
    user: Viewer,
    modality: str | None = None,
    highlight: Annotated[
        str | None, Query(description="Comma-separated key events to emphasise.")
    ] = None,
) -> Response:
    """The CRS adverse outcome pathway as SVG (one modality's pathway when given)."""
    return Response(services.aop_figure(modality, highlight), media_type="image/svg+xml")
