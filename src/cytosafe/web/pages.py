"""The web pages of CytoSafe: server-rendered Jinja2 templates on top of the REST API.

Pages sign in with a session cookie that carries an API token (HttpOnly, SameSite=Lax);
every form that changes something carries a CSRF token derived from the session token
(checked on POST). Pages call the same services as the API (:mod:`cytosafe.web.services`),
after the same role checks, and never call the API over HTTP. Progress of a running
analysis is polled by a few lines of plain JavaScript from ``/analyses/{id}/status``.

The quantification form starts at "vendor convention" for every option and sends only
the options changed; a quantification's page says which convention each plate got and
lists its standard points, where an analyst ticks points to exclude (or restore) with a
reason, audited in the store, and re-runs the quantification (issue 12, items 2 and 8).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import pandas as pd
from fastapi import APIRouter, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import UploadFile as StarletteUpload

from cytosafe.errors import InputError
from cytosafe.report.assays import readout_groups
from cytosafe.report.figures import LAYOUT_TEMPLATE, Figures, natural_key, signal_name
from cytosafe.schema.choices import BlankHandling, Covariance, CurveModel, Weighting
from cytosafe.store import ROLES, SignedOffError, User, token_user
from cytosafe.store.users import WEB_SESSION
from cytosafe.web import cohort as cohort_figures
from cytosafe.web import compare as side_by_side
from cytosafe.web import results, services
from cytosafe.web.deps import get_study
from cytosafe.web.schemas import ExclusionIn, ExclusionsIn, QuantifyIn, SignOffIn, StudyIn
from cytosafe.web.tables import cell, readable, single_unit

__all__ = ["COOKIE", "add_pages"]

COOKIE = "cytosafe_session"
HERE = Path(__file__).parent
REPORT_CSS = HERE.parent / "report" / "templates" / "_report.css"
REPORT_JS = HERE.parent / "report" / "templates" / "_report.js"


class _Redirect(Exception):
    def __init__(self, url: str) -> None:
        self.url = url


def _csrf(token: str) -> str:
    return hashlib.sha256(f"cytosafe-csrf:{token}".encode()).hexdigest()


def _fmt(value: Any) -> str:
    """A table cell as text: numbers to 4 significant digits, missing as blank."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:
            return ""
        return f"{value:.4g}"
    return str(value)


def _message(exc: Exception) -> str:
    if isinstance(exc, HTTPException):
        return str(exc.detail)
    return str(exc)


templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["fmt"] = _fmt

router = APIRouter(include_in_schema=False)


def add_pages(app: FastAPI) -> None:
    """Add the web pages (and ``/static``) to the CytoSafe ``app``."""
    app.add_exception_handler(_Redirect, _redirect)
    app.include_router(router)


async def _redirect(request: Request, exc: _Redirect) -> RedirectResponse:
    return RedirectResponse(exc.url, status_code=303)


# --- session, roles, CSRF -----------------------------------------------------------------


def session_user(request: Request) -> tuple[User, str] | None:
    """The user of the session cookie and its token, or None (not signed in)."""
    token = request.cookies.get(COOKIE)
    user = token_user(request.app.state.store, token) if token else None
    return None if user is None else (user, token)


def signed_in(request: Request, minimum: str = "viewer") -> tuple[User, str]:
    """The signed-in user (role ``minimum`` or higher, else 403) and their token; not
    signed in: off to the sign-in page."""
    found = session_user(request)
    if found is None:
        raise _Redirect("/sign-in?next=" + quote(request.url.path))
    user, _ = found
    if ROLES.index(user.role) < ROLES.index(minimum):
        raise HTTPException(
            403,
            f"user '{user.username}' ({user.role}) may not do this; needs role {minimum} or higher",
        )
    return found


def check_csrf(token: str, csrf: str) -> None:
    if not hmac.compare_digest(_csrf(token), csrf or ""):
        raise HTTPException(403, "the form is stale or forged (CSRF check failed): reload")


def render(request: Request, name: str, found, status_code: int = 200, **context: Any):
    """Template ``name`` with the user, their CSRF token and role test in its context."""
    user, token = found if found else (None, None)
    context.update(
        status_code=status_code,
        user=user,
        csrf=_csrf(token) if token else "",
        can=lambda role: user is not None and ROLES.index(user.role) >= ROLES.index(role),
    )
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def page(handler):
    """Turn sign-in redirects and 403s into pages."""

    @functools.wraps(handler)
    def wrapped(request: Request, *args, **kwargs):
        try:
            return handler(request, *args, **kwargs)
        except _Redirect as r:
            return RedirectResponse(r.url, status_code=303)
        except HTTPException as exc:
            if exc.status_code not in (403, 404, 409, 422):
                raise
            found = session_user(request)
            return render(request, "error.html", found, exc.status_code, message=_message(exc))

    return wrapped


