"""The append-only audit trail: who did what, to which object, when.

Every change the store makes (import, re-analysis, edit and deletion, exclusion and
restoration of wells, sign-off and refused signature, status change, user and study
creation) is recorded in the same
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
chain from that entry on; :func:`verify_audit` finds the first broken entry.

The chain covers the data, not only the log: every entry about a stored object (user,
group, study, plate, analysis, observation set, API token; see
:mod:`cytosafe.store.integrity`) records in ``details["covers"]`` the object's SHA-256 as
committed, and :func:`verify_audit` recomputes them all and names the first object that
no longer matches the last entry that covered it (``UPDATE measurements``, an edited
observation, a raised role, an un-signed analysis), and any object no entry covers.

Truncating the *tail* cannot be seen from the chain alone. It is found against a head
written down before: each sign-off writes the head to ``audit_heads`` (and appends it to
the store's heads file, outside the database, when one is set), and
``cytosafe audit head`` prints or exports it; :func:`verify_audit` checks that the chain
still reaches every stored head and every head it is given (``heads=``).

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
import re
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Delete, Update

from cytosafe.errors import CytoSafeError, InputError
from cytosafe.store import integrity as _integrity
from cytosafe.store.models import (
    Analysis,
    ApiToken,
    AuditEntry,
    AuditHead,
    GroupMember,
    Measurement,
    Plate,
    Study,
    User,
)

__all__ = [
    "ACTIONS",
    "GENESIS_HASH",
    "AuditBreak",
    "AuditError",
    "Readable",
    "audit_entries",
    "audit_problems",
    "canonical_json",
    "chain_heads",
    "entry_hash",
    "head",
    "parse_heads",
    "record",
    "record_baseline",
    "verify_audit",
]

#: What an entry can say was done. ``delete``: a stored object removed (a plate, with its
#: measurements). ``sign-refused``: a signature attempt refused (wrong password, another
#: user's name); it signs nothing, so unlike ``sign-off`` it writes no chain head.
ACTIONS = (
    "create",
    "import",
    "re-analysis",
    "edit",
    "delete",
    "status",
    "sign-off",
    "sign-refused",
    "exclude",
    "include",
    "baseline",
)
GENESIS_HASH = "0" * 64
_PENDING = "cytosafe_audit_pending"
#: ``session.info`` key of the heads written by the commit under way (for the heads file).
_HEADS = "cytosafe_audit_heads"
#: ``session.info`` key of the file each head written at a sign-off is appended to.
HEADS_FILE = "cytosafe_audit_heads_file"
#: Who a baseline entry is attributed to: the store itself, at its upgrade.
SYSTEM_ACTOR = "cytosafe"
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
    covers: Iterable[tuple[str, int]] = (),
) -> None:
    """Queue an audit entry; it is written, chained, when ``session`` commits.

    Parameters
    ----------
    session:
        The session holding the change being recorded.
    action:
        One of :data:`ACTIONS`.
    object_type, object_id:
        What was acted on (``"analysis"``, ``42``). An object of a kind the chain
        fingerprints (:data:`cytosafe.store.integrity.KINDS`) is covered by the entry.
    user:
        Who did it (a flushed :class:`User`).
    details:
        JSON-serialisable facts (settings, hashes, old and new values, the reason).
    covers:
        Other objects the change touched, as ``(kind, id)`` (an edited measurement's
        plate). At commit, ``details["covers"]`` records the SHA-256 of each covered
        object as committed (:func:`cytosafe.store.integrity.fingerprints`).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    covered = [(kind, int(number)) for kind, number in covers]
    if object_type in _integrity.KINDS and object_id is not None:
        covered.insert(0, (object_type, int(object_id)))
    session.info.setdefault(_PENDING, []).append(
        {
            "actor": user.username,
            "user_id": user.id,
            "action": action,
            "object_type": object_type,
            "object_id": None if object_id is None else str(object_id),
            "details": canonical_json(details or {}),
            "covers": covered,
        }
    )


