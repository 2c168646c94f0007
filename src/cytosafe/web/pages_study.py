"""A study's journeys in the browser and the API (issue 15, item 2): attach or replace the
sample map of stored plates, delete a plate, look at a plate's layout, enter the study
design in a form (a study file imported into it, exported from it) and run the hazard
analysis from the stored design.

Every change goes through the store's audited functions
(:func:`cytosafe.store.studies.annotate_plate`, :func:`~cytosafe.store.studies.delete_plate`,
:func:`~cytosafe.store.studies.save_design`), so ``cytosafe audit verify`` stays intact; a
plate read by a signed-off analysis is refused (409). The pages call the same services
as the API (:mod:`cytosafe.web.services.studies`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUpload

from cytosafe.errors import InputError
from cytosafe.web import services
from cytosafe.web.deps import Analyst, Jobs, ServerSettings, StoreDep, Viewer, on_loop
from cytosafe.web.design_form import design_from_form, form_context
from cytosafe.web.pages import _message, check_csrf, page, render, signed_in, study_page, templates
from cytosafe.web.plate_layout import SAMPLE_TYPE_LABELS
from cytosafe.web.schemas import AnalysisOut
from cytosafe.web.services import studies as study_services
from cytosafe.web.services.clinical import clinical_study, scale_choices

__all__ = ["router"]

router = APIRouter()
# The scale picker of the observations upload (_observations_upload.html, any page).
templates.env.globals["scale_choices"] = scale_choices
#: Where the study file of a run from the stored design says it came from.
DESIGN_FILE = "{code}-design.toml"


def _file(upload: UploadFile | str | None) -> UploadFile | None:
    """A file input left empty arrives as "" (or a part without a name): no file."""
    return upload if isinstance(upload, StarletteUpload) and upload.filename else None


def _run_design(store, settings, jobs, user, code: str) -> AnalysisOut:
    """Queue the hazard analysis of the study's stored plates from its stored design."""
    text = study_services.design_file(store, user, code)
    name = DESIGN_FILE.format(code=code)
    return services.run_hazard(
        store, settings, jobs, user, code, study_services.as_upload(text, name)
    )


# --- API -------------------------------------------------------------------------------------


@router.post("/api/studies/{code}/sample-map", tags=["studies"])
def attach_sample_map(
    code: str,
    user: Analyst,
    store: StoreDep,
    settings: ServerSettings,
    sample_map: Annotated[UploadFile, File(description="Culture metadata by sample_id or well.")],
    plate: Annotated[str, Form(description="The plate; empty: those the map names.")] = "",
    reason: Annotated[str, Form()] = "",
) -> list[dict]:
    """Attach (or replace) the sample map of stored plates (analyst): ``plate``, or every
    plate the map's ``plate_id`` column names. An audited edit of the wells' donor,
    treatment, role, concentration, dilution...; a bad map is a 422 naming the file, row
    or well and field, a plate read by a signed-off analysis a 409."""
    return study_services.attach_sample_map(
        store, settings, user, code, sample_map, plate=plate.strip() or None, reason=reason
    )


@router.delete("/api/studies/{code}/plates/{plate}", tags=["studies"])
def delete_plate(
    code: str,
    plate: str,
    user: Analyst,
    store: StoreDep,
    reason: Annotated[str, Query(description="Why the plate is deleted (audited).")],
) -> dict:
    """Delete a plate and its measurements (analyst), with a reason; audited. A plate read
    by a signed-off analysis is a 409; analyses not signed off keep their tables."""
    return study_services.remove_plate(store, user, code, plate, reason)


@router.get("/api/studies/{code}/plates/{plate}/layout", tags=["studies"])
@on_loop
def plate_layout(
    code: str, plate: str, user: Viewer, store: StoreDep, analyte: str | None = None
) -> dict:
    """The plate's wells as a grid: sample type, the signal of ``analyte`` and the
    culture of each well."""
    view = study_services.plate_view(store, user, code, plate, analyte)
    return {**view["grid"], "plate": view["plate"].model_dump(), "analyses": view["analyses"]}


@router.get("/api/studies/{code}/design", tags=["studies"])
@on_loop
def read_design(code: str, user: Viewer, store: StoreDep) -> dict | None:
    """The study's stored design (the JSON of a study file's tables), or null."""
    return study_services.read_design(store, user, code)