# --- static ------------------------------------------------------------------------------


@router.get("/static/report.css")
def report_css() -> Response:
    return Response(REPORT_CSS.read_text(encoding="utf-8"), media_type="text/css")


@router.get("/static/report.js")
def report_js() -> Response:
    return Response(REPORT_JS.read_text(encoding="utf-8"), media_type="text/javascript")


_plotly_bundle: dict[str, bytes] = {}


@router.get("/static/plotly.min.js")
def plotly_js() -> Response:
    """The plotly.js bundle of the installed plotly package (as the reports inline
    it): served from here, never from a CDN, and cached by the browser."""
    body = _plotly_bundle.get("js")
    if body is None:
        from plotly.offline import get_plotlyjs

        body = _plotly_bundle.setdefault("js", get_plotlyjs().encode("utf-8"))
    return Response(
        body, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"}
    )


@router.get("/static/{name}")
def static(name: str) -> Response:
    path = HERE / "static" / Path(name).name
    if not path.is_file():
        raise HTTPException(404, "not found")
    media = {".css": "text/css", ".js": "text/javascript"}.get(path.suffix, "text/plain")
    return Response(path.read_bytes(), media_type=media)


# --- sign-in ------------------------------------------------------------------------------


@router.get("/")
def home(request: Request) -> RedirectResponse:
    return RedirectResponse("/studies" if session_user(request) else "/sign-in", 303)


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request, next: str = "/studies"):
    return render(request, "sign_in.html", None, next=next)


@router.post("/sign-in")
def sign_in(
    request: Request,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/studies",
):
    state = request.app.state
    issued = services.sign_in(state.store, state.settings, username, password, name=WEB_SESSION)
    if issued is None:
        return render(
            request,
            "sign_in.html",
            None,
            401,
            next=next,
            error="Wrong user name or password.",
        )
    token, lifetime = issued
    target = next if next.startswith("/") and not next.startswith("//") else "/studies"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/sign-out")
@page
def sign_out(request: Request, csrf: Annotated[str, Form()] = ""):
    _, token = signed_in(request)
    check_csrf(token, csrf)
    services.sign_out(request.app.state.store, request.app.state.tokens, token)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(COOKIE)
    return response


# --- studies -----------------------------------------------------------------------------


def studies_page(request: Request, found, status_code: int = 200, error: str | None = None):
    studies = services.list_studies(request.app.state.store, found[0])
    return render(request, "studies.html", found, status_code, studies=studies, error=error)


@router.get("/studies", response_class=HTMLResponse)
@page
def studies(request: Request):
    return studies_page(request, signed_in(request))


@router.post("/studies")
@page
def create_study(
    request: Request,
    code: Annotated[str, Form()],
    title: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "cra",
    group: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
):
    found = signed_in(request, "analyst")
    check_csrf(found[1], csrf)
    try:
        body = StudyIn(
            code=code.strip(),
            title=title.strip() or None,
            kind=kind,
            group=group.strip() or None,
        )
        services.new_study(request.app.state.store, found[0], body)
    except (InputError, HTTPException, ValueError) as exc:
        return studies_page(request, found, 422, error=_message(exc))
    return RedirectResponse(f"/studies/{quote(body.code)}", status_code=303)


def study_page(
    request: Request, found, code: str, status_code: int = 200, **extra: Any
) -> Response:
    store = request.app.state.store
    user = found[0]
    with store.reader() as session:
        study = get_study(session, user, code)
    analyses = services.list_analyses(store, user, code)
    context = dict(study=study, analyses=list(reversed(analyses)), **extra)
    if study.kind == "clinical":
        # The latest grading, signed or not, opens the page: incidence, swimmer, heatmap.
        grading = [a for a in analyses if a.kind == "grading" and a.status in READY]
        latest = grading[-1] if grading else None
        context["latest"] = latest
        context.update(_cohort_context(store, latest))
        return render(request, "cohort.html", found, status_code, **context)
    context["plates"] = services.list_plates(store, user, code)
    context["choices"] = QUANTIFY_CHOICES
    context["acceptance_choices"] = ACCEPTANCE_CHOICES
    from cytosafe.web.services.studies import unmapped_plates

    context["unmapped"] = unmapped_plates(store, user, code)
    return render(request, "study.html", found, status_code, **context)