def record_baseline(session: Session, reason: str) -> None:
    """Queue a ``baseline`` entry covering every object of the store (attributed to the
    store itself): what a store made before the data were fingerprinted gets at its
    upgrade, so that later changes behind the store's back are found."""
    session.info.setdefault(_PENDING, []).append(
        {
            "actor": SYSTEM_ACTOR,
            "user_id": None,
            "action": "baseline",
            "object_type": "store",
            "object_id": None,
            "details": canonical_json({"reason": reason}),
            "covers": "all",
        }
    )


def _lock_chain(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
    # SQLite: store write transactions begin IMMEDIATE, so this one is the only writer.


def _fingerprint_pending(session: Session, pending: list[dict]) -> None:
    """Replace each item's ``covers`` by the objects' fingerprints as about to be committed,
    merged into its details. Computed under the chain's lock, after the last flush, so the
    hash is the committed state (an object changed twice in one transaction has its final
    hash in both entries)."""
    wanted: dict[str, set[int] | None] = {}
    for item in pending:
        if item["covers"] == "all":
            wanted = dict.fromkeys(_integrity.KINDS)
            break
        for kind, number in item["covers"]:
            ids = wanted.setdefault(kind, set())
            if ids is not None:
                ids.add(number)
    hashes = {kind: _integrity.fingerprints(session, kind, ids) for kind, ids in wanted.items()}
    for item in pending:
        covers = item.pop("covers")
        if covers == "all":
            pairs = [(kind, number) for kind in _integrity.KINDS for number in hashes[kind]]
        else:
            pairs = covers
        if not pairs:
            continue
        details = json.loads(item["details"])
        details["covers"] = {
            _integrity.key(kind, number): hashes[kind].get(number) for kind, number in pairs
        }
        item["details"] = canonical_json(details)


def _write_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    session.flush()
    _lock_chain(session)
    _fingerprint_pending(session, pending)
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
    # Only what was signed writes a head: a refused attempt ("sign-refused", or a
    # "sign-off" entry of an older store whose outcome was "refused") signed nothing.
    signed = [
        item["object_id"]
        for item in pending
        if item["action"] == "sign-off" and '"outcome":"refused"' not in item["details"]
    ]
    if signed:
        # The head as this commit leaves it, written down beside the chain (append-only):
        # a later truncation of the tail no longer reaches it.
        reason = "sign-off of analysis " + ", ".join(map(str, signed))
        session.add(AuditHead(seq=seq, hash=prev, at=now, reason=reason))
        session.info[_HEADS] = [{"seq": seq, "hash": prev, "at": _utc_text(now), "reason": reason}]
    session.flush()


def _append_heads(session: Session) -> None:
    """After a commit that wrote a head: append it to the heads file, when one is set."""
    heads = session.info.pop(_HEADS, None)
    path = session.info.get(HEADS_FILE)
    if not heads or not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        for item in heads:
            fh.write(canonical_json(item) + "\n")


def _drop_pending(session: Session, *_: object) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_HEADS, None)


def _refuse_change(mapper: object, connection: object, target: AuditEntry) -> None:
    raise AuditError(
        f"audit entry {target.seq} cannot be changed or deleted: the log is append-only"
    )


def _refuse_bulk(state: Any) -> None:
    statement = state.statement
    if isinstance(statement, (Update, Delete)) and statement.table.name in (
        AuditEntry.__tablename__,
        AuditHead.__tablename__,
    ):
        raise AuditError("the audit log is append-only: UPDATE and DELETE are refused")


def install(session_class: type[Session]) -> None:
    """Attach the audit hooks to ``session_class`` (the store's sessions)."""
    event.listen(session_class, "before_commit", _write_pending)
    event.listen(session_class, "after_commit", _append_heads)
    event.listen(session_class, "after_rollback", _drop_pending)
    event.listen(session_class, "after_soft_rollback", _drop_pending)
    event.listen(session_class, "do_orm_execute", _refuse_bulk)


for _model in (AuditEntry, AuditHead):
    event.listen(_model, "before_update", _refuse_change)
    event.listen(_model, "before_delete", _refuse_change)


