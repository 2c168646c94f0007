"""Sign-in and users: tokens for a user name and password, the users an admin manages."""

from __future__ import annotations

import datetime as dt
import functools
import secrets

from sqlalchemy import select

from cytosafe.store import (
    Store,
    User,
    add_to_group,
    create_user,
    issue_token,
    revoke_token,
    verify_password,
)
from cytosafe.web.deps import TokenCache
from cytosafe.web.schemas import UserIn, UserOut
from cytosafe.web.settings import Settings

__all__ = ["list_users", "new_user", "sign_in", "sign_out", "user_out"]


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


def user_out(user: User) -> UserOut:
    """A user as the API shows it (its groups loaded)."""
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        groups=sorted(g.name for g in user.groups),
    )


def list_users(store: Store) -> list[UserOut]:
    """Every user, by user name."""
    with store.reader() as session:
        return [user_out(u) for u in session.scalars(select(User).order_by(User.username))]


def new_user(store: Store, admin: User, body: UserIn) -> UserOut:
    """Create a user with a password, a role and groups, in one transaction."""
    with store.session() as session:
        created = create_user(
            session,
            body.username,
            role=body.role,
            password=body.password,
            display_name=body.display_name,
            by=admin.username,
        )
        for group in body.groups:
            add_to_group(session, created.username, group, by=admin.username)
    with store.reader() as session:
        return user_out(session.get(User, created.id))