#: The quantification form's options: (field, label, choices). Each starts empty, "vendor
#: convention": only what the user changes is sent (issue 12, item 2).
QUANTIFY_CHOICES = (
    ("model", "Curve model", list(CurveModel)),
    ("weighting", "Weighting", list(Weighting)),
    ("blank", "Blanks", list(BlankHandling)),
    ("covariance", "Covariance", list(Covariance)),
)

#: The acceptance criteria of the calibration (:data:`cytosafe.curves.calibration.ACCEPTANCE`):
#: left empty, CytoSafe's defaults (nothing is sent, as for the other options).
ACCEPTANCE_CHOICES = (
    ("", "CytoSafe defaults"),
    ("ich-m10", "ICH M10 (ligand-binding assays)"),
)


@router.get("/studies/{code}", response_class=HTMLResponse)
@page
def study(request: Request, code: str):
    return study_page(request, signed_in(request), code)


@router.post("/studies/{code}/plates")
@page
def upload_plates(
    request: Request,
    code: str,
    # A browser sends a file input left empty as a part without a file name, which
    # arrives as "" (hence the str): it counts as no file.
    files: Annotated[list[UploadFile | str], File()] = [],  # noqa: B006
    sample_map: Annotated[UploadFile | str | None, File()] = None,
    csrf: Annotated[str, Form()] = "",
):
    found = signed_in(request, "analyst")
    check_csrf(found[1], csrf)
    if not (isinstance(sample_map, StarletteUpload) and sample_map.filename):
        sample_map = None
    files = [f for f in files if isinstance(f, StarletteUpload) and f.filename]
    state = request.app.state
    try:
        if not files:
            raise InputError("choose at least one export file", field="files")
        plates = services.store_exports(
            state.store, state.settings, found[0], code, files, sample_map
        )
    except (InputError, HTTPException) as exc:
        if isinstance(exc, HTTPException) and exc.status_code == 404:
            raise
        return study_page(request, found, code, 422, error=_message(exc))
    names = ", ".join(p.code for p in plates)
    return study_page(request, found, code, 201, notice=f"Stored plates: {names}.")


@router.post("/studies/{code}/quantify")
@page
def quantify(
    request: Request,
    code: str,
    model: Annotated[str, Form()] = "",
    weighting: Annotated[str, Form()] = "",
    blank: Annotated[str, Form()] = "",
    covariance: Annotated[str, Form()] = "",
    acceptance: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
):
    found = signed_in(request, "analyst")
    check_csrf(found[1], csrf)
    state = request.app.state
    chosen = {"model": model, "weighting": weighting, "blank": blank, "covariance": covariance,
              "acceptance": acceptance}  # fmt: skip
    try:
        # Empty is "vendor convention": only the options the user set are passed on.
        body = QuantifyIn(**{k: v.strip() for k, v in chosen.items() if v.strip()})
        out = services.run_quantification(state.store, state.jobs, found[0], code, body)
    except (InputError, ValueError) as exc:
        return study_page(request, found, code, 422, error=_message(exc))
    return RedirectResponse(f"/analyses/{out.id}", status_code=303)


@router.post("/studies/{code}/hazard")
@page
def hazard(
    request: Request,
    code: str,
    study_file: Annotated[UploadFile, File()],
    csrf: Annotated[str, Form()] = "",
):
    found = signed_in(request, "analyst")
    check_csrf(found[1], csrf)
    state = request.app.state
    from cytosafe.web.services.studies import as_upload, own_study_file

    name = study_file.filename or "study.toml"
    # A study file written for another study id runs as this study, and the page says so.
    raw, note = own_study_file(study_file.file.read(), code, name)
    try:
        out = services.run_hazard(
            state.store, state.settings, state.jobs, found[0], code, as_upload(raw, name)
        )
    except InputError as exc:
        return study_page(request, found, code, 422, error=_message(exc))
    if note:
        return study_page(request, found, code, 202, notice=f"{note} Analysis {out.id} is running.")
    return RedirectResponse(f"/analyses/{out.id}", status_code=303)