@dataclass(frozen=True)
class AuditBreak:
    """A place where the audit trail no longer vouches for the store, and why.

    ``kind`` is ``"chain"`` (entry ``seq`` is broken), ``"head"`` (the chain no longer
    reaches a head written down before: its tail was cut or rewritten), ``"data"`` (an
    object no longer matches the hash entry ``seq`` recorded) or ``"uncovered"`` (an
    object no entry covers: written behind the store's back). ``object`` names the object
    (``"plate:12"``) for the last two.
    """

    seq: int | None
    id: int | None
    reason: str
    kind: str = "chain"
    object: str | None = None

    def __str__(self) -> str:
        return f"audit entry {self.seq}: {self.reason}" if self.kind == "chain" else self.reason


def _entry_dict(e: AuditEntry) -> dict:
    return {
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


class _Scope:
    """What a non-admin ``viewer`` may read of the trail: what concerns the studies of
    their groups (or of no group, which every user sees, as the API's studies), their
    groups, and themselves (their account and tokens, and what they did)."""

    def __init__(self, session: Session, viewer: User, measurement_ids: Iterable[int] = ()):
        self.viewer_id = viewer.id
        self.groups = set(
            session.scalars(select(GroupMember.group_id).where(GroupMember.user_id == viewer.id))
        )
        self.studies = {
            sid
            for sid, gid in session.execute(select(Study.id, Study.group_id))
            if gid is None or gid in self.groups
        }
        self.tokens = set(session.scalars(select(ApiToken.id).where(ApiToken.user_id == viewer.id)))
        measurements: dict[int, int] = {}
        wanted = sorted(set(measurement_ids))
        for start in range(0, len(wanted), 1000):
            measurements.update(
                session.execute(
                    select(Measurement.id, Plate.study_id)
                    .join(Plate, Plate.id == Measurement.plate_id)
                    .where(Measurement.id.in_(wanted[start : start + 1000]))
                ).all()
            )
        self.study_of = {
            "study": lambda i: i,
            "observations": lambda i: i,
            "plate": dict(session.execute(select(Plate.id, Plate.study_id)).all()).get,
            "analysis": dict(session.execute(select(Analysis.id, Analysis.study_id)).all()).get,
            "measurement": measurements.get,
        }

    def sees(self, object_type: str, object_id: str | None, actor_id: int | None = None) -> bool:
        if actor_id is not None and actor_id == self.viewer_id:
            return True
        if object_id is None or not object_id.isdigit():
            return False  # the baseline and other whole-store entries: an admin's
        number = int(object_id)
        if object_type in self.study_of:
            return self.study_of[object_type](number) in self.studies
        if object_type == "user":
            return number == self.viewer_id
        if object_type == "api_token":
            return number in self.tokens
        if object_type == "group":
            return number in self.groups
        return False


def _viewer(session: Session, visible_to: User | None) -> User | None:
    """The non-admin whose view is scoped (None: everything is shown)."""
    if visible_to is None:
        return None
    viewer = session.get(User, visible_to.id)
    if viewer is None:
        raise InputError(f"unknown user {visible_to.id}", field="user")
    return None if viewer.role == "admin" else viewer


def audit_entries(
    store: Readable,
    *,
    object_type: str | None = None,
    object_id: object = None,
    visible_to: User | None = None,
) -> list[dict]:
    """The audit entries (oldest first), optionally of one object, as plain dicts.

    ``visible_to``: only the entries that user may read. An admin reads all; anyone else
    reads the entries about the studies of their groups (and of no group), about their
    groups, and their own (about their account and tokens, or done by them): a study
    director of one group does not see another group's studies, files or users.
    """
    with store.reader() as session:
        query = select(AuditEntry).order_by(AuditEntry.seq)
        if object_type is not None:
            query = query.where(AuditEntry.object_type == object_type)
        if object_id is not None:
            query = query.where(AuditEntry.object_id == str(object_id))
        entries = list(session.scalars(query))
        viewer = _viewer(session, visible_to)
        if viewer is not None:
            measured = [int(e.object_id) for e in entries if e.object_type == "measurement"]
            scope = _Scope(session, viewer, measured)
            entries = [e for e in entries if scope.sees(e.object_type, e.object_id, e.user_id)]
        return [_entry_dict(e) for e in entries]


_HEX = re.compile(r"^[0-9a-f]{64}$")


def parse_heads(text: str, *, source: str | None = None) -> list[tuple[int | None, str]]:
    """The chain heads written in ``text``: one per line, as ``cytosafe audit head``
    prints them (``SEQ HASH``), as ``SEQ:HASH``, as a bare hash, or as a JSON object with
    ``seq`` and ``hash`` (a line of a heads file).

    Raises
    ------
    InputError
        A line that is none of these (naming the line of ``source``).
    """
    heads = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        seq: int | None = None
        if line.startswith("{"):
            try:
                item = json.loads(line)
                seq, digest = item.get("seq"), str(item["hash"]).lower()
            except (ValueError, KeyError, TypeError, AttributeError):
                digest = ""
        else:
            parts = re.split(r"[\s:]+", line)
            digest = parts[-1].lower()
            if len(parts) == 2 and parts[0].isdigit():
                seq = int(parts[0])
            elif len(parts) != 1:
                digest = ""
        if not _HEX.match(digest) or not (seq is None or isinstance(seq, int)):
            raise InputError(
                "not a chain head",
                file=source,
                row=number,
                field="head",
                expected="SEQ HASH, SEQ:HASH, a 64-digit hex hash, or a JSON line with seq and hash",
            )
        heads.append((seq, digest))
    if not heads:
        raise InputError("no chain head given", file=source, field="head", expected="SEQ HASH")
    return heads


def _check_head(
    session: Session, seq: int | None, digest: str, last: int, origin: str
) -> AuditBreak | None:
    if digest == GENESIS_HASH and seq in (None, 0):
        return None  # the head of an empty chain: every chain starts there
    if seq is None:
        found = session.scalar(select(AuditEntry.seq).where(AuditEntry.hash == digest))
        if found is not None:
            return None
        return AuditBreak(
            None,
            None,
            f"the chain no longer reaches the head {digest} ({origin}): it now ends at "
            f"entry {last}; entries were removed from its tail or rewritten",
            kind="head",
        )
    found = session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == seq))
    if found == digest:
        return None
    if found is None:
        return AuditBreak(
            seq,
            None,
            f"the chain ends at entry {last} but reached entry {seq} (hash {digest}, "
            f"{origin}): entries {last + 1} to {seq} were removed from its tail",
            kind="head",
        )
    return AuditBreak(
        seq,
        None,
        f"entry {seq} is not the head written down ({digest}, {origin}): the chain was "
        "rewritten from there on",
        kind="head",
    )


