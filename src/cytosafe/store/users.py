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

Accounts (issue 14, item 4; issue 15, item 2): a user changes their own password with the
current one (:func:`change_password`, OWASP ASVS 4.0.3, 2.1.5 and 2.1.6); a password an
admin chose (:func:`set_password`, or :func:`create_user` with
``must_change_password=True``) must be changed at the next sign-in; an admin changes a
user's role, status and groups (:func:`update_user`, :func:`remove_from_group`), but the
last active admin cannot be demoted or deactivated. Each change is one audited entry about
the user (whose fingerprint covers the password hash, role and status), and every token it
revokes is covered by that entry.

``must_change_password`` and ``password_changed_at`` are not in the user's fingerprint
(:mod:`cytosafe.store.integrity`): adding them would change the fingerprint of every user
of every existing store, so ``cytosafe audit verify`` would report each of them as
tampered. Every change of the flag is recorded in the audit entry's details, and the
password hash it goes with is fingerprinted.
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
from cytosafe.store.models import ROLES, ApiToken, Group, GroupMember, User
from cytosafe.store.passwords import check_password
from cytosafe.store.studies import find_group

__all__ = [
    "WEB_SESSION",
    "add_to_group",
    "change_password",
    "create_user",
    "issue_token",
    "remove_from_group",
    "revoke_token",
    "set_password",
    "token_user",
    "update_user",
    "user_groups",
    "verify_password",
]

#: The name of the tokens the web pages' sign-in issues (a session cookie carries one):
#: they are the user's "web sessions", ended by a change of password.
WEB_SESSION = "web sign-in"


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
    must_change_password: bool = False,
) -> User:
    """Add a user; ``password`` is stored as an argon2id hash (None: cannot sign in).

    ``by`` is the admin creating the account (None: the user creates itself, as the
    local command-line user or the first admin of a new store does).
    ``must_change_password``: the password was chosen for the user (a temporary password
    from an admin, the first admin's generated one), who must choose their own at the
    next sign-in.
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
            must_change_password=bool(must_change_password and password is not None),
            password_changed_at=None if password is None else dt.datetime.now(dt.UTC),
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
            details={
                "username": username,
                "role": role,
                "must_change_password": user.must_change_password,
            },
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
        member = _account(session, user)
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


# --- accounts: passwords, roles, status, groups -------------------------------------------


def _account(session: Session, user: User | str | int) -> User:
    """The user named (object, user name or id), active or not."""
    if isinstance(user, User):
        found = session.get(User, user.id)
    elif isinstance(user, int):
        found = session.get(User, user)
    else:
        found = session.scalar(select(User).where(User.username == str(user)))
    if found is None:
        name = getattr(user, "username", user)
        raise InputError(f"unknown user '{name}'", field="username", expected="a user name")
    return found


def _revoke(session: Session, rows: list[ApiToken]) -> list[tuple[str, int]]:
    """Revoke ``rows`` (flushed); the ``covers`` of the entry recording why."""
    now = dt.datetime.now(dt.UTC)
    for row in rows:
        row.revoked_at = now
    session.flush()
    return [("api_token", row.id) for row in rows]


def _live_tokens(session: Session, user: User, *, keep: str | None = None) -> list[ApiToken]:
    """The user's unrevoked, unexpired tokens, except the token ``keep`` (plain text)."""
    now = dt.datetime.now(dt.UTC)
    rows = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    )
    kept = None if keep is None else _digest(keep)
    return [r for r in rows if aware(r.expires_at) > now and r.token_sha256 != kept]


def change_password(
    target: Store | Session,
    user: User | str,
    current: str,
    new: str,
    *,
    keep_token: str | None = None,
    revoke_tokens: bool = False,
) -> dict:
    """A user changes their own password (OWASP ASVS 4.0.3, 2.1.5 and 2.1.6: with the
    current password and the new one).

    The new password must meet the policy (:func:`~cytosafe.store.passwords.check_password`)
    and differ from the current one. It clears ``must_change_password`` and sets
    ``password_changed_at``. The user's other web sessions (tokens named
    :data:`WEB_SESSION`) end: whoever else holds one was signed in with the old password
    (ASVS 3.3.3). Their API tokens are kept, as scripts and pipelines use them, unless
    ``revoke_tokens``; ``keep_token`` (the token of the request making the change) is
    always kept.

    Returns
    -------
    dict
        ``{"sessions_ended": n, "tokens_revoked": m}``.

    Raises
    ------
    InputError
        ``field="current_password"`` when it is wrong; ``field="password"`` when the new
        one breaks the policy or equals the current one.
    """
    with transaction(target) as session:
        account = find_user(session, user)
        if not verify_password(account, current or ""):
            raise InputError(
                "is not your current password",
                field="current_password",
                expected="the password you signed in with",
            )
        check_password(new, username=account.username)
        if new == current:
            raise InputError(
                "is the same as the current password",
                field="password",
                expected="a new password, different from the current one",
            )
        account.password_hash = _hasher().hash(new)
        account.password_changed_at = dt.datetime.now(dt.UTC)
        was_forced = account.must_change_password
        account.must_change_password = False
        live = _live_tokens(session, account, keep=keep_token)
        sessions = [r for r in live if r.name == WEB_SESSION]
        tokens = [r for r in live if r.name != WEB_SESSION] if revoke_tokens else []
        covers = _revoke(session, sessions + tokens)
        record(
            session,
            "edit",
            "user",
            account.id,
            user=account,
            details={
                "password": "changed by the user",
                "was_required": was_forced,
                "sessions_ended": len(sessions),
                "tokens_revoked": len(tokens),
            },
            covers=covers,
        )
        return {"sessions_ended": len(sessions), "tokens_revoked": len(tokens)}


