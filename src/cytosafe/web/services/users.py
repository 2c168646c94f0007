"""Sign-in and users: tokens for a user name and password, a user's own password, the
users an admin manages (issue 14, item 4; issue 15, item 2).

A user an admin created or whose password an admin set has ``must_change_password``: the
web app lets them do nothing but change it (:class:`cytosafe.web.pages_accounts.PasswordGate`).
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from typing import Literal

from fastapi import HTTPException, status
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from cytosafe.errors import InputError
from cytosafe.store import (
    Store,
    User,
    add_to_group,
    create_user,
    issue_token,
    revoke_token,
    verify_password,
)
from cytosafe.store.users import (
    change_password,
    remove_from_group,
    set_password,
    update_user,
)
from cytosafe.web.deps import TokenCache
from cytosafe.web.schemas import UserIn, UserOut
from cytosafe.web.settings import Settings

__all__ = [
    "AccountOut",
    "PasswordChangeIn",
    "PasswordSetIn",
    "UserChangeIn",
    "add_member",
    "change_own_password",
    "edit_user",
    "find_account",
    "list_users",
    "new_user",
    "remove_member",
    "reset_password",
    "sign_in",
    "sign_out",
    "user_out",
]


# A stolen session must not become a way to guess the password: wrong current passwords
# are limited like sign-in attempts (OWASP ASVS 4.0.3, 2.2.1; cytosafe.web.throttle).
_WRONG_CURRENT = MovingWindowRateLimiter(MemoryStorage())
_WRONG_CURRENT_LIMIT = RateLimitItemPerMinute(5, 15)


class AccountOut(UserOut):
    """A user as the API shows it, with the state of their account."""

    active: bool = True
    must_change_password: bool = False
    password_changed_at: dt.datetime | None = None


class PasswordChangeIn(BaseModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(
        max_length=1024, description="12-128 characters, not a common password"
    )
    revoke_tokens: bool = Field(
        False, description="Also revoke your other API tokens (web sessions always end)."
    )


class PasswordSetIn(BaseModel):
    password: str = Field(
        max_length=1024,
        description="A temporary password (12-128 characters): the user must change it "
        "at their next sign-in",
    )


class UserChangeIn(BaseModel):
    role: Literal["viewer", "analyst", "study_director", "admin"] | None = None
    active: bool | None = None
    display_name: str | None = Field(None, max_length=200)


def sign_in(
    store: Store, settings: Settings, username: str, password: str, *, name: str
) -> tuple[str, dt.timedelta] | None:
    """A new token (named ``name``) of the user with this password, and its lifetime;
    None for a wrong user name or password, after as long as a wrong password takes,
    so that the time does not tell whether the user exists (issue 14, defect 10)."""
    with store.reader() as session:
        user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.password_hash or not user.active:
        _verify_nothing(password)  # as long as checking a real password takes
        return None
    if not verify_password(user, password):
        return None
    lifetime = dt.timedelta(hours=settings.token_hours)
    return issue_token(store, user.username, lifetime=lifetime, name=name), lifetime


@functools.cache
def _unknown_hash() -> str:
    from argon2 import PasswordHasher

    # The store's hasher (argon2id, the library's defaults), on a password no one has.
    return PasswordHasher().hash(secrets.token_urlsafe(32))


def _verify_nothing(password: str) -> None:
    """Spend the time of checking a password, so that a wrong user name is answered as
    slowly as a wrong password (CWE-208, observable timing discrepancy; OWASP
    Authentication Cheat Sheet, "Authentication and Error Messages")."""
    from argon2 import PasswordHasher
    from argon2.exceptions import VerificationError

    try:
        PasswordHasher().verify(_unknown_hash(), password)
    except VerificationError:
        pass


def sign_out(store: Store, tokens: TokenCache, token: str | None) -> None:
    """Revoke ``token``, and forget it at once on this server."""
    tokens.forget(token)
    revoke_token(store, token)


def user_out(user: User) -> AccountOut:
    """A user as the API shows it (its groups loaded)."""
    changed = user.password_changed_at
    if changed is not None and changed.tzinfo is None:
        changed = changed.replace(tzinfo=dt.UTC)  # SQLite gives back naive UTC times
    return AccountOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        groups=sorted(g.name for g in user.groups),
        active=user.active,
        must_change_password=bool(user.must_change_password),
        password_changed_at=changed,
    )


def list_users(store: Store) -> list[AccountOut]:
    """Every user, by user name."""
    with store.reader() as session:
        query = select(User).order_by(User.username).options(selectinload(User.groups))
        return [user_out(u) for u in session.scalars(query)]


def find_account(store: Store, username: str) -> AccountOut:
    """The user ``username`` (404 when there is none)."""
    with store.reader() as session:
        found = session.scalar(
            select(User).where(User.username == username).options(selectinload(User.groups))
        )
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"user '{username}' not found")
        return user_out(found)


def new_user(store: Store, admin: User, body: UserIn) -> AccountOut:
    """Create a user with a temporary password (to be changed at their first sign-in), a
    role and groups, in one transaction."""
    with store.session() as session:
        created = create_user(
            session,
            body.username,
            role=body.role,
            password=body.password,
            display_name=body.display_name,
            by=admin.username,
            must_change_password=True,
        )
        for group in body.groups:
            add_to_group(session, created.username, group, by=admin.username)
    return find_account(store, body.username)


def change_own_password(
    store: Store,
    tokens: TokenCache,
    user: User,
    body: PasswordChangeIn,
    *,
    token: str | None,
) -> dict:
    """``user`` changes their password (see :func:`cytosafe.store.users.change_password`);
    the request's own ``token`` stays valid and is looked up afresh."""
    key = f"change-password:{user.id}"
    if not _WRONG_CURRENT.test(_WRONG_CURRENT_LIMIT, key):
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many wrong current passwords: try again in 15 minutes",
            headers={"Retry-After": str(15 * 60)},
        )
    try:
        outcome = change_password(
            store,
            user.username,
            body.current_password,
            body.new_password,
            keep_token=token,
            revoke_tokens=body.revoke_tokens,
        )
    except InputError as exc:
        if exc.field == "current_password":
            _WRONG_CURRENT.hit(_WRONG_CURRENT_LIMIT, key)
        raise
    tokens.forget(token)
    return outcome


def _existing(store: Store, username: str) -> None:
    find_account(store, username)  # a 404 for a name that is not there


def edit_user(store: Store, admin: User, username: str, body: UserChangeIn) -> AccountOut:
    """An admin changes a user's role, status or display name (409 for the last admin)."""
    _existing(store, username)
    update_user(
        store,
        username,
        by=admin.username,
        role=body.role,
        active=body.active,
        display_name=body.display_name,
    )
    return find_account(store, username)


def reset_password(store: Store, admin: User, username: str, password: str) -> AccountOut:
    """An admin sets a temporary password; the user must change it at the next sign-in."""
    _existing(store, username)
    set_password(store, username, password, by=admin.username)
    return find_account(store, username)


def add_member(store: Store, admin: User, username: str, group: str) -> AccountOut:
    """Add the user to ``group`` (created when new)."""
    _existing(store, username)
    add_to_group(store, username, group, by=admin.username)
    return find_account(store, username)


def remove_member(store: Store, admin: User, username: str, group: str) -> AccountOut:
    """Take the user out of ``group`` (nothing happens when they are not in it)."""
    _existing(store, username)
    remove_from_group(store, username, group, by=admin.username)
    return find_account(store, username)
