"""Sign-in (bearer tokens) and users: ``/api/token``, ``/api/users``.

A user changes their own password at ``POST /api/users/me/password`` (with the current
one). An admin lists and creates users (with a temporary password the user must change at
their first sign-in), changes a user's role, status and groups, and resets a password
(``/api/users/{username}``...). Until a user with ``must_change_password`` has changed it,
every other endpoint answers them 403 (:class:`cytosafe.web.pages_accounts.PasswordGate`);
``GET /api/users/me`` tells them so.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status
from fastapi.responses import Response
from fastapi.security import OAuth2PasswordRequestForm

from cytosafe.web import services
from cytosafe.web.deps import Admin, ServerSettings, StoreDep, Tokens, Viewer, bearer, on_loop
from cytosafe.web.schemas import TokenOut, UserIn
from cytosafe.web.services import users as accounts
from cytosafe.web.services.users import AccountOut, PasswordChangeIn, PasswordSetIn, UserChangeIn

__all__ = ["router"]

router = APIRouter(prefix="/api")


@router.post("/token", response_model=TokenOut, tags=["authentication"])
def sign_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    store: StoreDep,
    settings: ServerSettings,
) -> TokenOut:
    """Sign in with user name and password; returns a bearer token."""
    issued = services.sign_in(
        store, settings, form.username, form.password, name="password sign-in"
    )
    if issued is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "wrong user name or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token, lifetime = issued
    return TokenOut(access_token=token, expires_in=int(lifetime.total_seconds()))


@router.delete("/token", status_code=204, tags=["authentication"])
def sign_out(
    user: Viewer,
    token: Annotated[str | None, Depends(bearer)],
    store: StoreDep,
    tokens: Tokens,
) -> Response:
    """Revoke the token of this request (sign out)."""
    services.sign_out(store, tokens, token)
    return Response(status_code=204)


@router.get("/users/me", response_model=AccountOut, tags=["users"])
@on_loop
def me(user: Viewer) -> AccountOut:
    """The signed-in user (``must_change_password``: change it before anything else)."""
    return accounts.user_out(user)


@router.post("/users/me/password", tags=["users"])
def change_my_password(
    body: PasswordChangeIn,
    user: Viewer,
    token: Annotated[str | None, Depends(bearer)],
    store: StoreDep,
    tokens: Tokens,
) -> dict:
    """Change your password: the current one and the new one (12 to 128 characters, not
    a common password, not the current one; 422 naming ``current_password`` or
    ``password`` otherwise). Your web sessions end; your other API tokens are kept unless
    ``revoke_tokens``; the token of this request is kept."""
    outcome = accounts.change_own_password(store, tokens, user, body, token=token)
    return {"changed": True, **outcome}


Username = Annotated[str, Path(max_length=200)]


@router.get("/users", response_model=list[AccountOut], tags=["users"])
def list_users(user: Admin, store: StoreDep) -> list[AccountOut]:
    """Every user with their role, groups, status and last password change (admin)."""
    return accounts.list_users(store)


@router.post("/users", response_model=AccountOut, status_code=201, tags=["users"])
def new_user(body: UserIn, user: Admin, store: StoreDep) -> AccountOut:
    """Create a user with a temporary password, a role and groups (admin); one
    transaction. The user must change the password at their first sign-in."""
    return accounts.new_user(store, user, body)


@router.get("/users/{username}", response_model=AccountOut, tags=["users"])
def get_user(username: Username, user: Admin, store: StoreDep) -> AccountOut:
    """One user (admin)."""
    return accounts.find_account(store, username)


@router.patch("/users/{username}", response_model=AccountOut, tags=["users"])
def change_user(username: Username, body: UserChangeIn, user: Admin, store: StoreDep) -> AccountOut:
    """Change a user's role, status (``active``) or display name (admin). The last active
    admin can be neither demoted nor deactivated (409). Deactivating ends the user's
    sessions and tokens."""
    return accounts.edit_user(store, user, username, body)


@router.put("/users/{username}/password", response_model=AccountOut, tags=["users"])
def reset_password(
    username: Username, body: PasswordSetIn, user: Admin, store: StoreDep
) -> AccountOut:
    """Set a temporary password (admin): the user's sessions and tokens end, and they must
    change it at their next sign-in."""
    return accounts.reset_password(store, user, username, body.password)


@router.put("/users/{username}/groups/{group}", response_model=AccountOut, tags=["users"])
def add_member(
    username: Username,
    group: Annotated[str, Path(max_length=200)],
    user: Admin,
    store: StoreDep,
) -> AccountOut:
    """Make the user a member of ``group`` (created when new; admin)."""
    return accounts.add_member(store, user, username, group)


@router.delete("/users/{username}/groups/{group}", response_model=AccountOut, tags=["users"])
def remove_member(
    username: Username,
    group: Annotated[str, Path(max_length=200)],
    user: Admin,
    store: StoreDep,
) -> AccountOut:
    """End the user's membership of ``group`` (admin)."""
    return accounts.remove_member(store, user, username, group)
