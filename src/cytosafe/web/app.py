"""The REST API of CytoSafe (FastAPI; OpenAPI at ``/docs`` and ``/openapi.json``).

Every endpoint under ``/api`` except ``POST /api/token`` needs a bearer token (401
without one) and checks the caller's role (403 when too low): ``viewer`` reads,
``analyst`` uploads and runs analyses, ``study_director`` signs off and reads the audit
trail, ``admin`` manages users. Roles are ordered: each includes the ones before it.
A study that belongs to a group is visible only to the group's members (and admins);
to anyone else it does not exist (404).

Uploads are read and validated before anything is stored and stored in one transaction:
a malformed file gives a 422 whose ``detail`` names the file, row/well and field
(:class:`~cytosafe.errors.InputError`) and leaves the store as it was.
"""

import asyncio
import datetime as dt
import functools
import io
import json
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    File,
    Form,
    HTTPException,
    Query,
    Request,
    UploadFile,
    status,
)
from fastapi.responses import JSONResponse, Response
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from pydantic import BaseModel, Field
from sqlalchemy import select

from cytosafe.errors import InputError
from cytosafe.store import (
    Analysis,
    AnalysisTable,
    AuthorizationError,
    Plate,
    Report,
    SignedOffError,
    Store,
    Study,
    User,
    add_report,
    add_to_group,
    audit_entries,
    complete_analysis,
    create_study,
    create_user,
    head,
    import_analysis,
    import_grades,
    import_measurements,
    import_observations,
    issue_token,
    load_measurements,
    revoke_token,
    sign_off,
    token_user,
    verify_audit,
    verify_password,
    verify_tables,
)
from cytosafe.store.models import ROLES
from cytosafe.store.tables import decode_table
from cytosafe.web.compute import ComputePool
from cytosafe.web.jobs import JobRunner

__all__ = ["Settings", "create_app"]

PARQUET = "application/vnd.apache.parquet"


@dataclass(frozen=True)
class Settings:
    """Settings of the API.

    Attributes
    ----------
    database:
        Database URL or SQLite file used when ``create_app`` is given no store.
    workers:
        Threads running background analyses.
    compute_workers:
        Processes grading uploaded observations (:class:`~cytosafe.web.compute.ComputePool`;
        0 grades in the request's own thread).
    token_cache_seconds:
        How long the server remembers whose a token is before asking the store again
        (0: on every request). A revocation made outside this server takes effect
        within this time.
    token_hours:
        Lifetime of an API token.
    max_upload_mb:
        Largest accepted upload, per file.
    """

    database: str | None = None
    workers: int = 2
    compute_workers: int = 1
    token_cache_seconds: float = 2.0
    token_hours: float = 12.0
    max_upload_mb: float = 200.0


# --- response and request bodies ---------------------------------------------------------


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")


class UserIn(BaseModel):
    username: str
    password: str = Field(min_length=8)
    role: Literal["viewer", "analyst", "study_director", "admin"] = "viewer"
    display_name: str | None = None
    groups: list[str] = []


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str | None
    role: str
    groups: list[str]


class StudyIn(BaseModel):
    code: str = Field(description="The study id (the tidy tables' study_id).")
    title: str | None = None
    kind: Literal["cra", "clinical"] = "cra"
    group: str | None = Field(None, description="Group that may see the study (yours).")


class StudyOut(BaseModel):
    code: str
    title: str | None
    kind: str
    group: str | None
    created_at: dt.datetime


class PlateOut(BaseModel):
    code: str
    source_file: str | None
    n_measurements: int | None = None
    measurements_sha256: str


class TableOut(BaseModel):
    name: str
    n_rows: int
    columns: list[dict[str, str]]
    sha256: str


class AnalysisOut(BaseModel):
    id: int
    study: str
    kind: str
    version: int
    status: str
    progress: float | None = Field(None, description="0-1: how far the job is.")
    message: str | None = None
    settings: dict
    cytosafe_version: str
    created_by: str | None
    created_at: dt.datetime
    signed_off_by: str | None
    signed_off_at: dt.datetime | None
    tables: list[TableOut]
    reports: list[str]


class QuantifyIn(BaseModel):
    plates: list[str] | None = Field(None, description="Plates to quantify (default: all).")
    model: Literal["4PL", "5PL"] = "5PL"
    weighting: str = "1/y2"


class SignOffIn(BaseModel):
    meaning: str = Field("approved", description="What the signature means (21 CFR 11.50).")


class AopQuery(BaseModel):
    modality: str = Field(description="Drug modality, e.g. cd3_bispecific.")
    evidence: dict[str, str | int | bool] = Field(
        {}, description="Key event -> state ('present' / 'absent', or 1 / 0)."
    )


# --- helpers -----------------------------------------------------------------------------


def _input_error_response(exc: InputError, status_code: int) -> JSONResponse:
    return JSONResponse(
        status_code=status_code,
        content={
            "detail": str(exc),
            "error": {
                "type": type(exc).__name__,
                "message": exc.message,
                "file": exc.file,
                "row": exc.row,
                "well": exc.well,
                "field": exc.field,
                "expected": exc.expected,
            },
        },
    )


