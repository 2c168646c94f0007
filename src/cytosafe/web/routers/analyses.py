"""Analyses: background quantification and hazard runs, their tables and reports, and
sign-off: ``/api/studies/{code}/analyses``, ``/api/analyses/{id}``."""

from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response

from cytosafe.errors import InputError
from cytosafe.web import services
from cytosafe.web.deps import (
    Analyst,
    Jobs,
    ServerSettings,
    StoreDep,
    Tables,
    Viewer,
    on_loop,
)
from cytosafe.web.schemas import AnalysisOut, QuantifyIn, SignatureOut, SignOffIn
from cytosafe.web.services.analyses import analysis_signatures
from cytosafe.web.signatures import signing
from cytosafe.web.tables import PARQUET

__all__ = ["router"]

router = APIRouter(prefix="/api")


@router.get("/studies/{code}/analyses", response_model=list[AnalysisOut], tags=["analyses"])
@on_loop
def list_analyses(code: str, user: Viewer, store: StoreDep) -> list[AnalysisOut]:
    return services.list_analyses(store, user, code)


@router.post(
    "/studies/{code}/analyses/quantification",
    response_model=AnalysisOut,
    status_code=202,
    tags=["analyses"],
)
def run_quantification(
    code: str, user: Analyst, store: StoreDep, jobs: Jobs, body: QuantifyIn | None = None
) -> AnalysisOut:
    """Quantify the study's stored plates in the background: fit the standard curves,
    back-calculate every well, fit potency, render the QC report. Poll
    ``GET /api/analyses/{id}`` for the status and progress."""
    return services.run_quantification(store, jobs, user, code, body)


@router.post(
    "/studies/{code}/analyses/hazard",
    response_model=AnalysisOut,
    status_code=202,
    tags=["analyses"],
)
def run_hazard(
    code: str,
    user: Analyst,
    study_file: Annotated[UploadFile, File(description="The study file (TOML).")],
    store: StoreDep,
    settings: ServerSettings,
    jobs: Jobs,
) -> AnalysisOut:
    """Run the whole analysis of a study file on the study's stored plates in the
    background: quantification, donor responses, statistics, hazard classes and the
    study report. The study file is validated now (422 naming line and key) and kept,
    with its SHA-256, in the analysis settings; a study file written for another
    ``study.id`` is run as this study (``settings.study_file.note`` says so)."""
    return services.run_hazard(store, settings, jobs, user, code, study_file)


@router.get("/analyses/{analysis_id}", response_model=AnalysisOut, tags=["analyses"])
@on_loop
def read_analysis(analysis_id: int, user: Viewer, store: StoreDep) -> AnalysisOut:
    """An analysis: status, progress (poll this while it runs), settings, tables."""
    return services.read_analysis(store, user, analysis_id)


@router.get(
    "/analyses/{analysis_id}/tables/{name}",
    tags=["analyses"],
    responses={
        200: {
            "content": {"text/csv": {}, "application/json": {}, PARQUET: {}},
            "description": "The table as CSV, JSON (records) or Parquet.",
        }
    },
)
@on_loop
def read_table(
    analysis_id: int,
    name: str,
    user: Viewer,
    store: StoreDep,
    cache: Tables,
    format: Annotated[Literal["csv", "json", "parquet"], Query()] = "csv",
) -> Response:
    """One result table of an analysis; Parquet is sent as stored (its SHA-256 is the
    one recorded in the audit trail)."""
    return services.read_table(store, cache, user, analysis_id, name, format)


@router.get(
    "/analyses/{analysis_id}/report",
    tags=["analyses"],
    responses={200: {"content": {"text/html": {}}, "description": "The HTML report."}},
)
@on_loop
def read_report(analysis_id: int, user: Viewer, store: StoreDep) -> Response:
    """The report of an analysis (self-contained HTML)."""
    return services.read_report(store, user, analysis_id)


@router.post(
    "/analyses/{analysis_id}/sign-off",
    response_model=AnalysisOut,
    tags=["analyses"],
    responses={
        401: {"description": "Wrong user name or password: nothing was signed."},
        429: {"description": "Too many wrong passwords (the sign-in throttle)."},
    },
)
def sign_analysis(
    analysis_id: int, user: Analyst, store: StoreDep, request: Request, body: SignOffIn
) -> AnalysisOut:
    """Sign a completed analysis electronically (21 CFR Part 11): the user name and
    password entered again, a meaning (authored, reviewed: analyst or higher; approved:
    study director, which makes the analysis final) and an optional comment. A wrong
    password is a 401, recorded in the audit trail and counted by the sign-in throttle."""
    if not (body.username or "").strip():
        raise InputError(
            "a signature through the API needs the user name with the password",
            field="username",
            expected="the signer's user name (21 CFR 11.200(a)(1))",
        )
    with signing(request, body.username):
        return services.sign_analysis(store, user, analysis_id, body)


@router.get(
    "/analyses/{analysis_id}/signatures", response_model=list[SignatureOut], tags=["analyses"]
)
@on_loop
def list_signatures(analysis_id: int, user: Viewer, store: StoreDep) -> list[SignatureOut]:
    """The electronic signatures of an analysis, oldest first (the manifest)."""
    return analysis_signatures(store, user, analysis_id)
