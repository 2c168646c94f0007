"""What every store operation shares: its transaction, the lookups it locks, its refusals.

Every public store function takes a :class:`~cytosafe.store.Store` (it opens one
transaction and commits it) or an open :class:`~sqlalchemy.orm.Session` (it joins the
caller's transaction; the caller commits, and rolls back when a function raises, as a
``with store.session():`` block does). :func:`transaction` and :func:`reading` make that
one rule; the lookups here raise an :class:`~cytosafe.errors.InputError` naming what was
not found, so the faces report it as bad input.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from cytosafe.errors import CytoSafeError, InputError
from cytosafe.store.database import Store, StoreSession
from cytosafe.store.models import Analysis, Study, User

__all__ = [
    "ANALYST_ROLES",
    "SIGN_OFF_ROLES",
    "AuthorizationError",
    "SignedOffError",
    "aware",
    "find_analysis",
    "find_study",
    "find_user",
    "plain",
    "reading",
    "records",
    "refuse_signed",
    "require_role",
    "transaction",
]

#: Roles allowed to run analyses and edit measurements.
ANALYST_ROLES = ("analyst", "study_director", "admin")
#: Roles allowed to sign off an analysis.
SIGN_OFF_ROLES = ("study_director", "admin")


class SignedOffError(InputError):
    """A change to an analysis that has been signed off (make a re-analysis instead)."""


class AuthorizationError(CytoSafeError):
    """The user's role does not allow the action."""


@contextmanager
def transaction(target: Store | Session) -> Iterator[Session]:
    """A write session: a new transaction of ``target`` (a store), or ``target`` itself
    (a store session, whose owner commits)."""
    if isinstance(target, Session):
        if not isinstance(target, StoreSession):
            # A plain Session would commit the change but silently drop its audit entry.
            raise TypeError("use a session from Store.session(), which writes the audit trail")
        yield target
    elif isinstance(target, Store):
        with target.session() as session:
            yield session
    else:
        raise TypeError(f"expected a Store or a Session, got {type(target).__name__}")


@contextmanager
def reading(target: Store | Session) -> Iterator[Session]:
    """A read session: ``target`` itself, or a read-only session of the store."""
    if isinstance(target, Session):
        yield target
    else:
        with target.reader() as session:
            yield session


def aware(at: dt.datetime) -> dt.datetime:
    """``at`` with its time zone: SQLite gives back naive datetimes (stored as UTC),
    PostgreSQL aware ones."""
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at


def find_user(session: Session, user: User | str | int | None) -> User:
    """The active user named (object, user name or id); every change is attributed."""
    if user is None:
        raise InputError("no user given: every change must be attributed", field="user")
    if isinstance(user, User):
        found = session.get(User, user.id) if user.id is not None else None
    elif isinstance(user, int):
        found = session.get(User, user)
    else:
        found = session.scalar(select(User).where(User.username == str(user)))
    if found is None or not found.active:
        raise InputError(
            f"unknown or inactive user '{getattr(user, 'username', user)}'", field="user"
        )
    return found


def require_role(user: User, roles: tuple[str, ...], action: str) -> None:
    """Refuse ``action`` unless ``user`` has one of ``roles``."""
    if user.role not in roles:
        raise AuthorizationError(
            f"user '{user.username}' ({user.role}) may not {action}; needs one of: {', '.join(roles)}"
        )


def find_study(session: Session, study: Study | str | int, *, lock: bool = True) -> Study:
    """The study, locked for this transaction (PostgreSQL ``FOR UPDATE``): imports into
    one study take turns, so version numbers and plates never collide."""
    if isinstance(study, Study):
        condition = Study.id == study.id
    elif isinstance(study, int):
        condition = Study.id == study
    else:
        condition = Study.code == str(study)
    query = select(Study).where(condition)
    if lock:
        query = query.with_for_update()
    found = session.scalar(query)
    if found is None:
        raise InputError(
            f"unknown study '{getattr(study, 'code', study)}'",
            field="study",
            expected="an existing study (create it first)",
        )
    return found


def find_analysis(session: Session, analysis: Analysis | int, *, lock: bool = False) -> Analysis:
    """The analysis (object or id), optionally locked for this transaction."""
    found = session.get(Analysis, getattr(analysis, "id", analysis), with_for_update=lock)
    if found is None:
        raise InputError(f"no analysis {getattr(analysis, 'id', analysis)}", field="analysis")
    return found


def refuse_signed(analysis: Analysis, what: str) -> None:
    """Refuse ``what`` on a signed-off analysis: it is final."""
    if analysis.status == "signed_off":
        raise SignedOffError(
            f"analysis {analysis.id} ({analysis.kind} v{analysis.version}) is signed off: cannot {what}",
            field="analysis",
            expected="a re-analysis (a new version) instead",
        )


def plain(value: Any) -> Any:
    """A table cell as the database takes it: missing (None, NA, NaN) as None."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def records(frame: pd.DataFrame, columns: Iterable[str]) -> list[dict[str, Any]]:
    """The rows of ``frame`` (those ``columns``) as dicts of plain values."""
    data = {c: [plain(v) for v in frame[c].astype(object).tolist()] for c in columns}
    return [dict(zip(data, row, strict=True)) for row in zip(*data.values(), strict=True)]