@router.post("/studies/{code}/observations")
@page
def observations(
    request: Request,
    code: str,
    # A table, SDTM domains (.xpt) or a FHIR Bundle; the scales ticked in the picker.
    files: Annotated[list[UploadFile | str], File()] = [],  # noqa: B006
    file: Annotated[UploadFile | str | None, File()] = None,
    scales: Annotated[list[str], Form()] = ["astct2019"],  # noqa: B006
    product: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
):
    from cytosafe.web.services.clinical import upload_clinical

    found = signed_in(request, "analyst")
    check_csrf(found[1], csrf)
    state = request.app.state
    chosen = [f for f in [*files, file] if isinstance(f, StarletteUpload) and f.filename]
    try:
        out = upload_clinical(
            state.store, state.settings, state.compute, found[0], code, chosen, scales,
            product.strip() or None,
        )  # fmt: skip
    except InputError as exc:
        return study_page(request, found, code, 422, error=_message(exc))
    return study_page(
        request,
        found,
        code,
        201,
        notice=f"Stored {out['observations']} observations and graded them "
        f"(analysis {out['analysis']}).",
    )


# --- analyses ----------------------------------------------------------------------------

#: The analysis page's script (served from the page's own route, ``/scripts/results.js``).
RESULTS_JS = HERE / "templates" / "results.js"
# Every table on a page is written by one helper (web.tables): readable cells, units.
templates.env.globals.update(cell=cell, readable=readable)


def _number(value: Any) -> float | None:
    """A table cell as a finite float, or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _standard_curves(wells: pd.DataFrame | None, qc: pd.DataFrame | None, excluded_now):
    """The standard and blank wells of a quantification, one group per plate x analyte,
    with the QC verdict of the curve and what is excluded now in the store (the form acts
    on the store; the run shows what it excluded)."""
    if wells is None or wells.empty:
        return []
    points = wells[wells["sample_type"].isin(["standard", "blank"])]
    verdict = {}
    if qc is not None and {"plate_id", "analyte", "qc_pass"} <= set(qc.columns):
        for r in qc.to_dict("records"):
            verdict[(str(r["plate_id"]), str(r["analyte"]))] = r
    now = {(w.plate_id, w.well, w.analyte): w.reason for w in excluded_now}
    curves = []
    for (plate, analyte), rows in points.groupby(
        [points["plate_id"].astype(str), points["analyte"].astype(str)], sort=False
    ):
        rows = rows.sort_values(
            ["standard_concentration", "well"], ascending=[False, True], na_position="last"
        )
        items = []
        for r in rows.to_dict("records"):
            nominal, value = (
                _number(r.get("standard_concentration")),
                _number(r.get("concentration")),
            )
            recovery = (
                100 * value / nominal if nominal and nominal > 0 and value is not None else None
            )
            key = (plate, str(r["well"]), analyte)
            ran = bool(r.get("exclude"))
            reason = r.get("exclusion_reason") if ran else None
            items.append(
                {
                    "key": {"plate_id": plate, "well": str(r["well"]), "analyte": analyte},
                    "id": results.well_id(plate, str(r["well"]), analyte),
                    "well": r["well"],
                    "type": r["sample_type"],
                    "nominal": nominal,
                    "signal": r.get("signal"),
                    "signal_used": r.get("signal_used", r.get("signal")),
                    "concentration": value,
                    "recovery": recovery,
                    "flags": r.get("flags") if isinstance(r.get("flags"), str) else "",
                    "in_run": ran,
                    "run_reason": reason if isinstance(reason, str) else None,
                    "now": key in now,
                    "now_reason": now.get(key),
                }
            )
        qc_row = verdict.get((plate, analyte), {})
        passed = qc_row.get("qc_pass")
        curves.append(
            {
                "plate": plate,
                "analyte": analyte,
                "qc_pass": None if passed is None or passed != passed else bool(passed),
                "qc_reasons": qc_row.get("qc_reasons")
                if isinstance(qc_row.get("qc_reasons"), str)
                else "",
                "n_excluded": sum(1 for i in items if i["in_run"]),
                "changed": any(i["in_run"] != i["now"] for i in items),
                "reader": side_by_side.text_cell(rows["reader"].iloc[0])
                if "reader" in rows
                else "",
                "rows": items,
            }
        )
    return curves


#: The states in which an analysis has results to show (a signed analysis shows them all,
#: read-only: issue 15, "Why" 1).
READY = ("completed", "signed_off")

#: Rows of each raw table shown on the page (the download has them all).
RAW_ROWS = 50


def _figures_context(figures: Figures) -> dict:
    """The JSON the figure scripts read (report.js, results.js): the page's figures and
    the reports' Plotly template."""
    return {
        "figures_json": figures.to_json() if figures.specs else "",
        "template_json": json.dumps(LAYOUT_TEMPLATE, separators=(",", ":")),
    }


