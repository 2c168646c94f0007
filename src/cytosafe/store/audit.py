"""The append-only audit trail: who did what, to which object, when.

Every change the store makes (import, re-analysis, edit, exclusion and restoration of
wells, sign-off, status change, user and study creation) is recorded in the same
transaction as the change itself, so that a change without its entry, or an entry
without its change, cannot exist. Entries are
written when the transaction commits (a SQLAlchemy ``before_commit`` hook), one after the
other under a lock (PostgreSQL: a transaction-level advisory lock; SQLite: the writer's
``BEGIN IMMEDIATE``), so concurrent transactions extend one chain instead of forking it.

Chaining: entry *n* stores ``prev_hash`` (entry *n-1*'s hash, 64 zeros for the first)
and ``hash = SHA-256(prev_hash + canonical(entry))``, where ``canonical`` is compact JSON
with sorted keys of ``seq, at (UTC ISO 8601, microseconds), actor, user_id, action,
object_type, object_id, details`` (``details`` being itself canonical JSON text). Editing
any field of any entry, deleting an entry in the middle or reordering entries breaks the
chain from that entry on; :func:`verify_audit` finds the first broken entry. Truncating
the *tail* cannot be seen from the chain alone: record the head hash that
``cytosafe audit verify`` prints somewhere else (a report, a lab notebook) to anchor it.

Append-only is enforced three times: the ORM refuses to update or delete an
:class:`~cytosafe.store.models.AuditEntry` (unit of work and bulk statements alike), and
database triggers (SQLite and PostgreSQL, created by the first migration) abort any
``UPDATE`` or ``DELETE`` on ``audit_log`` (and ``TRUNCATE`` on PostgreSQL), whoever sends it.
This is the audit-trail expectation of 21 CFR Part 11 §11.10(e) and the OECD GLP
principles (No. 1, 1998; advisory document No. 17 on computerised systems, 2016):
secure, computer-generated, time-stamped entries that do not obscure earlier ones.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Delete, Update

from cytosafe.errors import CytoSafeError
from cytosafe.store.models import AuditEntry, User

__all__ = [
    "ACTIONS",
    "GENESIS_HASH",
    "AuditBreak",
    "AuditError",
    "Readable",
    "audit_entries",
    "canonical_json",
    "entry_hash",
    "record",
    "verify_audit",
]

#: What an entry can say was done.
ACTIONS = (
    "create",
    "import",
    "re-analysis",
    "edit",
    "status",
    "sign-off",
    "exclude",
    "include",
)
GENESIS_HASH = "0" * 64
_PENDING = "cytosafe_audit_pending"
#: Key of the PostgreSQL advisory lock that serialises appends to the chain.
_ADVISORY_LOCK = 0x43_59_54_4F  # "CYTO"


class AuditError(CytoSafeError):
    """An attempt to change or delete an audit entry."""


class Readable(Protocol):
    """What reading the trail needs of a store: read sessions. A
    :class:`~cytosafe.store.Store` is one; typing against this protocol, not the class,
    keeps this module below :mod:`cytosafe.store.database`, which installs its hooks."""

    def reader(self) -> AbstractContextManager[Session]: ...


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the one serialisation that is hashed.

    Raises
    ------
    TypeError
        When ``value`` holds something JSON cannot represent.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _utc_text(at: dt.datetime) -> str:
    # SQLite gives back naive datetimes (stored as UTC); PostgreSQL aware ones.
    at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
    return at.isoformat(timespec="microseconds")


def entry_hash(entry: AuditEntry) -> str:
    """SHA-256 of the previous hash and the canonical serialisation of ``entry``."""
    body = canonical_json(
        {
            "seq": entry.seq,
            "at": _utc_text(entry.at),
            "actor": entry.actor,
            "user_id": entry.user_id,
            "action": entry.action,
            "object_type": entry.object_type,
            "object_id": entry.object_id,
            "details": entry.details,
        }
    )
    return hashlib.sha256((entry.prev_hash + body).encode("utf-8")).hexdigest()


def record(
    session: Session,
    action: str,
    object_type: str,
    object_id: object,
    *,
    user: User,
    details: dict | None = None,
) -> None:
    """Queue an audit entry; it is written, chained, when ``session`` commits.

    Parameters
    ----------
    session:
        The session holding the change being recorded.
    action:
        One of :data:`ACTIONS`.
    object_type, object_id:
        What was acted on (``"analysis"``, ``42``).
    user:
        Who did it (a flushed :class:`User`).
    details:
        JSON-serialisable facts (settings, hashes, old and new values, the reason).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    session.info.setdefault(_PENDING, []).append(
        {
            "actor": user.username,
            "user_id": user.id,
            "action": action,
            "object_type": object_type,
            "object_id": None if object_id is None else str(object_id),
            "details": canonical_json(details or {}),
        }
    )