def audit_problems(
    store: Readable,
    *,
    heads: Iterable[tuple[int | None, str]] = (),
    visible_to: User | None = None,
) -> list[AuditBreak]:
    """Everything the audit trail no longer vouches for, most fundamental first; empty
    when the store is intact.

    1. The chain: the first entry whose ``seq`` is not the next number (an entry was
       deleted or inserted), whose ``prev_hash`` is not the previous entry's hash, or
       whose ``hash`` is not the hash of its own content (a field was edited).
    2. The heads: every head written at a sign-off (``audit_heads``) and every one of
       ``heads`` (``(seq or None, hash)``, see :func:`parse_heads`) must still be in
       the chain; otherwise its tail was cut (or rewritten).
    3. The data: every object an entry covered must still have the fingerprint the last
       such entry recorded (ordered by that entry), and every object of a fingerprinted
       kind must be covered by some entry.

    ``visible_to``: a non-admin is told that an object outside their groups changed, not
    which one (its name would tell them another group's study codes).
    """
    problems: list[AuditBreak] = []
    covered: dict[str, tuple[int, int, str | None, str]] = {}
    expected_seq, prev = 1, GENESIS_HASH
    with store.reader() as session:
        rows = session.scalars(
            select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=1000)
        )
        for entry in rows:
            if entry.seq != expected_seq:
                problems.append(
                    AuditBreak(
                        entry.seq,
                        entry.id,
                        f"sequence number is {entry.seq}, expected {expected_seq} "
                        "(an entry is missing)",
                    )
                )
                break
            if entry.prev_hash != prev:
                problems.append(
                    AuditBreak(
                        entry.seq, entry.id, "prev_hash does not match the previous entry's hash"
                    )
                )
                break
            if entry_hash(entry) != entry.hash:
                problems.append(
                    AuditBreak(
                        entry.seq,
                        entry.id,
                        "content does not match its hash (the entry was edited)",
                    )
                )
                break
            if '"covers"' in entry.details:
                for name, digest in json.loads(entry.details).get("covers", {}).items():
                    covered[name] = (entry.seq, entry.id, digest, entry.action)
            expected_seq, prev = expected_seq + 1, entry.hash
        last = expected_seq - 1
        written = session.execute(
            select(AuditHead.seq, AuditHead.hash, AuditHead.reason).order_by(AuditHead.seq)
        ).all()
        for seq, digest, reason in written:
            found = _check_head(session, seq, digest, last, f"written at the {reason}")
            if found is not None:
                problems.append(found)
                break
        for seq, digest in heads:
            found = _check_head(session, seq, digest.lower(), last, "given")
            if found is not None:
                problems.append(found)
        if problems:
            return problems  # the data are judged against a chain that holds
        problems.extend(_data_problems(session, covered))
        viewer = _viewer(session, visible_to)
        if viewer is not None and problems:
            scope = _Scope(session, viewer)
            problems = [_redacted(p, scope) for p in problems]
    return problems