@router.put("/api/studies/{code}/design", tags=["studies"])
def put_design(
    code: str,
    user: Analyst,
    store: StoreDep,
    design: Annotated[dict, Body(description="The tables of a study file, as JSON.")],
) -> dict:
    """Store the study's design (analyst), validated as ``cytosafe analyze`` validates a
    study file; ``study.id`` is the study's code. Audited."""
    return study_services.store_design(store, user, code, design, file="design")


@router.post("/api/studies/{code}/design/import", tags=["studies"])
def import_design(
    code: str,
    user: Analyst,
    store: StoreDep,
    settings: ServerSettings,
    study_file: Annotated[UploadFile, File(description="A study file (TOML).")],
) -> dict:
    """Store the design of a study file (TOML); a file written for another study id is
    taken as this study's (``notes`` says so)."""
    design, notes = study_services.design_upload(store, settings, user, code, study_file)
    stored = study_services.store_design(
        store, user, code, design, file=study_file.filename or "study.toml"
    )
    return {"design": stored, "notes": notes}


def _toml_download(text: str, code: str) -> Response:
    return Response(
        text,
        media_type="application/toml",
        headers={"Content-Disposition": f'attachment; filename="{quote(code)}-study.toml"'},
    )


@router.get("/api/studies/{code}/design.toml", tags=["studies"])
def export_design(code: str, user: Viewer, store: StoreDep) -> Response:
    """The stored design as a study file (TOML), for ``cytosafe analyze`` or another
    study; 404 when the study has none."""
    return _toml_download(study_services.design_file(store, user, code), code)


@router.post(
    "/api/studies/{code}/analyses/hazard/design",
    response_model=AnalysisOut,
    status_code=202,
    tags=["analyses"],
)
def run_hazard_from_design(
    code: str, user: Analyst, store: StoreDep, settings: ServerSettings, jobs: Jobs
) -> AnalysisOut:
    """Run the hazard analysis of the study's stored plates from its stored design (no
    study file needed); 404 when the study has no design."""
    return _run_design(store, settings, jobs, user, code)


# --- pages -----------------------------------------------------------------------------------


@router.post("/studies/{code}/sample-map", include_in_schema=False)
@page
def sample_map_form(
    request: Request,
    code: str,
    sample_map: Annotated[UploadFile | str | None, File()] = None,
    plate: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
):
    found = signed_in(request, "analyst")
    check_csrf(found[1], csrf)
    state = request.app.state
    try:
        upload = _file(sample_map)
        if upload is None:
            raise InputError("choose a sample map file", field="sample_map")
        done = study_services.attach_sample_map(
            state.store,
            state.settings,
            found[0],
            code,
            upload,
            plate=plate.strip() or None,
            reason=reason,
        )
    except (InputError, HTTPException) as exc:
        if isinstance(exc, HTTPException) and exc.status_code in (403, 404):
            raise
        status_code = 409 if isinstance(exc, InputError) and _signed(exc) else 422
        return study_page(request, found, code, status_code, error=_message(exc))
    said = "; ".join(f"{d['plate']}: {d['n_changed']} measurements annotated" for d in done)
    return study_page(request, found, code, 200, notice=f"Sample map attached ({said}).")


def _signed(exc: Exception) -> bool:
    from cytosafe.store import SignedOffError

    return isinstance(exc, SignedOffError)


@router.get("/studies/{code}/plates/{plate}", response_class=HTMLResponse, include_in_schema=False)
@page
def plate_page(request: Request, code: str, plate: str, analyte: str | None = None):
    found = signed_in(request)
    return _plate_page(request, found, code, plate, analyte)


def _plate_page(request, found, code, plate, analyte=None, status_code=200, **extra: Any):
    view = study_services.plate_view(request.app.state.store, found[0], code, plate, analyte)
    signed = [a for a in view["analyses"] if a["status"] == "signed_off"]
    return render(
        request,
        "plate.html",
        found,
        status_code,
        code=code,
        types=SAMPLE_TYPE_LABELS,
        signed=signed,
        **view,
        **extra,
    )