def _not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


def _safe_name(name: str | None, default: str) -> str:
    base = Path(name or default).name
    return re.sub(r"[^A-Za-z0-9._+-]", "_", base) or default


class _Uploads:
    """Uploaded files written to a private temporary folder under their own names, so
    that the readers see files and their errors name the file the user sent."""

    def __init__(self, limit_bytes: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cytosafe-upload-"))
        self.limit = limit_bytes

    def save(self, upload: UploadFile, default: str = "upload") -> Path:
        name = _safe_name(upload.filename, default)
        path = self.dir / name
        n = 1
        while path.exists():
            n += 1
            path = self.dir / f"{n}-{name}"
        size = 0
        with path.open("wb") as out:
            while chunk := upload.file.read(1 << 20):
                size += len(chunk)
                if size > self.limit:
                    raise HTTPException(
                        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                        f"{name}: larger than {self.limit // (1 << 20)} MB",
                    )
                out.write(chunk)
        if size == 0:
            raise InputError("the uploaded file is empty", file=name)
        return path

    def strip(self, text: Any) -> Any:
        """``text`` with the temporary folder removed from file paths."""
        return _strip_folder(text, self.dir)

    def strip_column(self, frame: pd.DataFrame, column: str = "source_file") -> pd.DataFrame:
        return _strip_folder_column(frame, self.dir, column)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _strip_folder(text: Any, folder: Path | str) -> Any:
    if not isinstance(text, str):
        return text
    return text.replace(f"{folder}/", "").replace(str(folder), "")


def _strip_folder_column(
    frame: pd.DataFrame, folder: Path | str, column: str = "source_file"
) -> pd.DataFrame:
    """``frame`` with ``folder`` removed from the file paths in ``column``."""
    if column in frame.columns:
        frame = frame.copy()
        frame[column] = frame[column].map(lambda text: _strip_folder(text, folder))
    return frame


def _grades_out(result: Any) -> dict:
    """The scales, per-patient and cohort tables of a grading, as the API returns them."""
    return {
        "scales": result.scales,
        "patients": _records(result.patients),
        "cohort": _records(result.cohort),
    }


def _grade_upload(path: str, scales: list[str]) -> dict:
    """Grade one uploaded observation table (run in a compute worker)."""
    from cytosafe.clinical import grade, read_observations

    return _grades_out(grade(read_observations(path), scales))


def _read_and_grade(
    kind: str,
    parts: dict[str, str],
    folder: str,
    product: str | None,
    scales: list[str],
    title: str,
) -> tuple[Any, Any, str]:
    """Read uploaded observations (a table, SDTM domains or a FHIR bundle), grade them and
    render the report (run in a compute worker); file names lose the upload folder."""
    from cytosafe.clinical import grade, read_observations
    from cytosafe.report.clinical import render_clinical_report

    if kind == "table":
        obs = read_observations(parts["file"])
    elif kind == "sdtm":
        from cytosafe.io.sdtm import read_sdtm

        obs = read_sdtm(**parts, product=product).observations
    else:
        from cytosafe.io.fhir import read_fhir

        obs = read_fhir(parts["bundle"], product=product).observations
    obs.table = _strip_folder_column(obs.table, folder)
    result = grade(obs, scales)
    return obs, result, render_clinical_report(result, title=title)


@contextmanager
def _uploads(request: Request) -> Iterator[_Uploads]:
    settings: Settings = request.app.state.settings
    up = _Uploads(int(settings.max_upload_mb * (1 << 20)))
    try:
        yield up
    except InputError as exc:
        raise type(exc)(
            up.strip(exc.message),
            file=up.strip(exc.file),
            row=exc.row,
            well=exc.well,
            field=exc.field,
            expected=exc.expected,
        ) from None
    finally:
        up.close()


_SECTION = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$", re.MULTILINE)
_LOCAL_FILES = re.compile(
    r"^(\s*)(inputs|sample_map)\s*=\s*(\[.*?\]|\"[^\"\n]*\"|'[^'\n]*')", re.MULTILINE | re.DOTALL
)


def _without_local_files(text: str) -> str:
    """The study file with ``[analysis] inputs`` and ``sample_map`` emptied, lines kept.

    They name files on the scientist's disk; the API analyses the plates stored in the
    study instead (uploaded with their sample map), so they are not looked for.
    """
    out, last = [], 0
    for match in _SECTION.finditer(text + "\n[end]"):
        start = match.start()
        chunk = text[last:start]
        if out and out[-1][0] == "analysis":
            chunk = _LOCAL_FILES.sub(
                lambda m: (
                    m.group(1)
                    + m.group(2)
                    + (' = ""' if m.group(2) == "sample_map" else " = []")
                    + "\n" * m.group(3).count("\n")
                ),
                chunk,
            )
        out.append((match.group(1).strip(), chunk))
        last = start
    return "".join(chunk for _, chunk in out) + text[last:]


def _on_loop(fn):
    """Serve a short read endpoint on the event loop instead of the thread pool.

    Its work is a few indexed queries (well under a millisecond on SQLite or a nearby
    PostgreSQL) and no heavy computation. On the pool, each of those queries gave up
    the GIL and then queued for it behind the other threads (a convoy): under 50 clients
    a 2 ms read took hundreds. The plain function stays at ``__wrapped__`` for the web
    pages, which call it from their own threads.
    """

    @functools.wraps(fn)
    async def endpoint(*args, **kwargs):
        return fn(*args, **kwargs)

    return endpoint


def _plain(fn):
    return getattr(fn, "__wrapped__", fn)


def _visible(user: User, study: Study) -> bool:
    if user.role == "admin" or study.group_id is None:
        return True
    return any(g.id == study.group_id for g in user.groups)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso", default_handler=str))


class _EncodedTables:
    """Result tables already encoded as CSV or JSON, least recently used first out.

    A stored table never changes: its bytes are named by their SHA-256, so an encoding
    made once serves every later read of the same bytes (in any analysis), and a read
    costs a lookup instead of decoding Parquet and encoding again.
    """

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, sha256: str, fmt: str) -> bytes | None:
        with self._lock:
            value = self._items.get((sha256, fmt))
            if value is not None:
                self._items.move_to_end((sha256, fmt))
            return value

    def put(self, sha256: str, fmt: str, value: bytes) -> None:
        if len(value) > self.max_bytes // 4:
            return  # a very large table is encoded on each read rather than crowd out the rest
        with self._lock:
            if (sha256, fmt) in self._items:
                return
            self._items[(sha256, fmt)] = value
            self._size += len(value)
            while self._size > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)