def _cohort_context(store, latest) -> dict:
    """The cohort page's (and a grading analysis page's) answer: incidence per scale,
    the swimmer plot and the grade-by-day heatmap of the grading analysis ``latest``."""
    if latest is None:
        return {"patients": None, "incidence": [], "swimmer": None, "heatmap": None}
    patients = services.stored_table(store, latest.id, "patients")
    grades = services.stored_table(store, latest.id, "grades")
    figures = Figures()
    swimmer = cohort_figures.swimmer_figure(grades, patients)
    heatmap = cohort_figures.grade_heatmap(grades, patients)
    return {
        "patients": patients,
        "incidence": cohort_figures.incidence_rows(
            services.stored_table(store, latest.id, "cohort"), patients
        ),
        "swimmer": None if swimmer is None else figures.add(swimmer),
        "swimmer_height": None if swimmer is None else swimmer["layout"]["height"],
        "heatmap": None if heatmap is None else figures.add(heatmap),
        "heatmap_height": None if heatmap is None else heatmap["layout"]["height"],
        # The figures draw the first scale graded (the incidence table has them all).
        "figure_scale": ""
        if patients is None or patients.empty or "scale" not in patients
        else str(patients["scale"].iloc[0]),
        **_figures_context(figures),
    }


def _standard_figures(curves: list[dict], fits: pd.DataFrame | None, editable: bool) -> Figures:
    """A standard-curve figure per curve (its ``figure`` id set on the curve)."""
    figures = Figures()
    by_curve = {}
    if fits is not None and {"plate_id", "analyte"} <= set(fits.columns):
        for r in fits.to_dict("records"):
            by_curve[(str(r["plate_id"]), str(r["analyte"]))] = r
    for c in curves:
        spec = results.standard_figure(
            c,
            c["rows"],
            by_curve.get((c["plate"], c["analyte"])),
            signal=signal_name(reader=c["reader"] or None),
            editable=editable,
        )
        c["figure"] = figures.add(spec)
    return figures


def analysis_page(
    request: Request, found, analysis_id: int, status_code: int = 200, **extra: Any
) -> Response:
    """An analysis opens with its answer (hazard calls, QC per analyte, cohort incidence),
    then its figures, the report, and the raw tables last, collapsed; a signed analysis
    shows all of it read-only."""
    store = request.app.state.store
    user = found[0]
    out = services.read_analysis(store, user, analysis_id)
    ready = out.status in READY
    tables = (
        {t.name: services.stored_table(store, analysis_id, t.name) for t in out.tables}
        if ready
        else {}
    )
    can_edit = ROLES.index(user.role) >= ROLES.index("analyst")
    editable = can_edit and out.status == "completed" and not out.signed_off_by
    context: dict[str, Any] = {"hazard": None, "incidence": [], "curves": []}
    figures = Figures()
    if ready and out.kind == "hazard":
        context["hazard"] = results.hazard_summary(
            tables.get("hazard"), tables.get("positive_controls")
        )
    if ready and out.kind == "quantification":
        now = services.excluded_wells(store, user, out.study)
        curves = _standard_curves(tables.get("concentrations"), tables.get("qc"), now)
        figures = _standard_figures(curves, tables.get("curves"), editable)
        context["curves"] = curves
    if ready and out.kind == "grading":
        context.update(_cohort_context(store, out))
    else:
        context.update(_figures_context(figures))
    units = single_unit(tables)  # a QC table's LLOQ is in its curves' unit
    raw = [
        {
            "name": t.name,
            "n_rows": t.n_rows,
            "table": readable(tables.get(t.name), RAW_ROWS, units),
        }
        for t in out.tables
    ]
    return render(
        request,
        "analysis.html",
        found,
        status_code,
        analysis=out,
        ready=ready,
        editable=editable,
        qc_rows=results.qc_summary(tables.get("qc"), tables.get("curves")),
        raw=raw,
        conventions=out.settings.get("conventions") or [],
        options=out.settings.get("options") or {},
        excluded=out.settings.get("excluded_wells") or [],
        **context,
        **extra,
    )


@router.get("/scripts/results.js")
def results_js() -> Response:
    """The analysis page's script: draws each standard curve when opened and ticks a
    standard point's checkbox when the point is clicked."""
    return Response(RESULTS_JS.read_text(encoding="utf-8"), media_type="text/javascript")