def _lock_chain(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
    # SQLite: store write transactions begin IMMEDIATE, so this one is the only writer.


def _write_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    session.flush()
    _lock_chain(session)
    last = session.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    seq, prev = (last.seq, last.hash) if last else (0, GENESIS_HASH)
    now = dt.datetime.now(dt.UTC)
    for item in pending:
        seq += 1
        entry = AuditEntry(seq=seq, at=now, prev_hash=prev, **item)
        entry.hash = prev = entry_hash(entry)
        session.add(entry)
    session.flush()


def _drop_pending(session: Session, *_: object) -> None:
    session.info.pop(_PENDING, None)


def _refuse_change(mapper: object, connection: object, target: AuditEntry) -> None:
    raise AuditError(
        f"audit entry {target.seq} cannot be changed or deleted: the log is append-only"
    )


def _refuse_bulk(state: Any) -> None:
    statement = state.statement
    if isinstance(statement, (Update, Delete)) and statement.table.name == AuditEntry.__tablename__:
        raise AuditError("the audit log is append-only: UPDATE and DELETE are refused")


def install(session_class: type[Session]) -> None:
    """Attach the audit hooks to ``session_class`` (the store's sessions)."""
    event.listen(session_class, "before_commit", _write_pending)
    event.listen(session_class, "after_rollback", _drop_pending)
    event.listen(session_class, "after_soft_rollback", _drop_pending)
    event.listen(session_class, "do_orm_execute", _refuse_bulk)


event.listen(AuditEntry, "before_update", _refuse_change)
event.listen(AuditEntry, "before_delete", _refuse_change)


@dataclass(frozen=True)
class AuditBreak:
    """The first entry where the chain does not hold, and why."""

    seq: int
    id: int | None
    reason: str

    def __str__(self) -> str:
        return f"audit entry {self.seq}: {self.reason}"


def audit_entries(store: Readable, *, object_type: str | None = None, object_id: object = None):
    """The audit entries (oldest first), optionally of one object, as plain dicts."""
    with store.reader() as session:
        query = select(AuditEntry).order_by(AuditEntry.seq)
        if object_type is not None:
            query = query.where(AuditEntry.object_type == object_type)
        if object_id is not None:
            query = query.where(AuditEntry.object_id == str(object_id))
        return [
            {
                "seq": e.seq,
                "at": _utc_text(e.at),
                "actor": e.actor,
                "user_id": e.user_id,
                "action": e.action,
                "object_type": e.object_type,
                "object_id": e.object_id,
                "details": json.loads(e.details),
                "hash": e.hash,
            }
            for e in session.scalars(query)
        ]


def verify_audit(store: Readable) -> AuditBreak | None:
    """Walk the chain; return the first broken entry, or None when the chain holds.

    An entry is broken when its ``seq`` is not the next number (an entry was deleted or
    inserted), its ``prev_hash`` is not the previous entry's hash, or its ``hash`` is not
    the hash of its own content (a field was edited).
    """
    expected_seq, prev = 1, GENESIS_HASH
    with store.reader() as session:
        rows = session.scalars(
            select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=1000)
        )
        for entry in rows:
            if entry.seq != expected_seq:
                return AuditBreak(
                    entry.seq,
                    entry.id,
                    f"sequence number is {entry.seq}, expected {expected_seq} (an entry is missing)",
                )
            if entry.prev_hash != prev:
                return AuditBreak(
                    entry.seq, entry.id, "prev_hash does not match the previous entry's hash"
                )
            if entry_hash(entry) != entry.hash:
                return AuditBreak(
                    entry.seq, entry.id, "content does not match its hash (the entry was edited)"
                )
            expected_seq, prev = expected_seq + 1, entry.hash
    return None


def head(store: Readable) -> tuple[int, str]:
    """Number of entries and the hash of the last one (:data:`GENESIS_HASH` when empty)."""
    with store.reader() as session:
        last = session.execute(
            select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
        ).first()
    return (last.seq, last.hash) if last else (0, GENESIS_HASH)
