"""Electronic signatures in the web app: the sign-in throttle applied to signing, the
user name asked at the first signature of a session, and what the analysis page's
signature panel (template ``_signature.html``) shows.

* **Throttling.** A signature checks a password, so a wrong one counts as a failed
  sign-in would: :func:`signing` takes the per-account and per-address counts of the
  app's :class:`~cytosafe.web.throttle.SignInThrottle` (the same limiter, the same keys),
  answers 429 with ``Retry-After`` while they are locked, and counts the outcome (a
  refused signature is a failure of the account and the address; a signature clears the
  account's count, as a sign-in does).
* **The user name at the first signature of a session** (21 CFR 11.200(a)(1)(i): "the
  first signing shall be executed using all electronic signature components;
  subsequent signings shall be executed using at least one"). A page session is the
  session cookie's token; the sessions that have signed are remembered by the server
  process (a restart asks for the user name again). API calls are not a continuous
  session: each signature sends the user name and the password.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from contextlib import contextmanager
from typing import Any

from fastapi import HTTPException, Request, status

from cytosafe.store import Store, User
from cytosafe.store.signatures import (
    SignatureRefused,
    comment_limit,
    list_signatures,
    meanings,
)

__all__ = [
    "remember_session",
    "signature_panel",
    "signed_in_session",
    "signing",
]

_lock = threading.Lock()


def _throttle(request: Request) -> Any:
    """The app's :class:`~cytosafe.web.throttle.SignInThrottle` among its middleware
    (None when the app runs without one). Found by what it holds (its limiter and its two
    limits), not by its class: the throttle imports the pages, which import this module."""
    layer: Any = getattr(request.app, "middleware_stack", None)
    for _ in range(32):
        if layer is None or all(hasattr(layer, a) for a in ("limiter", "account", "address")):
            return layer
        layer = getattr(layer, "app", None)
    return None


def _retry_after(throttle: Any, item: Any, key: str) -> int:
    reset = throttle.limiter.get_window_stats(item, key).reset_time
    return max(1, math.ceil(reset - time.time()))


def _locked(seconds: int) -> HTTPException:
    minutes = max(1, math.ceil(seconds / 60))
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        "too many wrong passwords for this user name or from this address: try signing "
        f"again in {minutes} minute{'s' if minutes > 1 else ''}",
        headers={"Retry-After": str(seconds)},
    )


@contextmanager
def signing(request: Request, username: str):
    """Run a signature by ``username`` under the sign-in throttle: 429 when the account
    or the address is locked; a :class:`SignatureRefused` inside counts as a failed
    attempt and becomes a 401 saying so."""
    throttle = _throttle(request)
    account = "account:" + username.strip().casefold()
    address = "address:" + (request.client.host if request.client else "unknown")
    if throttle is not None:
        if not throttle.limiter.test(throttle.address, address):
            raise _locked(_retry_after(throttle, throttle.address, address))
        if not throttle.limiter.hit(throttle.account, account):
            raise _locked(_retry_after(throttle, throttle.account, account))
    try:
        yield
    except SignatureRefused as exc:
        if throttle is not None:
            throttle.limiter.hit(throttle.address, address)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None
    if throttle is not None:
        throttle.limiter.clear(throttle.account, account)


def _session_key(token: str) -> str:
    return hashlib.sha256(f"cytosafe-signing:{token}".encode()).hexdigest()


def _sessions(request: Request) -> set[str]:
    state = request.app.state
    with _lock:
        known = getattr(state, "signing_sessions", None)
        if known is None:
            known = set()
            state.signing_sessions = known
        return known


def signed_in_session(request: Request, token: str) -> bool:
    """Whether the page session of ``token`` has signed before (then the password alone
    signs)."""
    return _session_key(token) in _sessions(request)


def remember_session(request: Request, token: str) -> None:
    """Remember that the page session of ``token`` has signed."""
    known = _sessions(request)
    with _lock:
        if len(known) > 100_000:
            known.clear()  # a bound: forgetting only asks for the user name again
        known.add(_session_key(token))


def signature_panel(
    request: Request, analysis: Any, user: User | None, token: str | None
) -> dict[str, Any]:
    """What ``_signature.html`` shows for ``analysis`` (an ``AnalysisOut``): its
    signatures (the manifest), and, when ``user`` may sign it now, the meanings their
    role may sign with, whether the user name is asked (``token``: the page session's),
    and the comment's limit."""
    store: Store = request.app.state.store
    signatures = list_signatures(store, analysis.id)
    choices = []
    if user is not None and analysis.status == "completed":
        mine = {s["meaning"] for s in signatures if s["username"] == user.username}
        choices = [m for m in meanings().values() if user.role in m.roles and m.key not in mine]
    return {
        "signatures": signatures,
        "choices": choices,
        "ask_username": not (token and signed_in_session(request, token)),
        "comment_limit": comment_limit(),
        "final": analysis.status == "signed_off",
    }