@router.get("/analyses/{analysis_id}", response_class=HTMLResponse)
@page
def analysis(request: Request, analysis_id: int):
    return analysis_page(request, signed_in(request), analysis_id)


@router.post("/analyses/{analysis_id}/exclusions")
@page
def analysis_exclusions(
    request: Request,
    analysis_id: int,
    wells: Annotated[list[str], Form()] = [],  # noqa: B006
    reason: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "exclude",
    rerun: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
):
    """Exclude (or restore) the standard points ticked on a quantification's page, with
    the reason given, audited in the store; then, when asked, quantify again (a
    re-analysis with the same options) and go to it."""
    found = signed_in(request, "analyst")
    check_csrf(found[1], csrf)
    state = request.app.state
    out = services.read_analysis(state.store, found[0], analysis_id)  # 404 when hidden
    exclude = action != "include"
    try:
        if not wells:
            raise InputError("tick at least one well", field="wells")
        if not reason.strip():
            raise InputError(
                "an exclusion needs a reason",
                field="reason",
                expected="a documented, assignable reason (ICH M10, 2022, section 8)",
            )
        try:
            keys = [json.loads(w) for w in wells]
            body = ExclusionsIn(wells=[ExclusionIn(**k, reason=reason.strip()) for k in keys])
        except (ValueError, TypeError):
            raise InputError("the wells ticked cannot be read: reload", field="wells") from None
        changed = services.change_wells(state.store, found[0], out.study, body, exclude=exclude)
        if rerun:
            new = services.rerun_quantification(state.store, state.jobs, found[0], analysis_id)
            return RedirectResponse(f"/analyses/{new.id}", status_code=303)
    except SignedOffError as exc:
        return analysis_page(request, found, analysis_id, 409, error=_message(exc))
    except InputError as exc:
        return analysis_page(request, found, analysis_id, 422, error=_message(exc))
    n = sum(len(c.analytes) for c in changed)
    verb = "Excluded" if exclude else "Restored"
    return analysis_page(
        request,
        found,
        analysis_id,
        notice=f"{verb} {n} measurement(s) with the reason '{reason.strip()}'. "
        "Re-run the quantification to refit.",
    )


@router.get("/analyses/{analysis_id}/compare", response_class=HTMLResponse)
@page
def compare(
    request: Request,
    analysis_id: int,
    articles: Annotated[list[str] | None, Query()] = None,
    format: str | None = None,
):
    """The test articles of a hazard analysis side by side: hazard calls, per cytokine
    fold change over the negative control against the positive controls, potency, and
    one figure of the fold change per cytokine with a trace per test article."""
    store = request.app.state.store
    found = signed_in(request)
    out = services.read_analysis(store, found[0], analysis_id)
    if out.kind != "hazard":
        raise HTTPException(
            404,
            f"analysis {analysis_id} is a {out.kind} analysis, not a hazard analysis: "
            "it has no test articles to compare",
        )
    if out.status not in READY:
        raise HTTPException(
            409,
            f"hazard analysis {analysis_id} is {out.status}: "
            "compare its test articles once it has completed",
        )
    hazard = services.stored_table(store, analysis_id, "hazard")
    if hazard is None or hazard.empty:
        raise HTTPException(404, f"hazard analysis {analysis_id} called no test article")
    known = list(dict.fromkeys(str(t) for t in hazard["treatment"]))
    wanted = list(dict.fromkeys(a.strip() for a in articles or [] if a.strip()))
    unknown = [a for a in wanted if a not in known]
    if unknown:
        names = ", ".join(f"'{a}'" for a in unknown)
        raise HTTPException(
            404,
            f"test article {names} not found in hazard analysis {analysis_id}; "
            f"its test articles are {', '.join(known)}",
        )
    chosen = [a for a in known if a in wanted] if wanted else known
    mine = hazard[hazard["treatment"].isin(chosen)]
    formats = side_by_side.formats(mine)
    if format:
        where = next((f for f in formats if f["key"] == format), None)
        if where is None:
            raise HTTPException(
                404,
                f"format '{format}' not found for {', '.join(chosen)} in hazard analysis "
                f"{analysis_id}; formats: {', '.join(f['key'] for f in formats)}",
            )
    else:
        where = formats[0]
    labels = {(f["format"], f["inc"]): f for f in formats}
    calls = []
    for r in sorted(
        mine.to_dict("records"),
        key=lambda r: (
            chosen.index(r["treatment"]),
            natural_key(side_by_side.text_cell(r["assay_format"])),
        ),
    ):
        f = labels[
            (side_by_side.text_cell(r["assay_format"]), side_by_side.number(r["incubation_h"]))
        ]
        cls = side_by_side.text_cell(r["hazard_class"])
        above = side_by_side.text_cell(r.get("benchmarks_above")).split()
        below = side_by_side.text_cell(r.get("benchmarks_below")).split()
        rank = side_by_side.number(r.get("rank"))
        calls.append(
            {
                "article": r["treatment"],
                "format": f,
                "cls": cls,
                "style": side_by_side.CLASS_STYLE.get(cls, ""),
                "analytes": side_by_side.text_cell(r["analytes"]).split(),
                "responders": f"{int(r['max_responders'])}/{int(r['n_donors'])}",
                "rank": "" if rank is None else f"{int(rank)} of {int(r['n_ranked'])}",
                "above": above,
                "below": below,
                "rule": side_by_side.text_cell(r.get("class_rule")),
                "reason": side_by_side.text_cell(r["reason"]),
            }
        )
    names = ("summary", "benchmark", "positive_controls", "potency")
    tables = {"hazard": hazard, **{n: services.stored_table(store, analysis_id, n) for n in names}}
    return render(
        request,
        "compare.html",
        found,
        analysis=out,
        known=known,
        chosen=chosen,
        formats=formats,
        where=where,
        calls=calls,
        classes={c["article"]: c for c in calls if c["format"] is where},
        **side_by_side.comparison(tables, chosen, where),
    )