def set_password(
    target: Store | Session, user: User | str, password: str, *, by: User | str
) -> None:
    """An admin sets (resets) a user's password: the user must change it at their next
    sign-in, and every session and token of theirs ends (whoever held one was signed in
    with a password that is no longer theirs)."""
    with transaction(target) as session:
        actor = find_user(session, by)
        account = _account(session, user)
        check_password(password, username=account.username)
        account.password_hash = _hasher().hash(password)
        account.password_changed_at = dt.datetime.now(dt.UTC)
        account.must_change_password = True
        covers = _revoke(session, _live_tokens(session, account))
        record(
            session,
            "edit",
            "user",
            account.id,
            user=actor,
            details={
                "username": account.username,
                "password": "reset by an admin",
                "must_change_password": True,
                "tokens_revoked": len(covers),
            },
            covers=covers,
        )


def _other_active_admins(session: Session, account: User) -> int:
    """How many active admins there are besides ``account``. On PostgreSQL their rows
    are locked, always in the order of their ids: two admins demoting each other at once
    then take turns (no deadlock), and the second sees that the first is no longer an
    admin (SQLite's writers take turns already: transactions begin IMMEDIATE)."""
    admins = session.scalars(
        select(User.id).where(User.role == "admin", User.active).order_by(User.id).with_for_update()
    ).all()
    return sum(1 for i in admins if i != account.id)


def update_user(
    target: Store | Session,
    user: User | str,
    *,
    by: User | str,
    role: str | None = None,
    active: bool | None = None,
    display_name: str | None = None,
) -> User:
    """An admin changes a user's role, status (active or not) or display name; None
    leaves a field as it is.

    The last active admin can be neither demoted nor deactivated (a
    :class:`~cytosafe.errors.ConflictError`): the store would have no one left to manage
    users. A deactivated user's sessions and tokens end with it, so that reactivating the
    account does not revive them.
    """
    if role is not None and role not in ROLES:
        raise InputError(f"unknown role '{role}'", field="role", expected=" | ".join(ROLES))
    with transaction(target) as session:
        actor = find_user(session, by)
        account = _account(session, user)
        changes: dict[str, dict] = {}
        if role is not None and role != account.role:
            changes["role"] = {"from": account.role, "to": role}
        if active is not None and bool(active) != account.active:
            changes["active"] = {"from": account.active, "to": bool(active)}
        if display_name is not None and (display_name.strip() or None) != account.display_name:
            changes["display_name"] = {
                "from": account.display_name,
                "to": display_name.strip() or None,
            }
        if not changes:
            return account
        loses_admin = account.role == "admin" and account.active
        loses_admin = loses_admin and (
            changes.get("role", {}).get("to", "admin") != "admin"
            or not changes.get("active", {}).get("to", True)
        )
        if loses_admin and _other_active_admins(session, account) == 0:
            raise ConflictError(
                f"'{account.username}' is the last active admin: make another user an admin first",
                field="role" if "role" in changes else "active",
            )
        if "role" in changes:
            account.role = role
        if "active" in changes:
            account.active = bool(active)
        if "display_name" in changes:
            account.display_name = changes["display_name"]["to"]
        covers = []
        if changes.get("active", {}).get("to") is False:
            covers = _revoke(session, _live_tokens(session, account))
        session.flush()
        record(
            session,
            "edit",
            "user",
            account.id,
            user=actor,
            details={"username": account.username, **changes, "tokens_revoked": len(covers)},
            covers=covers,
        )
        return account


def remove_from_group(
    target: Store | Session, user: User | str, group: str, *, by: User | str
) -> bool:
    """End ``user``'s membership of ``group``; False when they were not a member."""
    with transaction(target) as session:
        actor = find_user(session, by)
        member = _account(session, user)
        row = session.scalar(select(Group).where(Group.name == (group or "").strip()))
        if row is None:
            return False
        link = session.get(GroupMember, (row.id, member.id))
        if link is None:
            return False
        session.delete(link)
        session.flush()
        record(
            session,
            "edit",
            "group",
            row.id,
            user=actor,
            details={"group": row.name, "removed": member.username},
        )
        return True