@router.post("/studies/{code}/plates/{plate}/delete", include_in_schema=False)
@page
def delete_plate_form(
    request: Request,
    code: str,
    plate: str,
    reason: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
):
    found = signed_in(request, "analyst")
    check_csrf(found[1], csrf)
    try:
        if confirm != plate:
            raise InputError(
                f"type the plate's name ({plate}) to confirm its deletion",
                field="confirm",
                expected=plate,
            )
        done = study_services.remove_plate(request.app.state.store, found[0], code, plate, reason)
    except InputError as exc:
        status_code = 409 if _signed(exc) else 422
        return _plate_page(request, found, code, plate, status_code=status_code, error=str(exc))
    return study_page(
        request,
        found,
        code,
        200,
        notice=f"Plate {plate} deleted ({done['n_measurements']} measurements); the "
        "audit trail keeps its fingerprint and the reason.",
    )


def _design_page(request, found, code, design, status_code=200, **extra: Any):
    from cytosafe.web.deps import get_study

    with request.app.state.store.reader() as session:
        study = get_study(session, found[0], code)
        stored = study.design is not None
    return render(
        request,
        "design.html",
        found,
        status_code,
        study=study,
        stored=stored,
        form=form_context(design),
        **extra,
    )


@router.get("/studies/{code}/design", response_class=HTMLResponse, include_in_schema=False)
@page
def design_page(request: Request, code: str):
    found = signed_in(request)
    design = study_services.read_design(request.app.state.store, found[0], code)
    return _design_page(request, found, code, design)


@router.get("/studies/{code}/design.toml", include_in_schema=False)
@page
def design_download(request: Request, code: str):
    found = signed_in(request)
    return _toml_download(study_services.design_file(request.app.state.store, found[0], code), code)


@router.post("/studies/{code}/design", include_in_schema=False)
async def design_save(request: Request, code: str):
    # The form's rows are repeated fields (t_name, t_role, ...): read as a multi-dict.
    form = await request.form()
    return await run_in_threadpool(_design_save, request, code, form)


@page
def _design_save(request: Request, code: str, form):
    found = signed_in(request, "analyst")
    check_csrf(found[1], str(form.get("csrf", "")))
    try:
        base = json.loads(str(form.get("base") or "{}"))
    except ValueError:
        base = {}
    base = base if isinstance(base, dict) else {}
    store = request.app.state.store
    design = base
    try:
        design = design_from_form(form, base)
        stored = study_services.store_design(store, found[0], code, design, file="design form")
    except InputError as exc:
        return _design_page(request, found, code, design, 422, error=str(exc))
    return _design_page(
        request,
        found,
        code,
        stored,
        notice=f"Design saved: {len(stored.get('treatment', []))} treatments.",
    )


@router.post("/studies/{code}/design/import", include_in_schema=False)
@page
def design_import(
    request: Request,
    code: str,
    study_file: Annotated[UploadFile | str | None, File()] = None,
    csrf: Annotated[str, Form()] = "",
):
    found = signed_in(request, "analyst")
    check_csrf(found[1], csrf)
    state = request.app.state
    try:
        upload = _file(study_file)
        if upload is None:
            raise InputError("choose a study file (TOML)", field="study_file")
        design, notes = study_services.design_upload(
            state.store, state.settings, found[0], code, upload
        )
    except InputError as exc:
        current = study_services.read_design(state.store, found[0], code)
        return _design_page(request, found, code, current, 422, error=str(exc))
    notes = [*notes, "Check the form and save it to store the design."]
    return _design_page(request, found, code, design, notice=" ".join(notes))


@router.post("/studies/{code}/hazard-design", include_in_schema=False)
@page
def hazard_from_design(request: Request, code: str, csrf: Annotated[str, Form()] = ""):
    found = signed_in(request, "analyst")
    check_csrf(found[1], csrf)
    state = request.app.state
    try:
        out = _run_design(state.store, state.settings, state.jobs, found[0], code)
    except InputError as exc:
        return study_page(request, found, code, 422, error=_message(exc))
    return RedirectResponse(f"/analyses/{out.id}", status_code=303)


@router.get("/studies/{code}/observations", response_class=HTMLResponse, include_in_schema=False)
@page
def observations_page(request: Request, code: str):
    found = signed_in(request, "analyst")
    try:
        study = clinical_study(request.app.state.store, found[0], code)
    except InputError as exc:
        raise HTTPException(422, str(exc)) from None
    return render(request, "observations.html", found, study=study)