@router.get("/analyses/{analysis_id}/status")
@page
def analysis_status(request: Request, analysis_id: int):
    out = services.read_analysis(request.app.state.store, signed_in(request)[0], analysis_id)
    return JSONResponse({"status": out.status, "progress": out.progress, "message": out.message})


@router.get("/analyses/{analysis_id}/report")
@page
def analysis_report(request: Request, analysis_id: int, download: bool = False):
    response = services.read_report(request.app.state.store, signed_in(request)[0], analysis_id)
    if download:
        response.headers["Content-Disposition"] = (
            f'attachment; filename="analysis-{analysis_id}-report.html"'
        )
    return response


@router.get("/analyses/{analysis_id}/tables/{name}.{fmt}")
@page
def analysis_table(request: Request, analysis_id: int, name: str, fmt: str):
    if fmt not in ("csv", "json", "parquet"):
        raise HTTPException(404, f"no format '{fmt}'")
    state = request.app.state
    user = signed_in(request)[0]
    return services.read_table(state.store, state.tables, user, analysis_id, name, fmt)


@router.post("/analyses/{analysis_id}/sign-off")
@page
def analysis_sign_off(
    request: Request,
    analysis_id: int,
    meaning: Annotated[str, Form()] = "",
    comment: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    username: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
):
    """Sign an analysis electronically from its page (``_signature.html``): the meaning
    chosen (no default), a comment, the password again, and the user name too at the
    first signature of this session (21 CFR 11.200(a)(1)); a wrong one is a 401 page,
    audited and counted by the sign-in throttle (:mod:`cytosafe.web.signatures`)."""
    from cytosafe.store import AuthorizationError
    from cytosafe.web.signatures import remember_session, signed_in_session, signing

    store = request.app.state.store
    found = signed_in(request, "analyst")
    check_csrf(found[1], csrf)
    first = not signed_in_session(request, found[1])
    try:
        if first and not username.strip():
            raise InputError(
                "enter your user name with your password: this is your first signature "
                "in this session",
                field="username",
                expected="your user name (21 CFR 11.200(a)(1))",
            )
        body = SignOffIn(
            meaning=meaning[:200],
            comment=comment[:20_000] or None,
            username=username.strip()[:200] or None,
            password=password[:1024],
        )
        with signing(request, username if username.strip() else found[0].username):
            services.sign_analysis(store, found[0], analysis_id, body)
    except HTTPException as exc:
        if exc.status_code not in (401, 429):
            raise
        response = analysis_page(request, found, analysis_id, exc.status_code, error=_message(exc))
        response.headers.update(exc.headers or {})
        return response
    except AuthorizationError as exc:
        return analysis_page(request, found, analysis_id, 403, error=_message(exc))
    except SignedOffError as exc:
        return analysis_page(request, found, analysis_id, 409, error=_message(exc))
    except InputError as exc:
        return analysis_page(request, found, analysis_id, 422, error=_message(exc))
    remember_session(request, found[1])
    return RedirectResponse(f"/analyses/{analysis_id}#signatures", status_code=303)


