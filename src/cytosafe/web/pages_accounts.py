"""Account pages: your password (``/account``), user management for admins (``/users``)
and the audit trail (``/audit``) (issue 14, item 4; issue 15, item 2).

:func:`add_account_pages` adds the pages and :class:`PasswordGate`: a user who must change
their password (the first admin, a user an admin created or whose password an admin
reset) is sent to ``/account`` from every other page, and answered 403 by every endpoint
of the API except ``GET /api/users/me``, ``POST /api/users/me/password`` and signing out,
until they have changed it.

Forms post with the session's CSRF token like every page (:mod:`cytosafe.web.pages`).
Changing your password ends your other web sessions and keeps your API tokens unless you
tick "also revoke": OWASP ASVS 4.0.3, 3.3.3 asks for the option to end the other sessions
after a password change; the web sessions are ended always, as a change is often made
because a session or the password may be known to someone else, while API tokens are
named credentials that scripts and pipelines hold, which a change of password should not
silently break (ASVS 2.1.5 and 2.1.6: the change itself needs the current password).
"""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from cytosafe.errors import ConflictError, InputError
from cytosafe.store import ROLES, audit_problems, token_user, verify_tables
from cytosafe.web.pages import COOKIE, check_csrf, page, render, signed_in
from cytosafe.web.schemas import UserIn
from cytosafe.web.services import audit_trail
from cytosafe.web.services import users as accounts

__all__ = ["PAGE_SIZE", "PasswordGate", "add_account_pages", "router"]

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50  # audit entries per page

# What a user who must change their password may still reach.
_OPEN_API = {
    ("GET", "/api/users/me"),
    ("POST", "/api/users/me/password"),
    ("POST", "/api/token"),
    ("DELETE", "/api/token"),
}
_OPEN_PAGES = {
    "/",
    "/account",
    "/account/password",
    "/sign-in",
    "/sign-out",
    "/favicon.ico",
    "/favicon.svg",
}
_FIELDS = {"current_password": "Current password", "password": "New password"}


def add_account_pages(app: FastAPI) -> None:
    """Add the account, users and audit pages and the :class:`PasswordGate` to ``app``."""
    app.include_router(router)
    app.add_middleware(PasswordGate)


# --- the forced change of password ----------------------------------------------------------


