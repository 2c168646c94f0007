"""Security headers on every response, and the content security policy of reports.

:class:`SecurityHeaders` (added by :func:`cytosafe.web.create_app`) gives every response
of the app, API and pages alike, the headers OWASP ASVS 4.0.3 V14.4 (level 2) asks for,
unless the route set its own:

* ``Content-Security-Policy`` (ASVS 14.4.3). Pages and the API: scripts and styles from
  this server only (no inline script; inline *styles* are allowed, as the pages' markup
  and Plotly's figures set ``style``), no plug-ins, no ``<base>``, forms posted only here,
  and never framed (``frame-ancestors 'none'``).
* ``X-Content-Type-Options: nosniff`` (14.4.4), ``Referrer-Policy: no-referrer``
  (14.4.6), ``X-Frame-Options: DENY`` beside ``frame-ancestors`` for old browsers (14.4.7),
  ``Permissions-Policy`` turning off the device features no page uses, and
  ``Cross-Origin-Opener-Policy``/``Cross-Origin-Resource-Policy: same-origin``.
* ``Strict-Transport-Security`` when the request came over HTTPS (14.4.5; behind a proxy,
  run uvicorn with ``--proxy-headers`` so that the scheme is the client's).
* ``Cache-Control: no-store`` on whatever did not set a caching policy (8.2.1), so that
  results and tokens stay out of shared and browser caches.

Reports (``/analyses/{id}/report`` and ``/api/analyses/{id}/report``) are self-contained
HTML with Plotly and their own scripts inlined. The web app stores them packed (plotly.js
and the figures gzip-compressed, a third of the size; :func:`cytosafe.report.page.
page_scripts`): the report's script unpacks plotly.js and runs it from a ``blob:`` URL.
They are served with their own, stricter policy (:func:`report_policy`): nothing may be
loaded from anywhere (``default-src 'none'``); the scripts that may run are the report's
own inline scripts, each named by its SHA-256 hash (CSP Level 2, "hash-source"), and,
by ``'strict-dynamic'`` (CSP Level 3, section 8.2), the scripts those trusted scripts
create: the unpacked plotly.js. A script injected into a report would not run (its hash
is not listed, and an injected ``<script src>`` is not created by a trusted script);
'strict-dynamic' makes browsers ignore host and scheme sources, so none is listed. Reports
may be framed by this server's pages only (the analysis page shows the report in an
``<iframe>``). The interactive API documentation (``/docs``, ``/redoc``) loads Swagger UI
and ReDoc from this server (:mod:`cytosafe.web.offline_docs`); its inline script is
allowed by hash, and no other host is.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_POLICY", "SecurityHeaders", "inline_script_hashes", "report_policy"]

DEFAULT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# /docs (Swagger UI) and /redoc: their files are served here (offline_docs), their one
# inline script allowed by hash; ReDoc runs its search in a worker made from a blob.
_DOCS_POLICY = (
    "default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# 'strict-dynamic': the scripts a hashed script creates run too (a packed report's
# plotly.js, from a blob: URL); see the module.
_REPORT_POLICY = (
    "default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)
_DOCS_PATHS = ("/docs", "/redoc", "/docs/oauth2-redirect")
_PERMISSIONS = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)
HSTS = "max-age=31536000; includeSubDomains"  # one year (ASVS 14.4.5)

_SCRIPT = re.compile(rb"<script(\s[^>]*)?>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)


def inline_script_hashes(html: bytes) -> list[str]:
    """The CSP hash-sources (``'sha256-...'``) of the inline scripts of ``html``, in order
    of appearance, each once; scripts with a ``src`` are left out (they are not inline)."""
    seen: list[str] = []
    for match in _SCRIPT.finditer(html):
        attributes = match.group(1) or b""
        if re.search(rb"\bsrc\s*=", attributes, re.IGNORECASE):
            continue
        digest = base64.b64encode(hashlib.sha256(match.group(2)).digest()).decode()
        source = f"'sha256-{digest}'"
        if source not in seen:
            seen.append(source)
    return seen


_known_policies: dict[str, str] = {}


def report_policy(html: bytes, sha256: str | None = None) -> str:
    """The content security policy of a self-contained report: its own inline scripts (by
    hash) may run, and the scripts they create ('strict-dynamic': a packed report's
    plotly.js), nothing may be loaded, and only this server's pages may frame it.

    ``sha256``: the report's recorded digest, to remember the policy of a report served
    again (a stored report does not change, and is megabytes: its scripts are hashed once
    per server process).
    """
    if sha256 is not None and (known := _known_policies.get(sha256)) is not None:
        return known
    hashes = inline_script_hashes(html)
    # 'strict-dynamic' trusts only what a hashed script creates: without one, 'none'.
    sources = " ".join(["'strict-dynamic'", *hashes]) if hashes else "'none'"
    policy = _REPORT_POLICY.format(hashes=sources)
    if sha256 is not None:
        if len(_known_policies) > 4096:
            _known_policies.clear()
        _known_policies[sha256] = policy
    return policy


def _standard_headers(https: bool) -> list[tuple[str, str]]:
    headers = [
        ("content-security-policy", DEFAULT_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("permissions-policy", _PERMISSIONS),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("cache-control", "no-store"),
    ]
    if https:
        headers.append(("strict-transport-security", HSTS))
    return headers


class SecurityHeaders:
    """ASGI middleware adding the security headers (see the module) to every HTTP
    response; a header the route set itself (a report's policy, a static file's caching)
    is kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        if scope.get("path") in _DOCS_PATHS:
            await self._docs(scope, receive, send, https)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _standard_headers(https):
                    if name not in headers:
                        headers[name] = value
                if "frame-ancestors 'self'" in headers.get("content-security-policy", ""):
                    headers["x-frame-options"] = "SAMEORIGIN"
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs(self, scope: Scope, receive: Receive, send: Send, https: bool) -> None:
        """The API documentation pages are small: read them whole and allow their inline
        script by hash."""
        start: Message | None = None
        body = bytearray()

        async def buffer(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            assert start is not None
            headers = MutableHeaders(scope=start)
            policy = _DOCS_POLICY.format(hashes=" ".join(inline_script_hashes(bytes(body))))
            headers["content-security-policy"] = policy
            for name, value in _standard_headers(https):
                if name not in headers:
                    headers[name] = value
            await send(start)
            await send({"type": "http.response.body", "body": bytes(body)})

        await self.app(scope, receive, buffer)