def _signature_panel(request: Request, analysis: Any, user: User | None) -> dict[str, Any]:
    from cytosafe.web.signatures import signature_panel

    return signature_panel(request, analysis, user, request.cookies.get(COOKIE))


# The analysis page's signature panel (_signature.html) asks this for what it shows.
templates.env.globals["signature_panel"] = _signature_panel


# --- knowledge ---------------------------------------------------------------------------


@router.get("/assays", response_class=HTMLResponse)
@page
def assays(
    request: Request,
    modality: str | None = None,
    target: str | None = None,
    fc: str | None = None,
    intended_use: str = "hazard_identification",
):
    found = signed_in(request)
    from cytosafe.assays.knowledge import load_knowledge_base

    kb = load_knowledge_base()
    modalities = sorted(kb.modalities) if hasattr(kb, "modalities") else []
    result, error, code = None, None, 200
    if modality:
        try:
            result = services.recommend_assays(modality, target or None, fc or None, intended_use)
        except (InputError, KeyError, ValueError) as exc:
            error, code = _message(exc), 422
    form = dict(modality=modality or "", target=target or "", fc=fc or "")
    form["intended_use"] = intended_use
    return render(
        request,
        "assays.html",
        found,
        code,
        result=result,
        ranking=None if result is None else _ranking(result["ranking"], kb),
        groups=[] if result is None else readout_groups(result["panel"]),
        mechanism_names={k: m.name for k, m in getattr(kb, "mechanisms", {}).items()},
        error=error,
        form=form,
        modalities=modalities,
    )


#: The recommender's ranking columns as the page shows them, in this order.
_RANKING_COLUMNS = (
    "rank", "format", "name", "chosen", "score", "coverage", "status", "detects", "readouts",
    "donors", "incubation", "reasons",
)  # fmt: skip


def _ranking(rows: list[dict], kb: Any = None) -> pd.DataFrame:
    """The ranking as readable text: each mechanism (by its name in the knowledge base
    ``kb``) with how well the format detects it, the reasons as sentences (never a Python
    list)."""
    mechanisms = getattr(kb, "mechanisms", {}) or {}

    def named(key: str) -> str:
        found = mechanisms.get(key)
        return getattr(found, "name", None) or key.replace("_", " ")

    table = pd.DataFrame(rows)
    if "detects" in table:
        table["detects"] = table["detects"].map(
            lambda d: (
                "; ".join(f"{named(k)}: {v}" for k, v in d.items()) if isinstance(d, dict) else d
            )
        )
    if "reasons" in table:
        table["reasons"] = table["reasons"].map(
            lambda r: "; ".join(map(str, r)) if isinstance(r, list) else r
        )
    return table[[c for c in _RANKING_COLUMNS if c in table.columns]]


@router.get("/aop", response_class=HTMLResponse)
@page
def aop(request: Request, modality: str | None = None, analysis: str | None = None):
    """The CRS adverse outcome pathway (one modality's when chosen), and a study's
    evidence on it when a completed hazard analysis is chosen (issue 18 item 5): the
    donor-level responses mapped as ``cytosafe aop map`` maps them, numbers beside each
    event, and the evidence table."""
    found = signed_in(request)
    from markupsafe import Markup

    store = request.app.state.store
    choices = services.hazard_analyses(store, found[0])
    chosen = (analysis or "").strip()
    error, svg, code, evidence, study = None, None, 200, None, None
    try:
        if chosen:
            try:
                number = int(chosen)
            except ValueError:
                raise InputError(
                    f"'{chosen}' is not an analysis number", field="analysis"
                ) from None
            if number not in {i for i, _ in choices}:
                raise InputError(
                    f"no completed hazard analysis {number} that you can see",
                    field="analysis",
                    expected="one of the list",
                )
            svg, table, study = services.aop_evidence(store, found[0], number, modality or None)
            evidence = [
                {
                    "event": r.event_title,
                    "type": r.event_type,
                    "source": r.source,
                    "readout": r.readout,
                    "positive": f"{r.n_positive}/{r.n_total} {r.unit}",
                    "note": r.note,
                }
                for r in table.itertuples(index=False)
            ]
        else:
            svg = services.aop_figure(modality or None)
    except InputError as exc:
        error, code, evidence, study = _message(exc), 422, None, None
        svg = services.aop_figure()
    return render(
        request,
        "aop.html",
        found,
        code,
        svg=Markup(svg),
        modality=modality or "",
        analyses=choices,
        chosen=chosen,
        evidence=evidence,
        study=study,
        error=error,
    )