class PasswordGate:
    """ASGI middleware: a user with ``must_change_password`` reaches only the account page
    and the API's password change (see the module); the API answers anything else 403
    with what to do, the pages send them to ``/account``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not await self._blocked(scope):
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")
        if api:
            body = json.dumps({"detail": self.message}).encode()
            start = {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"application/json")],
            }
        else:
            body = b""
            start = {
                "type": "http.response.start",
                "status": 303,
                "headers": [(b"location", b"/account")],
            }
        await send(start)
        await send({"type": "http.response.body", "body": body})

    message = (
        "you must change your password before doing anything else: POST "
        "/api/users/me/password with current_password and new_password (or use the "
        "Account page)"
    )

    async def _blocked(self, scope: Scope) -> bool:
        path, method = scope["path"], scope["method"]
        api = path.startswith("/api/")
        if (method, path) in _OPEN_API or path in _OPEN_PAGES or path.startswith("/static/"):
            return False
        headers = dict(scope.get("headers") or [])
        token = None
        if api:
            scheme, _, value = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else None
        else:
            for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
                name, _, value = part.strip().partition("=")
                if name == COOKIE:
                    token = value
        if not token:
            return False
        state = scope["app"].state
        user = state.tokens.user(state.store, token)
        if user is None or not user.must_change_password:
            return False
        # The cache may remember the flag a moment after the change cleared it.
        fresh = token_user(state.store, token)
        return fresh is not None and bool(fresh.must_change_password)


# --- your account -----------------------------------------------------------------------


def _error(exc: Exception) -> str:
    if isinstance(exc, InputError) and exc.field in _FIELDS:
        text = f"{_FIELDS[exc.field]} {exc.message}."
        return text + (f" Expected: {exc.expected}." if exc.expected else "")
    if isinstance(exc, HTTPException):
        return str(exc.detail)
    if isinstance(exc, InputError) and exc.field:
        return f"{exc.field.replace('_', ' ').capitalize()}: {exc.message}." + (
            f" Expected: {exc.expected}." if exc.expected else ""
        )
    return str(exc)


def _account_page(request: Request, found, status_code: int = 200, **context):
    user = found[0]
    return render(
        request,
        "account.html",
        found,
        status_code,
        nav="account",
        account=accounts.find_account(request.app.state.store, user.username),
        **context,
    )


@router.get("/account", response_class=HTMLResponse)
@page
def account(request: Request):
    return _account_page(request, signed_in(request))


@router.post("/account/password")
@page
def change_password(
    request: Request,
    current_password: Annotated[str, Form(max_length=1024)] = "",
    new_password: Annotated[str, Form(max_length=1024)] = "",
    confirm_password: Annotated[str, Form(max_length=1024)] = "",
    revoke_tokens: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
):
    found = signed_in(request)
    check_csrf(found[1], csrf)
    user, token = found
    if new_password != confirm_password:
        return _account_page(
            request, found, 422, error="The two new passwords differ: type the same one twice."
        )
    state = request.app.state
    body = accounts.PasswordChangeIn(
        current_password=current_password,
        new_password=new_password,
        revoke_tokens=bool(revoke_tokens),
    )
    try:
        outcome = accounts.change_own_password(state.store, state.tokens, user, body, token=token)
    except (InputError, HTTPException) as exc:
        code = exc.status_code if isinstance(exc, HTTPException) else 422
        return _account_page(request, found, code, error=_error(exc))
    if user.must_change_password:
        return RedirectResponse("/studies", status_code=303)
    ended = outcome["sessions_ended"]
    notice = "Password changed."
    if ended:
        notice += f" {ended} other web session{'s' if ended != 1 else ''} signed out."
    if outcome["tokens_revoked"]:
        notice += f" {outcome['tokens_revoked']} API token(s) revoked."
    return _account_page(request, signed_in(request), notice=notice)


# --- users (admin) ----------------------------------------------------------------------


def _users_page(request: Request, found, status_code: int = 200, selected=None, **context):
    everyone = accounts.list_users(request.app.state.store)
    # Shown beside the role and status forms, so that the last-admin guard is no surprise.
    admins = sum(u.role == "admin" and u.active for u in everyone)
    return render(
        request,
        "users.html",
        found,
        status_code,
        nav="users",
        users=everyone,
        roles=ROLES,
        selected=selected,
        active_admins=admins,
        **context,
    )


@router.get("/users", response_class=HTMLResponse)
@page
def users(request: Request):
    return _users_page(request, signed_in(request, "admin"))


@router.get("/users/{username}", response_class=HTMLResponse)
@page
def user_detail(request: Request, username: str):
    found = signed_in(request, "admin")
    selected = accounts.find_account(request.app.state.store, username)
    return _users_page(request, found, selected=selected)


@router.post("/users")
@page
def create_user(
    request: Request,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    role: Annotated[str, Form()] = "viewer",
    display_name: Annotated[str, Form(max_length=200)] = "",
    groups: Annotated[str, Form(max_length=2000)] = "",
    csrf: Annotated[str, Form()] = "",
):
    found = signed_in(request, "admin")
    check_csrf(found[1], csrf)
    try:
        body = UserIn.model_construct(
            username=username.strip(),
            password=password,
            role=role if role in ROLES else "viewer",
            display_name=display_name.strip() or None,
            groups=[g.strip() for g in groups.split(",") if g.strip()],
        )
        if role not in ROLES:
            raise InputError(f"unknown role '{role}'", field="role", expected=" | ".join(ROLES))
        created = accounts.new_user(request.app.state.store, found[0], body)
    except (InputError, ConflictError, HTTPException) as exc:
        code = 409 if isinstance(exc, ConflictError) else 422
        return _users_page(request, found, code, error=_error(exc))
    return _users_page(
        request,
        found,
        selected=created,
        notice=f"User '{created.username}' created: they must change the temporary password "
        "at their first sign-in.",
    )


def _manage(request: Request, username: str, csrf: str, change, notice: str):
    """Run one admin change of ``username`` and show the user's page with the outcome."""
    found = signed_in(request, "admin")
    check_csrf(found[1], csrf)
    store = request.app.state.store
    try:
        selected = change(store, found[0])
    except (InputError, ConflictError) as exc:
        code = 409 if isinstance(exc, ConflictError) else 422
        selected = accounts.find_account(store, username)
        return _users_page(request, found, code, selected=selected, error=_error(exc))
    # An admin who changed their own role or status may no longer be one.
    found = signed_in(request) if found[0].username == username else found
    if found[0].role != "admin":
        return RedirectResponse("/studies", status_code=303)
    return _users_page(request, found, selected=selected, notice=notice)


