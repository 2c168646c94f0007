"""Users, their groups and their API tokens.

A password is stored as an argon2id hash (:func:`create_user`, :func:`verify_password`).
A token is issued for a user whose password was checked (:func:`issue_token`); only its
SHA-256 is stored (:class:`~cytosafe.store.models.ApiToken`). :func:`token_user` finds the
active user of a valid (known, unrevoked, unexpired) token. Creating users, issuing and
revoking tokens and adding users to groups are audited like every other change, and
each entry records the fingerprint of the user, token or group as committed
(:mod:`cytosafe.store.integrity`). A user name is unique: creating one that exists is a
:class:`~cytosafe.errors.ConflictError` (the web app's 409), also when two admins create
it at the same moment.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from cytosafe.errors import ConflictError, InputError
from cytosafe.store._session import aware, find_user, reading, transaction
from cytosafe.store.audit import record
from cytosafe.store.database import Store
from cytosafe.store.models import ROLES, ApiToken, GroupMember, User
from cytosafe.store.passwords import check_password
from cytosafe.store.studies import find_group

__all__ = [
    "add_to_group",
    "create_user",
    "issue_token",
    "revoke_token",
    "token_user",
    "user_groups",
    "verify_password",
]


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) defaults


def create_user(
    target: Store | Session,
    username: str,
    *,
    role: str = "viewer",
    password: str | None = None,
    display_name: str | None = None,
    by: User | str | None = None,
) -> User:
    """Add a user; ``password`` is stored as an argon2id hash (None: cannot sign in).

    ``by`` is the admin creating the account (None: the user creates itself, as the
    local command-line user or the first admin of a new store does).
    """
    username = (username or "").strip()
    if not username:
        raise InputError("a user name is empty", field="username", expected="a non-empty name")
    if role not in ROLES:
        raise InputError(f"unknown role '{role}'", field="role", expected=" | ".join(ROLES))
    if password is not None:
        check_password(password, username=username)
    with transaction(target) as session:
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            raise ConflictError(f"user '{username}' already exists", field="username")
        user = User(
            username=username,
            role=role,
            display_name=display_name,
            password_hash=None if password is None else _hasher().hash(password),
        )
        try:
            # A savepoint: on PostgreSQL two creations of one name both pass the check
            # above; the unique index decides, and the loser gets a conflict, not a crash.
            with session.begin_nested():
                session.add(user)
        except IntegrityError:
            raise ConflictError(f"user '{username}' already exists", field="username") from None
        actor = user if by is None else find_user(session, by)
        record(
            session,
            "create",
            "user",
            user.id,
            user=actor,
            details={"username": username, "role": role},
        )
        return user


def verify_password(user: User, password: str) -> bool:
    """Whether ``password`` is the user's password (False for users without one)."""
    from argon2.exceptions import InvalidHashError, VerificationError

    if not user.password_hash or not user.active:
        return False
    try:
        return _hasher().verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(
    target: Store | Session,
    user: User | str,
    *,
    lifetime: dt.timedelta = dt.timedelta(hours=12),
    name: str | None = None,
) -> str:
    """A new bearer token of ``user`` (whose password the caller has checked)."""
    token = secrets.token_urlsafe(32)
    with transaction(target) as session:
        actor = find_user(session, user)
        row = ApiToken(
            user_id=actor.id,
            token_sha256=_digest(token),
            name=name,
            expires_at=dt.datetime.now(dt.UTC) + lifetime,
        )
        session.add(row)
        session.flush()
        record(
            session,
            "create",
            "api_token",
            row.id,
            user=actor,
            details={"expires_at": row.expires_at.isoformat(), "name": name},
        )
    return token


def token_user(target: Store | Session, token: str) -> User | None:
    """The active user of a valid token, else None."""
    if not token:
        return None
    with reading(target) as session:
        # One query for the token and its user (every API request makes it), one for
        # the groups; expiry is compared here, as SQLite stores naive UTC times.
        found = session.execute(
            select(ApiToken.expires_at, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_sha256 == _digest(token), ApiToken.revoked_at.is_(None))
            .options(selectinload(User.groups))
        ).first()
        if found is None:
            return None
        expires_at, user = found
        if aware(expires_at) <= dt.datetime.now(dt.UTC) or not user.active:
            return None
        return user


def revoke_token(target: Store | Session, token: str) -> bool:
    """Revoke a token (sign out); False when it was unknown or already revoked."""
    with transaction(target) as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == _digest(token)))
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = dt.datetime.now(dt.UTC)
        session.flush()
        record(session, "edit", "api_token", row.id, user=find_user(session, row.user_id),
               details={"revoked": True})  # fmt: skip
        return True


def add_to_group(target: Store | Session, user: User | str, group: str, *, by: User | str) -> None:
    """Make ``user`` a member of ``group`` (created when new)."""
    group = (group or "").strip()
    if not group:
        raise InputError("a group name is empty", field="group", expected="a non-empty name")
    with transaction(target) as session:
        actor = find_user(session, by)
        member = find_user(session, user)
        row, _ = find_group(session, group)
        if session.get(GroupMember, (row.id, member.id)) is None:
            session.add(GroupMember(group_id=row.id, user_id=member.id))
            session.flush()
            record(
                session,
                "edit",
                "group",
                row.id,
                user=actor,
                details={"group": group, "added": member.username},
            )


def user_groups(target: Store | Session, user: User | str) -> list[str]:
    """Names of the groups ``user`` belongs to."""
    with reading(target) as session:
        member = find_user(session, user)
        return sorted(g.name for g in member.groups)
