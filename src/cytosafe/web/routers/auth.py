"""Sign-in (bearer tokens) and users: ``/api/token``, ``/api/users``."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import Response
from fastapi.security import OAuth2PasswordRequestForm

from cytosafe.web import services
from cytosafe.web.deps import Admin, ServerSettings, StoreDep, Tokens, Viewer, bearer, on_loop
from cytosafe.web.schemas import TokenOut, UserIn, UserOut

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


@router.get("/users/me", response_model=UserOut, tags=["users"])
@on_loop
def me(user: Viewer) -> UserOut:
    """The signed-in user."""
    return services.user_out(user)


@router.get("/users", response_model=list[UserOut], tags=["users"])
def list_users(user: Admin, store: StoreDep) -> list[UserOut]:
    """Every user (admin)."""
    return services.list_users(store)


@router.post("/users", response_model=UserOut, status_code=201, tags=["users"])
def new_user(body: UserIn, user: Admin, store: StoreDep) -> UserOut:
    """Create a user with a password, a role and groups (admin); one transaction."""
    return services.new_user(store, user, body)