@router.post("/users/{username}/role")
@page
def change_role(
    request: Request,
    username: str,
    role: Annotated[str, Form()],
    csrf: Annotated[str, Form()] = "",
):
    def change(store, admin):
        if role not in ROLES:
            raise InputError(f"unknown role '{role}'", field="role", expected=" | ".join(ROLES))
        return accounts.edit_user(store, admin, username, accounts.UserChangeIn(role=role))

    return _manage(
        request, username, csrf, change, f"'{username}' is now {role.replace('_', ' ')}."
    )


@router.post("/users/{username}/active")
@page
def change_active(
    request: Request,
    username: str,
    active: Annotated[str, Form()],
    csrf: Annotated[str, Form()] = "",
):
    on = active == "1"

    def change(store, admin):
        return accounts.edit_user(store, admin, username, accounts.UserChangeIn(active=on))

    done = "reactivated" if on else "deactivated (their sessions and tokens ended)"
    return _manage(request, username, csrf, change, f"'{username}' {done}.")


@router.post("/users/{username}/password")
@page
def reset_password(
    request: Request,
    username: str,
    password: Annotated[str, Form(max_length=1024)],
    csrf: Annotated[str, Form()] = "",
):
    def change(store, admin):
        return accounts.reset_password(store, admin, username, password)

    notice = f"Temporary password set: '{username}' must change it at their next sign-in."
    return _manage(request, username, csrf, change, notice)


@router.post("/users/{username}/groups")
@page
def add_group(
    request: Request,
    username: str,
    group: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form()] = "",
):
    def change(store, admin):
        return accounts.add_member(store, admin, username, group)

    return _manage(request, username, csrf, change, f"'{username}' added to {group.strip()}.")


@router.post("/users/{username}/groups/remove")
@page
def remove_group(
    request: Request,
    username: str,
    group: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form()] = "",
):
    def change(store, admin):
        return accounts.remove_member(store, admin, username, group)

    return _manage(request, username, csrf, change, f"'{username}' removed from {group}.")


# --- the audit trail --------------------------------------------------------------------


@router.get("/audit", response_class=HTMLResponse)
@page
def audit(
    request: Request,
    study: Annotated[str, Query(max_length=200)] = "",
    actor: Annotated[str, Query(max_length=200)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    page_number: Annotated[int, Query(alias="page", ge=1)] = 1,
    verify: Annotated[str, Query(max_length=1)] = "",
):
    found = signed_in(request, "study_director")
    user = found[0]
    store = request.app.state.store
    query = {"study": study, "actor": actor, "action": action, "since": since, "until": until}
    context = dict(nav="audit", query=query, actions=audit_trail.ACTIONS, entries=[], total=0)
    try:
        where = audit_trail.AuditFilter.parse(**query)
        entries = audit_trail.filtered_entries(store, user, where)
    except InputError as exc:
        return render(request, "audit.html", found, 422, error=_error(exc), **context)
    total = len(entries)
    pages = max(1, -(-total // PAGE_SIZE))
    number = min(page_number, pages)
    # Newest first: the last entries of the (oldest-first) trail come first.
    end = total - (number - 1) * PAGE_SIZE
    shown = list(reversed(entries[max(0, end - PAGE_SIZE) : end]))
    names = audit_trail.describe(store, shown)
    rows = [
        {
            **e,
            "at_text": e["at"][:19].replace("T", " "),
            "object": names[(e["object_type"], e["object_id"])],
            "summary": audit_trail.summarise(e["details"]),
            "full": json.dumps(e["details"], indent=1, sort_keys=True),
        }
        for e in shown
    ]
    kept = {k: v for k, v in query.items() if v}
    link = lambda n: "/audit?" + urlencode({**kept, "page": n})  # noqa: E731
    context.update(
        entries=rows,
        total=total,
        page=number,
        pages=pages,
        prev_url=link(number - 1) if number > 1 else None,
        next_url=link(number + 1) if number < pages else None,
        verify_url="/audit?" + urlencode({**kept, "verify": 1}),
    )
    if verify and user.role == "admin":
        problems = audit_problems(store, visible_to=user)
        changed = verify_tables(store)
        context["verified"] = {
            "intact": not problems and not changed,
            "problems": [str(p) for p in problems[:10]],
            "n_problems": len(problems),
            "changed": changed[:10],
        }
    return render(request, "audit.html", found, **context)