def _redacted(problem: AuditBreak, scope: _Scope) -> AuditBreak:
    if problem.object is None:
        return problem
    kind, number = _integrity.parse_key(problem.object)
    if scope.sees(kind, str(number)):
        return problem
    return AuditBreak(
        problem.seq,
        problem.id,
        "an object outside your groups no longer matches the audit trail (an admin sees which)",
        kind=problem.kind,
    )


def _data_problems(
    session: Session, covered: dict[str, tuple[int, int, str | None, str]]
) -> list[AuditBreak]:
    by_kind: dict[str, dict[int, tuple[int, int, str | None, str]]] = {}
    for name, value in covered.items():
        kind, number = _integrity.parse_key(name)
        by_kind.setdefault(kind, {})[number] = value
    changed, uncovered = [], []
    for kind in _integrity.KINDS:
        recorded = by_kind.get(kind, {})
        now = _integrity.fingerprints(session, kind)
        for number, (seq, entry_id, digest, action) in recorded.items():
            if now.get(number) == digest:
                continue
            name = _integrity.describe(session, kind, number)
            if digest is None:
                what = "exists, but was absent"
            elif number not in now:
                what = "was deleted"
            else:
                what = f"{_integrity.CHANGED[kind]} changed"
            changed.append(
                AuditBreak(
                    seq,
                    entry_id,
                    f"{name}: {what} since audit entry {seq} ({action})",
                    kind="data",
                    object=_integrity.key(kind, number),
                )
            )
        for number in sorted(set(now) - set(recorded)):
            name = _integrity.describe(session, kind, number)
            uncovered.append(
                AuditBreak(
                    None,
                    None,
                    f"{name}: not covered by any audit entry (written behind the store's back)",
                    kind="uncovered",
                    object=_integrity.key(kind, number),
                )
            )
    changed.sort(key=lambda b: (b.seq, b.object))
    return changed + uncovered


def verify_audit(
    store: Readable,
    *,
    heads: Iterable[tuple[int | None, str]] = (),
    visible_to: User | None = None,
) -> AuditBreak | None:
    """The first thing the audit trail no longer vouches for, or None when the chain
    holds, reaches every head, and every object matches its recorded fingerprint.

    See :func:`audit_problems` for what is checked, in which order; ``heads`` are chain
    heads written down before (``cytosafe audit head``), as ``(seq or None, hash)``;
    ``visible_to`` as there.
    """
    problems = audit_problems(store, heads=heads, visible_to=visible_to)
    return problems[0] if problems else None


def head(store: Readable) -> tuple[int, str]:
    """Number of entries and the hash of the last one (:data:`GENESIS_HASH` when empty)."""
    with store.reader() as session:
        last = session.execute(
            select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
        ).first()
    return (last.seq, last.hash) if last else (0, GENESIS_HASH)


def chain_heads(store: Readable) -> list[dict]:
    """The heads written down at each sign-off (``seq``, ``hash``, ``at``, ``reason``)."""
    with store.reader() as session:
        return [
            {"seq": h.seq, "hash": h.hash, "at": _utc_text(h.at), "reason": h.reason}
            for h in session.scalars(select(AuditHead).order_by(AuditHead.seq))
        ]
