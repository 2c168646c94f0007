"""Request bodies bounded while they arrive, per request and in total.

The multipart parser spools every uploaded file to a temporary file before an endpoint
sees it, so a limit checked by the endpoint (``max_upload_mb`` per file,
:class:`~cytosafe.web.deps.Uploads`) comes after the whole body was received: a 2 GB upload
filled ``/tmp`` before its 413 (issue 14, defect 12). :class:`BodyLimit` counts the bytes
as they are received instead (OWASP ASVS 4.0.3, 12.1.1 and 13.1.x; CWE-400):

* a request that announces a ``Content-Length`` above ``max_request_mb`` is answered 413 at
  once, without reading any of its body;
* a request whose body (chunked, or longer than announced) grows past it is stopped at
  the chunk that crosses the bound: the endpoint's body parser gets a 413 and nothing more
  is read;
* the bodies being received at the same time, all requests together, may hold at most
  ``max_receiving_mb``: a request that would go over it is answered 413 with
  ``Retry-After`` (RFC 9110, 15.5.14: the condition is temporary).

Every 413 says what the bound is and which setting of :class:`~cytosafe.web.Settings`
holds it.
"""

from __future__ import annotations

import json
import threading

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "BodyTooLarge"]

_MB = 1 << 20


class BodyTooLarge(HTTPException):
    """413: the request body is over a bound (the message says which)."""

    def __init__(self, detail: str, retry_after: int | None = None) -> None:
        headers = None if retry_after is None else {"Retry-After": str(retry_after)}
        super().__init__(413, detail, headers=headers)


class _Budget:
    """The bytes being received by all requests together (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if self.used + n > self.limit:
                return False
            self.used += n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self.used -= n


def _mb(n: int) -> str:
    return f"{n / _MB:g} MB"


class BodyLimit:
    """ASGI middleware bounding request bodies while they arrive (see the module).

    Parameters
    ----------
    app:
        The ASGI app.
    max_request_bytes:
        The largest body of one request.
    max_receiving_bytes:
        The most body bytes all requests being received may hold together.
    """

    def __init__(self, app: ASGIApp, *, max_request_bytes: int, max_receiving_bytes: int) -> None:
        self.app = app
        self.max_request = max_request_bytes
        self.budget = _Budget(max_receiving_bytes)

    def _too_large(self) -> BodyTooLarge:
        return BodyTooLarge(
            f"the request body is larger than {_mb(self.max_request)} "
            "(Settings.max_request_mb): send fewer or smaller files at a time"
        )

    def _busy(self) -> BodyTooLarge:
        return BodyTooLarge(
            f"the server is already receiving {_mb(self.budget.limit)} of uploads "
            "(Settings.max_receiving_mb): try again in a minute",
            retry_after=60,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        if declared is not None and declared > self.max_request:
            await _refuse(send, self._too_large())
            return
        taken = 0  # this request's share of the budget
        if declared:
            if not self.budget.take(declared):
                await _refuse(send, self._busy())
                return
            taken = declared
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received, taken
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_request:
                    raise self._too_large()
                if received > taken:  # chunked, or longer than announced
                    if not self.budget.take(received - taken):
                        raise self._busy()
                    taken = received
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as exc:
            # Raised where no exception handler saw it (outside an endpoint's body parser).
            if started:
                raise
            await _refuse(send, exc)
        finally:
            self.budget.give(taken)


async def _refuse(send: Send, exc: BodyTooLarge) -> None:
    body = json.dumps({"detail": exc.detail}).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    for name, value in (exc.headers or {}).items():
        headers.append((name.lower().encode(), value.encode()))
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
