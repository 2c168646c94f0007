"""Clinical CRS grading: observations of a cohort uploaded, graded and stored
(``/api/studies/{code}/observations``, as a table, SDTM domains or a FHIR bundle), or
graded without storing (``/api/grade``)."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from cytosafe.web import services
from cytosafe.web.deps import Analyst, Compute, ServerSettings, StoreDep, Viewer, uploads

__all__ = ["router"]

router = APIRouter(prefix="/api")

Scales = Annotated[
    str, Form(description="Comma-separated scales (astct2019, lee2014, ctcae5, ...).")
]


@router.post("/studies/{code}/observations", status_code=201, tags=["clinical"])
def upload_observations(
    code: str,
    user: Analyst,
    file: Annotated[UploadFile, File(description="Observation table (CSV or XLSX).")],
    store: StoreDep,
    settings: ServerSettings,
    compute: Compute,
    scales: Scales = "astct2019",
) -> dict:
    """Upload an observation table (patient_id, time, item, value, unit), store it
    and its grades (a grading analysis) in one transaction; returns the per-patient
    and cohort tables."""
    return services.upload_observations(store, settings, compute, user, code, file, scales)


@router.post("/studies/{code}/observations/sdtm", status_code=201, tags=["clinical"])
def upload_sdtm(
    code: str,
    user: Analyst,
    dm: Annotated[UploadFile, File(description="Demographics (.xpt).")],
    vs: Annotated[UploadFile, File(description="Vital signs (.xpt).")],
    store: StoreDep,
    settings: ServerSettings,
    compute: Compute,
    ex: Annotated[UploadFile | None, File()] = None,
    cm: Annotated[UploadFile | None, File()] = None,
    pr: Annotated[UploadFile | None, File()] = None,
    ae: Annotated[UploadFile | None, File()] = None,
    lb: Annotated[UploadFile | None, File(description="Laboratory results (.xpt).")] = None,
    product: Annotated[str | None, Form()] = None,
    scales: Scales = "astct2019",
) -> dict:
    """Upload CDISC SDTM domains (SAS transport files), store the observations (with
    LB's laboratory results, for the predictors) and their grades."""
    study = services.clinical_study(store, user, code)
    with uploads(settings) as up:
        parts = {
            k: up.save(f, f"{k}.xpt")
            for k, f in {
                "dm": dm,
                "vs": vs,
                "ex": ex,
                "cm": cm,
                "pr": pr,
                "ae": ae,
                "lb": lb,
            }.items()
            if f is not None
        }
        return services.grade_and_store(
            store, compute, study, user, up, "sdtm", parts, product, scales
        )


@router.post("/studies/{code}/observations/fhir", status_code=201, tags=["clinical"])
def upload_fhir(
    code: str,
    user: Analyst,
    bundle: Annotated[UploadFile, File(description="FHIR R4 Bundle (JSON).")],
    store: StoreDep,
    settings: ServerSettings,
    compute: Compute,
    product: Annotated[str | None, Form()] = None,
    scales: Scales = "astct2019",
) -> dict:
    """Upload a FHIR R4 Bundle of Observations (laboratory ones too, for the predictors)
    and MedicationAdministrations, store the observations and their grades."""
    study = services.clinical_study(store, user, code)
    with uploads(settings) as up:
        path = up.save(bundle, "bundle.json")
        return services.grade_and_store(
            store, compute, study, user, up, "fhir", {"bundle": path}, product, scales
        )


@router.post("/grade", tags=["clinical"])
async def grade_batch(
    user: Viewer,
    file: Annotated[UploadFile, File(description="Observation table (CSV or XLSX).")],
    settings: ServerSettings,
    compute: Compute,
    scales: Scales = "astct2019",
) -> dict:
    """Grade an observation table without storing anything: per-patient and cohort
    tables of each scale."""
    with uploads(settings) as up:
        path = await asyncio.to_thread(up.save, file, "observations.csv")
        return await compute.run(services.grade_upload, str(path), services.parse_scales(scales))
