"""The CytoSafe web app: the REST API (FastAPI; OpenAPI at ``/docs`` and
``/openapi.json``, Swagger UI and ReDoc served from this server by
:mod:`cytosafe.web.offline_docs`) and the web pages, built on one store.

:func:`create_app` only assembles the app: the server's state on ``app.state`` (the
store, the settings, the job runner, the compute pool, the token and table caches), the
answers to bad input, the API routers (:mod:`cytosafe.web.routers`), the pages
(:mod:`cytosafe.web.pages`) and the start and stop of the workers. What the endpoints do
is in :mod:`cytosafe.web.services`; who may do it, in :mod:`cytosafe.web.deps`.

Every response carries the security headers of :mod:`cytosafe.web.security` (reports
their own content security policy); request bodies are bounded while they arrive
(:mod:`cytosafe.web.upload_limits`) and sign-in is throttled per account and per address
(:mod:`cytosafe.web.throttle`).

Uploads are read and validated before anything is stored and stored in one transaction:
a malformed file gives a 422 whose ``detail`` names the file, row/well and field
(:class:`~cytosafe.errors.InputError`) and leaves the store as it was; a change to a
signed-off analysis is a 409, as is a study id or user name that exists
(:class:`~cytosafe.errors.ConflictError`, also when two clients create it at once), a role
that may not act a 403.
"""

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from cytosafe.errors import ConflictError, InputError
from cytosafe.store import AuthorizationError, SignedOffError, Store
from cytosafe.web import pages
from cytosafe.web.compute import ComputePool
from cytosafe.web.deps import TokenCache
from cytosafe.web.jobs import JobRunner
from cytosafe.web.offline_docs import add_offline_docs
from cytosafe.web.pages_accounts import add_account_pages
from cytosafe.web.pages_reference import router as reference_pages
from cytosafe.web.pages_study import router as study_pages
from cytosafe.web.pages_tools import add_tools
from cytosafe.web.pages_ward import router as ward_pages
from cytosafe.web.routers import ROUTERS
from cytosafe.web.security import SecurityHeaders
from cytosafe.web.settings import Settings
from cytosafe.web.tables import EncodedTables
from cytosafe.web.throttle import SignInThrottle
from cytosafe.web.upload_limits import BodyLimit

__all__ = ["create_app"]

DESCRIPTION = (
    "Cytokine release assay studies and clinical CRS cohorts: upload exports, run "
    "quantification and hazard analyses, fetch result tables and reports, sign off, "
    "audit; grade CRS; query the assay recommender and the CRS AOP. Sign in with "
    "`POST /api/token` and send `Authorization: Bearer <token>`."
)


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


async def _signed_off(request: Request, exc: SignedOffError) -> JSONResponse:
    return _input_error_response(exc, status.HTTP_409_CONFLICT)


async def _conflict(request: Request, exc: ConflictError) -> JSONResponse:
    return _input_error_response(exc, status.HTTP_409_CONFLICT)


async def _input_error(request: Request, exc: InputError) -> JSONResponse:
    return _input_error_response(exc, 422)


async def _forbidden(request: Request, exc: AuthorizationError) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_403_FORBIDDEN, content={"detail": str(exc)})


@asynccontextmanager
async def _lifespan(app: FastAPI):
    state = app.state
    await asyncio.to_thread(state.jobs.start)
    await asyncio.to_thread(state.compute.warm_up)
    yield
    state.jobs.shutdown()
    state.compute.shutdown()


def create_app(store: Store | None = None, *, settings: Settings | None = None) -> FastAPI:
    """The CytoSafe web app and REST API on ``store`` (default: ``Store(settings.database)``).

    Examples
    --------
    >>> from cytosafe.web import create_app
    >>> app = create_app(Store("sqlite:///lab.sqlite3"))  # doctest: +SKIP
    >>> # uvicorn.run(app) -- or: cytosafe serve
    """
    from cytosafe import __version__

    settings = settings or Settings()
    store = store if store is not None else Store(settings.database)
    # /docs and /redoc are this server's own (offline_docs): FastAPI's load from CDNs.
    app = FastAPI(
        title="CytoSafe API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.store = store
    app.state.settings = settings
    app.state.jobs = JobRunner(store, settings.workers)
    app.state.compute = ComputePool(settings.compute_workers)
    app.state.tokens = TokenCache(settings.token_cache_seconds)
    app.state.tables = EncodedTables()

    app.add_exception_handler(SignedOffError, _signed_off)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(AuthorizationError, _forbidden)
    for router in ROUTERS:
        app.include_router(router)
    pages.add_pages(app)
    add_offline_docs(app)  # /docs, /redoc and /favicon.svg without a CDN (offline_docs)
    app.include_router(study_pages)  # sample maps, plates, design (pages_study)
    add_tools(app)  # /mabel, /simulate and the downloads (pages_tools, downloads)
    app.include_router(reference_pages)  # /reference, the reference library (pages_reference)
    add_account_pages(app)  # /account, /users, /audit and the forced password change
    app.include_router(ward_pages)  # /ward, a study's ward and its live events (pages_ward)
    # Outermost last: every answer, a refusal of the two below included, gets the headers.
    app.add_middleware(
        SignInThrottle,
        account_attempts=settings.sign_in_account_attempts,
        address_failures=settings.sign_in_address_failures,
        window_minutes=settings.sign_in_window_minutes,
    )
    app.add_middleware(
        BodyLimit,
        max_request_bytes=int(settings.max_request_mb * (1 << 20)),
        max_receiving_bytes=int(settings.max_receiving_mb * (1 << 20)),
    )
    app.add_middleware(SecurityHeaders)
    return app