def _encode_table(content: bytes, fmt: str) -> bytes:
    frame = decode_table(content)
    if fmt == "json":
        text = frame.to_json(orient="records", date_format="iso", default_handler=str)
    else:
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, lineterminator="\n")
        text = buffer.getvalue()
    return text.encode("utf-8")


# --- the app -----------------------------------------------------------------------------


def create_app(store: Store | None = None, *, settings: Settings | None = None) -> FastAPI:
    """The CytoSafe REST API on ``store`` (default: ``Store(settings.database)``).

    Examples
    --------
    >>> from cytosafe.web import create_app
    >>> app = create_app(Store("sqlite:///lab.sqlite3"))  # doctest: +SKIP
    >>> # uvicorn.run(app) -- or: cytosafe serve
    """
    from cytosafe import __version__

    settings = settings or Settings()
    store = store if store is not None else Store(settings.database)
    jobs = JobRunner(store, settings.workers)
    compute = ComputePool(settings.compute_workers)
    encoded = _EncodedTables()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await asyncio.to_thread(jobs.start)
        await asyncio.to_thread(compute.warm_up)
        yield
        jobs.shutdown()
        compute.shutdown()

    app = FastAPI(
        title="CytoSafe API",
        version=__version__,
        description=(
            "Cytokine release assay studies and clinical CRS cohorts: upload exports, run "
            "quantification and hazard analyses, fetch result tables and reports, sign off, "
            "audit; grade CRS; query the assay recommender and the CRS AOP. Sign in with "
            "`POST /api/token` and send `Authorization: Bearer <token>`."
        ),
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.settings = settings
    app.state.jobs = jobs
    app.state.compute = compute

    @app.exception_handler(SignedOffError)
    async def _signed_off(request: Request, exc: SignedOffError) -> JSONResponse:
        return _input_error_response(exc, status.HTTP_409_CONFLICT)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        return _input_error_response(exc, 422)

    @app.exception_handler(AuthorizationError)
    async def _forbidden(request: Request, exc: AuthorizationError) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_403_FORBIDDEN, content={"detail": str(exc)})

    # --- authentication and roles ---------------------------------------------------------

    bearer = OAuth2PasswordBearer(tokenUrl="/api/token", auto_error=False)

    # Who a token belongs to, remembered for a moment: the lookup was a third of the
    # cost of a read. A sign-out through this server forgets the token at once; a
    # revocation or role change made elsewhere (another server process, the CLI) takes
    # effect within ``settings.token_cache_seconds``.
    known: dict[str, tuple[float, User]] = {}

    def current_user(token: Annotated[str | None, Depends(bearer)]) -> User:
        user = None
        if token:
            now = time.monotonic()
            hit = known.get(token)
            if hit is not None and hit[0] > now:
                user = hit[1]
            else:
                user = token_user(store, token)
                if user is not None and settings.token_cache_seconds > 0:
                    if len(known) > 10_000:
                        known.clear()
                    known[token] = (now + settings.token_cache_seconds, user)
        if user is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "not signed in: send 'Authorization: Bearer <token>' (POST /api/token)"
                if not token
                else "the token is unknown, expired or revoked: sign in again",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return user

    def role(minimum: str):
        rank = ROLES.index(minimum)

        # The token lookup (one indexed query) and the role check, on the event loop:
        # see _on_loop.
        async def check(token: Annotated[str | None, Depends(bearer)]) -> User:
            user = current_user(token)
            if ROLES.index(user.role) < rank:
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN,
                    f"user '{user.username}' ({user.role}) may not do this; "
                    f"needs role {minimum} or higher",
                )
            return user

        return check

    Viewer = Annotated[User, Depends(role("viewer"))]
    Analyst = Annotated[User, Depends(role("analyst"))]
    Director = Annotated[User, Depends(role("study_director"))]
    Admin = Annotated[User, Depends(role("admin"))]

    def get_study(session, user: User, code: str) -> Study:
        study = session.scalar(select(Study).where(Study.code == code))
        if study is None or not _visible(user, study):
            raise _not_found(f"study '{code}'")
        return study

    def get_analysis(session, user: User, analysis_id: int) -> tuple[Analysis, Study]:
        analysis = session.get(Analysis, analysis_id)
        if analysis is None:
            raise _not_found(f"analysis {analysis_id}")
        study = session.get(Study, analysis.study_id)
        if not _visible(user, study):
            raise _not_found(f"analysis {analysis_id}")
        return analysis, study

    def study_out(session, study: Study) -> StudyOut:
        group = study.group.name if study.group_id is not None else None
        return StudyOut(
            code=study.code,
            title=study.title,
            kind=study.kind,
            group=group,
            created_at=study.created_at,
        )

    def analysis_out(session, analysis: Analysis, study: Study) -> AnalysisOut:
        def name(user_id):
            return None if user_id is None else session.get(User, user_id).username

        tables = session.scalars(
            select(AnalysisTable).where(AnalysisTable.analysis_id == analysis.id)
        ).all()
        reports = session.scalars(select(Report.name).where(Report.analysis_id == analysis.id))
        message = analysis.progress_message
        if analysis.status == "failed" and message in (None, "failed"):
            last = audit_entries(store, object_type="analysis", object_id=analysis.id)
            failed = [e for e in last if e["details"].get("new") == "failed"]
            message = failed[-1]["details"].get("message") if failed else message
        fraction = analysis.progress
        if analysis.status in ("completed", "signed_off", "failed"):
            fraction = 1.0
        return AnalysisOut(
            id=analysis.id,
            study=study.code,
            kind=analysis.kind,
            version=analysis.version,
            status=analysis.status,
            progress=fraction,
            message=message,
            settings=analysis.settings,
            cytosafe_version=analysis.cytosafe_version,
            created_by=name(analysis.created_by_id),
            created_at=analysis.created_at,
            signed_off_by=name(analysis.signed_off_by_id),
            signed_off_at=analysis.signed_off_at,
            tables=[
                TableOut(name=t.name, n_rows=t.n_rows, columns=t.columns, sha256=t.sha256)
                for t in tables
            ],
            reports=list(reports),
        )

    api = APIRouter(prefix="/api")

    @api.post("/token", response_model=TokenOut, tags=["authentication"])
    def sign_in(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenOut:
        """Sign in with user name and password; returns a bearer token."""
        with store.reader() as session:
            user = session.scalar(select(User).where(User.username == form.username))
        if user is None or not verify_password(user, form.password):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "wrong user name or password",
                headers={"WWW-Authenticate": "Bearer"},
            )
        lifetime = dt.timedelta(hours=settings.token_hours)
        token = issue_token(store, user.username, lifetime=lifetime, name="password sign-in")
        return TokenOut(access_token=token, expires_in=int(lifetime.total_seconds()))

    @api.delete("/token", status_code=204, tags=["authentication"])
    def sign_out(user: Viewer, token: Annotated[str | None, Depends(bearer)]) -> Response:
        """Revoke the token of this request (sign out)."""
        known.pop(token, None)
        revoke_token(store, token)
        return Response(status_code=204)

    # --- users ------------------------------------------------------------------------------

    def user_out(user: User) -> UserOut:
        return UserOut(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            role=user.role,
            groups=sorted(g.name for g in user.groups),
        )

    @api.get("/users/me", response_model=UserOut, tags=["users"])
    @_on_loop
    def me(user: Viewer) -> UserOut:
        """The signed-in user."""
        return user_out(user)

    @api.get("/users", response_model=list[UserOut], tags=["users"])
    def list_users(user: Admin) -> list[UserOut]:
        """Every user (admin)."""
        with store.reader() as session:
            return [user_out(u) for u in session.scalars(select(User).order_by(User.username))]

    @api.post("/users", response_model=UserOut, status_code=201, tags=["users"])
    def new_user(body: UserIn, user: Admin) -> UserOut:
        """Create a user with a password, a role and groups (admin); one transaction."""
        with store.session() as session:
            created = create_user(
                session,
                body.username,
                role=body.role,
                password=body.password,
                display_name=body.display_name,
                by=user.username,
            )
            for group in body.groups:
                add_to_group(session, created.username, group, by=user.username)
        with store.reader() as session:
            return user_out(session.get(User, created.id))

    # --- studies ----------------------------------------------------------------------------

    @api.get("/studies", response_model=list[StudyOut], tags=["studies"])
    @_on_loop
    def list_studies(user: Viewer) -> list[StudyOut]:
        """The studies you can see."""
        with store.reader() as session:
            studies = session.scalars(select(Study).order_by(Study.code)).all()
            return [study_out(session, s) for s in studies if _visible(user, s)]

    @api.post("/studies", response_model=StudyOut, status_code=201, tags=["studies"])
    def new_study(body: StudyIn, user: Analyst) -> StudyOut:
        """Create a study (analyst); ``group`` must be one of yours (any, for an admin)."""
        if (
            body.group is not None
            and user.role != "admin"
            and body.group not in {g.name for g in user.groups}
        ):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"you are not a member of group '{body.group}'"
            )
        study = create_study(
            store, body.code, user=user.username, title=body.title, kind=body.kind, group=body.group
        )
        with store.reader() as session:
            return study_out(session, session.get(Study, study.id))

    @api.get("/studies/{code}", response_model=StudyOut, tags=["studies"])
    @_on_loop
    def read_study(code: str, user: Viewer) -> StudyOut:
        with store.reader() as session:
            return study_out(session, get_study(session, user, code))

    @api.get("/studies/{code}/plates", response_model=list[PlateOut], tags=["studies"])
    @_on_loop
    def list_plates(code: str, user: Viewer) -> list[PlateOut]:
        """The study's plates with the number of stored measurements."""
        from sqlalchemy import func

        from cytosafe.store import Measurement

        with store.reader() as session:
            study = get_study(session, user, code)
            rows = session.execute(
                select(Plate, func.count(Measurement.id))
                .outerjoin(Measurement, Measurement.plate_id == Plate.id)
                .where(Plate.study_id == study.id)
                .group_by(Plate.id)
                .order_by(Plate.code)
            ).all()
            return [
                PlateOut(
                    code=p.code,
                    source_file=p.source_file,
                    n_measurements=n,
                    measurements_sha256=p.measurements_sha256,
                )
                for p, n in rows
            ]

    @api.post(
        "/studies/{code}/plates", response_model=list[PlateOut], status_code=201, tags=["studies"]
    )
    def upload_exports(
        code: str,
        request: Request,
        user: Analyst,
        files: Annotated[list[UploadFile], File(description="Instrument exports or tidy tables.")],
        sample_map: Annotated[
            UploadFile | None, File(description="Culture metadata keyed by sample_id or well.")
        ] = None,
    ) -> list[PlateOut]:
        """Upload raw exports (MSD, xPONENT, Bio-Plex, tidy CSV/XLSX) and an optional sample
        map; every file is read and validated, then all plates are stored in one
        transaction. A plate already stored with the same measurements is kept as it is."""
        from cytosafe.quantification import load_measurements as read_exports

        with store.reader() as session:
            study = get_study(session, user, code)
        with _uploads(request) as up:
            paths = [up.save(f, f"export-{i}.csv") for i, f in enumerate(files, 1)]
            map_path = None if sample_map is None else up.save(sample_map, "samples.csv")
            table, _ = read_exports(paths, sample_map=map_path, study_id=study.code)
            table = up.strip_column(table)
        plates = import_measurements(store, table, study=study.code, user=user.username)
        counts = table.groupby("plate_id").size()
        return [
            PlateOut(
                code=p.code,
                source_file=p.source_file,
                n_measurements=int(counts.get(p.code, 0)),
                measurements_sha256=p.measurements_sha256,
            )
            for p in plates
        ]

    # --- analyses ---------------------------------------------------------------------------

    @api.get("/studies/{code}/analyses", response_model=list[AnalysisOut], tags=["analyses"])
    @_on_loop
    def list_analyses(code: str, user: Viewer) -> list[AnalysisOut]:
        with store.reader() as session:
            study = get_study(session, user, code)
            rows = session.scalars(
                select(Analysis).where(Analysis.study_id == study.id).order_by(Analysis.id)
            ).all()
            return [analysis_out(session, a, study) for a in rows]

    def queue(study: Study, user: User, kind: str, settings_: dict, inputs=None) -> Analysis:
        return import_analysis(
            store,
            kind,
            {},
            study=study.code,
            user=user.username,
            settings=settings_,
            inputs=inputs,
            status="queued",
        )

    def accepted(analysis_id: int, user: User) -> AnalysisOut:
        with store.reader() as session:
            analysis, study = get_analysis(session, user, analysis_id)
            return analysis_out(session, analysis, study)

    @api.post(
        "/studies/{code}/analyses/quantification",
        response_model=AnalysisOut,
        status_code=202,
        tags=["analyses"],
    )
    def run_quantification(code: str, user: Analyst, body: QuantifyIn | None = None) -> AnalysisOut:
        """Quantify the study's stored plates in the background: fit the standard curves,
        back-calculate every well, fit potency, render the QC report. Poll
        ``GET /api/analyses/{id}`` for the status and progress."""
        from cytosafe import __version__
        from cytosafe.curves.calibration import CalibrationSettings

        body = body or QuantifyIn()
        calibration = CalibrationSettings(model=body.model, weighting=body.weighting)
        with store.reader() as session:
            study = get_study(session, user, code)
        # Read now: a study without (those) plates is the caller's error, not the job's.
        measurements = load_measurements(store, study.code, plates=body.plates)
        run_settings = {
            "cytosafe_version": __version__,
            "command": "quantify",
            "plates": sorted(measurements["plate_id"].unique().tolist()),
            "calibration": calibration.to_dict(),
        }
        analysis = queue(study, user, "quantification", run_settings)

        def work(step) -> None:
            from cytosafe.quantification import quantify
            from cytosafe.report.qc import render_qc_report

            step(0.1, "fitting standard curves")
            result = quantify(measurements, settings=calibration)
            step(0.6, "rendering the QC report")
            html = render_qc_report(result, title=f"{study.code}: quantification")
            step(0.9, "storing the tables")
            complete_analysis(
                store,
                analysis.id,
                result.tables(),
                user=user.username,
                measurements=result.measurements,
                report=html,
            )

        jobs.submit(analysis.id, user.username, work)
        return accepted(analysis.id, user)

    @api.post(
        "/studies/{code}/analyses/hazard",
        response_model=AnalysisOut,
        status_code=202,
        tags=["analyses"],
    )
    def run_hazard(
        code: str,
        request: Request,
        user: Analyst,
        study_file: Annotated[UploadFile, File(description="The study file (TOML).")],
    ) -> AnalysisOut:
        """Run the whole analysis of a study file on the study's stored plates in the
        background: quantification, donor responses, statistics, hazard classes and the
        study report. The study file is validated now (422 naming line and key) and kept,
        with its SHA-256, in the analysis settings."""
        import hashlib

        from cytosafe import __version__
        from cytosafe.hazard import load_study

        with store.reader() as session:
            study = get_study(session, user, code)
        with _uploads(request) as up:
            path = up.save(study_file, "study.toml")
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(
                    "not UTF-8 text", file=path.name, expected="a TOML study file"
                ) from None
            path.write_text(_without_local_files(text), encoding="utf-8")
            design = load_study(path)
            name = path.name
        if design.study_id and design.study_id != study.code:
            raise InputError(
                f"the study file is for study '{design.study_id}', not '{study.code}'",
                file=name,
                field="study.id",
                expected=f'id = "{study.code}"',
            )
        measurements = load_measurements(store, study.code)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        analysis = queue(
            study,
            user,
            "hazard",
            {
                "cytosafe_version": __version__,
                "command": "analyze",
                "study_file": {"name": name, "sha256": digest, "text": text},
                "hazard": design.settings.to_dict(),
            },
            inputs=[{"name": name, "bytes": len(text.encode("utf-8")), "sha256": digest}],
        )

        def work(step) -> None:
            from cytosafe.hazard import analyze
            from cytosafe.report.hazard import render_hazard_report

            step(0.1, "quantifying and calling the hazard")
            result = analyze(design, inputs=measurements)
            step(0.6, "rendering the study report")
            html = render_hazard_report(result)
            step(0.9, "storing the tables")
            q = result.quantification
            tables = {n.removesuffix(".csv"): t for n, t in result.hazard.tables().items()}
            tables.update(
                {
                    "concentrations": q.calibration.wells,
                    "samples": q.calibration.samples,
                    "curves": q.calibration.curves,
                    "qc": q.calibration.qc,
                    "potency": q.potency,
                }
            )
            complete_analysis(
                store,
                analysis.id,
                tables,
                user=user.username,
                measurements=q.measurements,
                report=html,
            )

        jobs.submit(analysis.id, user.username, work)
        return accepted(analysis.id, user)

    @api.get("/analyses/{analysis_id}", response_model=AnalysisOut, tags=["analyses"])
    @_on_loop
    def read_analysis(analysis_id: int, user: Viewer) -> AnalysisOut:
        """An analysis: status, progress (poll this while it runs), settings, tables."""
        with store.reader() as session:
            analysis, study = get_analysis(session, user, analysis_id)
            return analysis_out(session, analysis, study)

    @api.get(
        "/analyses/{analysis_id}/tables/{name}",
        tags=["analyses"],
        responses={
            200: {
                "content": {"text/csv": {}, "application/json": {}, PARQUET: {}},
                "description": "The table as CSV, JSON (records) or Parquet.",
            }
        },
    )
    @_on_loop
    def read_table(
        analysis_id: int,
        name: str,
        user: Viewer,
        format: Annotated[Literal["csv", "json", "parquet"], Query()] = "csv",
    ) -> Response:
        """One result table of an analysis; Parquet is sent as stored (its SHA-256 is the
        one recorded in the audit trail)."""
        with store.reader() as session:
            analysis, _ = get_analysis(session, user, analysis_id)
            row = session.scalar(
                select(AnalysisTable).where(
                    AnalysisTable.analysis_id == analysis.id, AnalysisTable.name == name
                )
            )
            if row is None:
                raise _not_found(f"table '{name}' of analysis {analysis_id}")
            body = encoded.get(row.sha256, format)
            if body is None:
                content = row.content  # the bytes are loaded only when not yet encoded
                body = content if format == "parquet" else _encode_table(content, format)
                if format != "parquet":
                    encoded.put(row.sha256, format, body)
        filename = f"analysis-{analysis_id}-{name}.{format}"
        disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
        if format == "parquet":
            return Response(body, media_type=PARQUET, headers=disposition)
        if format == "json":
            return Response(body, media_type="application/json")
        return Response(body, media_type="text/csv", headers=disposition)

    @api.get(
        "/analyses/{analysis_id}/report",
        tags=["analyses"],
        responses={200: {"content": {"text/html": {}}, "description": "The HTML report."}},
    )
    @_on_loop
    def read_report(analysis_id: int, user: Viewer) -> Response:
        """The report of an analysis (self-contained HTML)."""
        with store.reader() as session:
            analysis, _ = get_analysis(session, user, analysis_id)
            report = session.scalars(
                select(Report).where(Report.analysis_id == analysis.id).order_by(Report.id.desc())
            ).first()
            if report is None:
                raise _not_found(f"report of analysis {analysis_id}")
            return Response(report.content, media_type=report.media_type)

    @api.post("/analyses/{analysis_id}/sign-off", response_model=AnalysisOut, tags=["analyses"])
    def sign_analysis(
        analysis_id: int, user: Director, body: SignOffIn | None = None
    ) -> AnalysisOut:
        """Sign off a completed analysis (study director): from now on it is final."""
        with store.reader() as session:
            get_analysis(session, user, analysis_id)
        sign_off(store, analysis_id, user=user.username, meaning=(body or SignOffIn()).meaning)
        return accepted(analysis_id, user)

    # --- audit ------------------------------------------------------------------------------

    @api.get("/audit", tags=["audit"])
    def list_audit(
        user: Director,
        object_type: str | None = None,
        object_id: str | None = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict:
        """Audit entries, oldest first (study director)."""
        entries = audit_entries(store, object_type=object_type, object_id=object_id)
        return {"total": len(entries), "entries": entries[offset : offset + limit]}

    @api.get("/audit/verify", tags=["audit"])
    def verify(user: Director) -> dict:
        """Check the audit trail's hash chain and the stored tables' hashes (study
        director). ``intact`` is false when either is broken."""
        broken = verify_audit(store)
        changed = verify_tables(store)
        count, last = head(store)
        return {
            "intact": broken is None and not changed,
            "entries": count,
            "head": last,
            "broken": None if broken is None else {"seq": broken.seq, "reason": broken.reason},
            "changed": changed,
        }

    # --- clinical ---------------------------------------------------------------------------

    def grade_and_store(
        study: Study, user: User, up: _Uploads, kind: str, parts: dict, product, scales: str
    ) -> dict:
        from cytosafe import __version__

        source = ", ".join(Path(p).name for p in parts.values())
        obs, result, html = compute.call(
            _read_and_grade,
            kind,
            {k: str(v) for k, v in parts.items()},
            str(up.dir),
            product or None,
            _scales(scales),
            f"{study.code}: CRS grading",
        )
        columns = ["patient_id", "time", "item", "value", "unit", "source_file", "source_row"]
        with store.session() as session:
            n = import_observations(
                session, obs.table[columns], study=study.code, user=user.username, source=source
            )
            analysis = import_grades(
                session,
                result.timeline,
                study=study.code,
                user=user.username,
                settings={
                    "cytosafe_version": __version__,
                    "command": "grade",
                    "scales": list(result.scales),
                    "source": source,
                },
                tables={"patients": result.patients, "cohort": result.cohort},
            )
            add_report(session, analysis, html, user=user.username)
        return {"analysis": analysis.id, "observations": n, **_grades_out(result)}

    def clinical_study(user: User, code: str) -> Study:
        with store.reader() as session:
            study = get_study(session, user, code)
        if study.kind != "clinical":
            raise InputError(
                f"study '{code}' is a {study.kind} study",
                field="study",
                expected="a clinical study (kind 'clinical')",
            )
        return study

    Scales = Annotated[
        str, Form(description="Comma-separated scales (astct2019, lee2014, ctcae5, ...).")
    ]

    def _scales(text: str) -> list[str]:
        return [s.strip() for s in text.split(",") if s.strip()] or ["astct2019"]

    @api.post("/studies/{code}/observations", status_code=201, tags=["clinical"])
    def upload_observations(
        code: str,
        request: Request,
        user: Analyst,
        file: Annotated[UploadFile, File(description="Observation table (CSV or XLSX).")],
        scales: Scales = "astct2019",
    ) -> dict:
        """Upload an observation table (patient_id, time, item, value, unit), store it
        and its grades (a grading analysis) in one transaction; returns the per-patient
        and cohort tables."""
        study = clinical_study(user, code)
        with _uploads(request) as up:
            path = up.save(file, "observations.csv")
            return grade_and_store(study, user, up, "table", {"file": path}, None, scales)

    @api.post("/studies/{code}/observations/sdtm", status_code=201, tags=["clinical"])
    def upload_sdtm(
        code: str,
        request: Request,
        user: Analyst,
        dm: Annotated[UploadFile, File(description="Demographics (.xpt).")],
        vs: Annotated[UploadFile, File(description="Vital signs (.xpt).")],
        ex: Annotated[UploadFile | None, File()] = None,
        cm: Annotated[UploadFile | None, File()] = None,
        pr: Annotated[UploadFile | None, File()] = None,
        ae: Annotated[UploadFile | None, File()] = None,
        product: Annotated[str | None, Form()] = None,
        scales: Scales = "astct2019",
    ) -> dict:
        """Upload CDISC SDTM domains (SAS transport files), store the observations and
        their grades."""
        study = clinical_study(user, code)
        with _uploads(request) as up:
            parts = {
                k: up.save(f, f"{k}.xpt")
                for k, f in {"dm": dm, "vs": vs, "ex": ex, "cm": cm, "pr": pr, "ae": ae}.items()
                if f is not None
            }
            return grade_and_store(study, user, up, "sdtm", parts, product, scales)

    @api.post("/studies/{code}/observations/fhir", status_code=201, tags=["clinical"])
    def upload_fhir(
        code: str,
        request: Request,
        user: Analyst,
        bundle: Annotated[UploadFile, File(description="FHIR R4 Bundle (JSON).")],
        product: Annotated[str | None, Form()] = None,
        scales: Scales = "astct2019",
    ) -> dict:
        """Upload a FHIR R4 Bundle of Observations and MedicationAdministrations, store
        the observations and their grades."""
        study = clinical_study(user, code)
        with _uploads(request) as up:
            path = up.save(bundle, "bundle.json")
            return grade_and_store(study, user, up, "fhir", {"bundle": path}, product, scales)

    @api.post("/grade", tags=["clinical"])
    async def grade_batch(
        request: Request,
        user: Viewer,
        file: Annotated[UploadFile, File(description="Observation table (CSV or XLSX).")],
        scales: Scales = "astct2019",
    ) -> dict:
        """Grade an observation table without storing anything: per-patient and cohort
        tables of each scale."""
        with _uploads(request) as up:
            path = await asyncio.to_thread(up.save, file, "observations.csv")
            return await compute.run(_grade_upload, str(path), _scales(scales))

    # --- knowledge: assay recommender and the CRS AOP -------------------------------------

    @api.get("/assays/recommend", tags=["knowledge"])
    def recommend_assays(
        user: Viewer,
        modality: str,
        target: str | None = None,
        fc: str | None = None,
        intended_use: str = "hazard_identification",
    ) -> dict:
        """Rank CRA formats for a molecule and name what they cannot see."""
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
            "ranking": _records(rec.ranking),
            "citations": rec.citations,
            "knowledge_base_version": rec.kb_version,
        }

    @api.post("/aop/probability", tags=["knowledge"])
    def aop_probability(body: AopQuery, user: Viewer) -> dict:
        """P(CRS), P(severe CRS) and P(no CRS) for a modality, given key-event evidence
        (the quantitative CRS AOP, a Bayesian network)."""
        from cytosafe.aop.bayes import CrsBayesNetwork

        try:
            network = CrsBayesNetwork.for_modality(body.modality)
        except KeyError:
            raise InputError(f"unknown modality '{body.modality}'", field="modality") from None
        return {
            "modality": body.modality,
            "evidence": body.evidence,
            **network.probability(body.evidence),
        }

    @api.get(
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
        svg = aop_svg(aop, highlight=marks, modality=modality)
        return Response(svg, media_type="image/svg+xml")

    app.include_router(api)
    # The web pages call these same functions (no HTTP to itself), after their own
    # session-cookie sign-in and role checks.
    app.state.api = SimpleNamespace(
        get_study=_plain(get_study),
        get_analysis=_plain(get_analysis),
        analysis_out=_plain(analysis_out),
        new_study=_plain(new_study),
        list_studies=_plain(list_studies),
        list_plates=_plain(list_plates),
        upload_exports=_plain(upload_exports),
        list_analyses=_plain(list_analyses),
        run_quantification=_plain(run_quantification),
        run_hazard=_plain(run_hazard),
        read_analysis=_plain(read_analysis),
        read_table=_plain(read_table),
        read_report=_plain(read_report),
        sign_analysis=_plain(sign_analysis),
        upload_observations=_plain(upload_observations),
        recommend_assays=_plain(recommend_assays),
        aop_figure=_plain(aop_figure),
    )
    from cytosafe.web.pages import add_pages

    add_pages(app)
    return app
