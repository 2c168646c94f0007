"""Sign-in throttling with a lockout per account and per address.

Both ways of signing in, ``POST /api/token`` (the API) and ``POST /sign-in`` (the pages),
go through :class:`SignInThrottle`, an ASGI middleware that reads the user name from the
form and the outcome from the answer (401: wrong user name or password):

* **per account** (the user name as typed, ignoring case and surrounding spaces): every
  attempt counts; after ``sign_in_account_attempts`` within ``sign_in_window_minutes`` the
  account is locked until the oldest of them leaves the window, and a successful sign-in
  clears its count. Every name counts, known or not, so a lockout does not tell whether a
  user exists.
* **per address** (the client's IP address; behind a proxy, run uvicorn with
  ``--proxy-headers``): at most ``sign_in_address_failures`` failed attempts within the
  window, whatever the names tried (password spraying); successful sign-ins from a shared
  address do not count.

A locked attempt is answered 429 with ``Retry-After`` (RFC 6585, 4) before the password is
looked at, so guessing goes on at no more than the allowed rate. This is the "soft
lockout" and anti-automation of OWASP ASVS 4.0.3, 2.2.1 (level 2), and NIST SP 800-63B,
5.2.2 ("no more than 100 consecutive failed attempts on a single account"). The counts are
kept in memory with the moving-window limiter of the ``limits`` package, per server
process.
"""

from __future__ import annotations

import json
import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SignInThrottle"]

SIGN_IN_PATHS = {"/api/token": "api", "/sign-in": "page"}
_MAX_FORM = 64 << 10  # a sign-in form is a few hundred bytes


class SignInThrottle:
    """ASGI middleware throttling sign-in (see the module).

    Parameters
    ----------
    app:
        The ASGI app.
    account_attempts:
        Attempts allowed per account within the window (successes clear them).
    address_failures:
        Failed attempts allowed per client address within the window.
    window_minutes:
        The moving window.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        account_attempts: int = 5,
        address_failures: int = 20,
        window_minutes: int = 15,
    ) -> None:
        self.app = app
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.account = RateLimitItemPerMinute(account_attempts, window_minutes)
        self.address = RateLimitItemPerMinute(address_failures, window_minutes)

    def _retry_after(self, item, key: str) -> int:
        reset = self.limiter.get_window_stats(item, key).reset_time
        return max(1, math.ceil(reset - time.time()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        face = SIGN_IN_PATHS.get(scope.get("path", "")) if scope["type"] == "http" else None
        if face is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body.extend(message.get("body", b""))
            more = message.get("more_body", False)
            if len(body) > _MAX_FORM:
                await _answer(send, 413, {"detail": "the sign-in form is too large"})
                return
        form = await _form(scope, bytes(body))
        username = form.get("username", "")
        account = "account:" + username.strip().casefold()
        address = "address:" + (scope.get("client") or ("unknown", 0))[0]
        if not self.limiter.test(self.address, address):
            await self._locked(send, face, form, self._retry_after(self.address, address))
            return
        if not self.limiter.hit(self.account, account):
            await self._locked(send, face, form, self._retry_after(self.account, account))
            return
        status = 0
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, replay, watch)
        if status == 401:
            self.limiter.hit(self.address, address)
        elif status in (200, 303):
            self.limiter.clear(self.account, account)

    async def _locked(self, send: Send, face: str, form: dict, seconds: int) -> None:
        minutes = max(1, math.ceil(seconds / 60))
        message = (
            "too many sign-in attempts for this user name or from this address: "
            f"try again in {minutes} minute{'s' if minutes > 1 else ''}"
        )
        headers = {"Retry-After": str(seconds)}
        if face == "api":
            await _answer(send, 429, {"detail": message}, headers)
            return
        from cytosafe.web.pages import templates

        html = templates.get_template("sign_in.html").render(
            user=None,
            csrf="",
            next=form.get("next", "/studies"),
            error=message[0].upper() + message[1:] + ".",
        )
        await _answer(send, 429, html, headers)


async def _form(scope: Scope, body: bytes) -> dict[str, str]:
    """The text fields of a sign-in form (URL-encoded or multipart), as the endpoint will
    read them."""
    from starlette.requests import Request

    sent = False

    async def once() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(scope, once).form(max_files=0)
    except Exception:  # a malformed form: the endpoint answers it (422)
        return {}
    try:
        return {k: v for k, v in form.items() if isinstance(v, str)}
    finally:
        await form.close()


async def _answer(send: Send, status: int, content, headers: dict | None = None) -> None:
    if isinstance(content, str):
        body, media = content.encode("utf-8"), b"text/html; charset=utf-8"
    else:
        body, media = json.dumps(content).encode("utf-8"), b"application/json"
    raw = [(b"content-type", media), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
