"""Studies, their plates and the wells excluded from the calibration: ``/api/studies``,
``/api/studies/{code}/plates``, ``/api/studies/{code}/exclusions``."""

from typing import Annotated

from fastapi import APIRouter, File, UploadFile

from cytosafe.web import services
from cytosafe.web.deps import Analyst, ServerSettings, StoreDep, Viewer, on_loop
from cytosafe.web.schemas import (
    ExcludedWellOut,
    ExclusionOut,
    ExclusionsIn,
    PlateOut,
    StudyIn,
    StudyOut,
)

__all__ = ["router"]

router = APIRouter(prefix="/api")


@router.get("/studies", response_model=list[StudyOut], tags=["studies"])
@on_loop
def list_studies(user: Viewer, store: StoreDep) -> list[StudyOut]:
    """The studies you can see."""
    return services.list_studies(store, user)


@router.post("/studies", response_model=StudyOut, status_code=201, tags=["studies"])
def new_study(body: StudyIn, user: Analyst, store: StoreDep) -> StudyOut:
    """Create a study (analyst); ``group`` must be one of yours (any, for an admin)."""
    return services.new_study(store, user, body)


@router.get("/studies/{code}", response_model=StudyOut, tags=["studies"])
@on_loop
def read_study(code: str, user: Viewer, store: StoreDep) -> StudyOut:
    return services.read_study(store, user, code)


@router.get("/studies/{code}/plates", response_model=list[PlateOut], tags=["studies"])
@on_loop
def list_plates(code: str, user: Viewer, store: StoreDep) -> list[PlateOut]:
    """The study's plates with the number of stored measurements."""
    return services.list_plates(store, user, code)


@router.post(
    "/studies/{code}/plates", response_model=list[PlateOut], status_code=201, tags=["studies"]
)
def upload_exports(
    code: str,
    user: Analyst,
    files: Annotated[list[UploadFile], File(description="Instrument exports or tidy tables.")],
    store: StoreDep,
    settings: ServerSettings,
    sample_map: Annotated[
        UploadFile | None, File(description="Culture metadata keyed by sample_id or well.")
    ] = None,
) -> list[PlateOut]:
    """Upload raw exports (MSD, xPONENT, Bio-Plex, tidy CSV/XLSX) and an optional sample
    map; every file is read and validated, then all plates are stored in one
    transaction. A plate already stored with the same measurements is kept as it is."""
    return services.store_exports(store, settings, user, code, files, sample_map)


@router.get("/studies/{code}/exclusions", response_model=list[ExcludedWellOut], tags=["studies"])
@on_loop
def list_exclusions(code: str, user: Viewer, store: StoreDep) -> list[ExcludedWellOut]:
    """The study's measurements excluded from the calibration, with their reasons."""
    return services.excluded_wells(store, user, code)


@router.post("/studies/{code}/exclusions", response_model=list[ExclusionOut], tags=["studies"])
def exclude_wells(
    code: str, body: ExclusionsIn, user: Analyst, store: StoreDep
) -> list[ExclusionOut]:
    """Exclude wells from the calibration, each with its reason (analyst). One
    transaction, one audit entry per well; no analyte: every analyte of the well. A well
    that does not exist is a 422 naming it (nothing is written); a plate read by a
    signed-off analysis is a 409. Quantify the study again to refit."""
    return services.change_wells(store, user, code, body, exclude=True)


@router.post(
    "/studies/{code}/exclusions/restore", response_model=list[ExclusionOut], tags=["studies"]
)
def include_wells(
    code: str, body: ExclusionsIn, user: Analyst, store: StoreDep
) -> list[ExclusionOut]:
    """Restore excluded wells to the calibration, each with the reason (analyst),
    audited as the exclusions are."""
    return services.change_wells(store, user, code, body, exclude=False)
