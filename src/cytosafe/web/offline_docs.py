"""The API documentation and the favicon, served from this server: nothing from a CDN.

FastAPI's own ``/docs`` (Swagger UI) and ``/redoc`` pages load their scripts, styles and
fonts from public CDNs, so on a laboratory network without internet they are blank. Here
the same pages load Swagger UI and ReDoc from the files the ``fastapi-offline`` package
ships (MIT; Swagger UI 5 and ReDoc, released with it), served under ``/static-docs/``.
Where that package is not installed, ``/docs`` is a plain page listing every endpoint
from the OpenAPI document instead, and ``/redoc`` redirects there: still nothing fetched
from elsewhere.

``/favicon.svg`` (and ``/favicon.ico``, which browsers ask for on their own) is the
CytoSafe icon of ``web/static/favicon.svg``, the reports' icon too.
"""

from __future__ import annotations

import html
import importlib.util
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, RedirectResponse, Response

__all__ = ["ASSETS", "DOCS_ASSETS", "add_offline_docs"]

#: This server's own static files (the favicon).
ASSETS = Path(__file__).parent / "static"
#: Swagger UI's and ReDoc's files, as the fastapi-offline package ships them (None when
#: the package is not installed).
_SPEC = importlib.util.find_spec("fastapi_offline")
DOCS_ASSETS = Path(_SPEC.origin).parent / "static" if _SPEC is not None and _SPEC.origin else None
_DOCS_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
}
_CACHE = {"Cache-Control": "public, max-age=86400"}
FAVICON = "/favicon.svg"

router = APIRouter(include_in_schema=False)


@router.get("/favicon.svg")
@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(
        (ASSETS / "favicon.svg").read_bytes(), media_type="image/svg+xml", headers=_CACHE
    )


#: ReDoc draws its maker's logo from their CDN under the menu; here it is this server's
#: icon, so that the page asks no other host for anything.
_REDOC_LOGO = (b"https://cdn.redoc.ly/redoc/logo-mini.svg", FAVICON.encode())
_assets: dict[str, bytes] = {}


@router.get("/static-docs/{name}")
def docs_asset(name: str) -> Response:
    if DOCS_ASSETS is None or name not in _DOCS_FILES:
        raise HTTPException(404, "not found")
    body = _assets.get(name)
    if body is None:
        body = _assets.setdefault(name, (DOCS_ASSETS / name).read_bytes().replace(*_REDOC_LOGO))
    return Response(body, media_type=_DOCS_FILES[name], headers=_CACHE)


def _endpoint_list(app: FastAPI) -> HTMLResponse:
    """Every endpoint of the OpenAPI document on one plain page (no script)."""
    spec = app.openapi()
    rows = []
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            summary = op.get("summary") or ""
            rows.append(
                f"<tr><td><code>{html.escape(method.upper())}</code></td>"
                f"<td><code>{html.escape(path)}</code></td><td>{html.escape(summary)}</td></tr>"
            )
    body = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(app.title)} · endpoints</title>"
        f"<link rel='icon' href='{FAVICON}' type='image/svg+xml'>"
        f"<link rel='stylesheet' href='/static/report.css'></head><body><main>"
        f"<h1>{html.escape(app.title)} {html.escape(app.version)}</h1>"
        f"<p>The OpenAPI document: <a href='{app.openapi_url}'>{app.openapi_url}</a>.</p>"
        f"<div class='table-wrap'><table class='data'><thead><tr><th>Method</th><th>Path</th>"
        f"<th>Summary</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        f"</main></body></html>"
    )
    return HTMLResponse(body)


def add_offline_docs(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc``, their assets and the favicon to ``app`` (created with
    ``docs_url=None, redoc_url=None``)."""
    app.include_router(router)
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        if DOCS_ASSETS is None:
            return _endpoint_list(app)
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{title} · Swagger UI",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url="/static-docs/swagger-ui-bundle.js",
            swagger_css_url="/static-docs/swagger-ui.css",
            swagger_favicon_url=FAVICON,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False, response_model=None)
    def redoc() -> HTMLResponse | RedirectResponse:
        if DOCS_ASSETS is None:
            return RedirectResponse("/docs", 307)
        return get_redoc_html(
            openapi_url=app.openapi_url,
            title=f"{title} · ReDoc",
            redoc_js_url="/static-docs/redoc.standalone.js",
            redoc_favicon_url=FAVICON,
            with_google_fonts=False,
        )
