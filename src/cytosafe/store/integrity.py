"""Fingerprints of the stored objects the audit trail vouches for.

The hash chain of :mod:`cytosafe.store.audit` makes the *log* tamper-evident; these
fingerprints make the *data* it describes tamper-evident too. Every audit entry about an
object records, in its ``details["covers"]``, the SHA-256 of that object as it was
committed; :func:`cytosafe.store.verify_audit` recomputes every object's fingerprint and
names the first one that no longer matches the last entry that covered it, and every
object no entry covers (written behind the store's back).

An object is one of :data:`KINDS`; its fingerprint is the SHA-256 of compact, key-sorted
JSON lines (:func:`~cytosafe.store.audit.canonical_json`) of what it holds, read back from
the database (so the hash recorded at commit and the hash recomputed later go through the
same code and the same database types):

- ``user``: user name, display name, role, active, password hash (a role raised or a
  password replaced in SQL is found);
- ``group``: its name and its members;
- ``study``: code, title, kind, group, creator, and its design (``Study.design``, the web
  form's study tables, revision 0006) when it has one: a study without a design hashes as
  it did before that revision, so the fingerprints recorded by an older store still match
  after its upgrade;
- ``plate``: the plate row and every stored field of every measurement, ``exclude`` and
  ``exclusion_reason`` included (``UPDATE measurements`` is found);
- ``analysis``: its record (status and sign-off included, not the progress of a running
  job, which is not audited), the plates it read, every result table and report (with
  the SHA-256 of their bytes as stored now) and its grades;
- ``observations``: every observation of a clinical study's patients (the key is the
  study);
- ``api_token``: whose, its digest, its expiry and revocation;
- ``signature``: an electronic signature (analysis, signer, meaning, comment, time and
  the SHA-256 of what was signed; :mod:`cytosafe.store.signatures`).

Times are compared as UTC ISO 8601 text (SQLite gives back naive times, PostgreSQL aware
ones). This is the "data integrity" expectation of 21 CFR Part 11 §11.10(a) and (e) and of
EU GMP Annex 11 §7 and §9: altered records are detectable, and changes are recorded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from cytosafe.store.models import (
    Analysis,
    AnalysisPlate,
    AnalysisTable,
    ApiToken,
    Grade,
    Group,
    GroupMember,
    Measurement,
    Observation,
    Patient,
    Plate,
    Report,
    Signature,
    Study,
    User,
)

__all__ = ["KINDS", "all_ids", "describe", "fingerprints", "key", "parse_key"]

#: The kinds of object whose fingerprint the audit trail records.
KINDS = (
    "user",
    "group",
    "study",
    "plate",
    "analysis",
    "observations",
    "api_token",
    "signature",
)
#: What a changed object of each kind had changed (the wording of verify's message).
CHANGED = {
    "user": "account (role, password or status)",
    "group": "members",
    "study": "record or design",
    "plate": "measurements",
    "analysis": "record, sign-off, tables or report",
    "observations": "observations",
    "api_token": "token",
    "signature": "signature (signer, meaning, comment, time or what was signed)",
}
_BATCH = 500


def key(kind: str, object_id: int) -> str:
    """The name of an object in ``details["covers"]``: ``"plate:12"``."""
    return f"{kind}:{int(object_id)}"


def parse_key(text: str) -> tuple[str, int]:
    kind, _, number = text.partition(":")
    return kind, int(number)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        at = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        return at.isoformat(timespec="microseconds")
    if isinstance(value, bytes | memoryview):
        return hashlib.sha256(bytes(value)).hexdigest()
    return value


def _line(values: Iterable[Any]) -> bytes:
    text = json.dumps(
        [_plain(v) for v in values], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return text.encode("utf-8") + b"\n"


def _stream(session: Session, query: Select) -> Iterator[Any]:
    return iter(session.execute(query.execution_options(yield_per=_BATCH)))


def _group_lines(digests: dict[int, Any], section: bytes, session: Session, query: Select) -> None:
    """Feed each row of ``query`` (its first column the owner's id) to its owner's hash."""
    for row in _stream(session, query):
        digest = digests.get(row[0])
        if digest is not None:
            digest.update(section + _line(row[1:]))


def _where(query: Select, column: Any, ids: list[int] | None) -> Select:
    return query if ids is None else query.where(column.in_(ids))


def _owners(session: Session, query: Select) -> dict[int, Any]:
    """One running hash per object that exists, seeded with its own row."""
    return {row[0]: hashlib.sha256(_line(row)) for row in _stream(session, query)}


def fingerprints(session: Session, kind: str, ids: Iterable[int] | None = None) -> dict[int, str]:
    """SHA-256 of each object of ``kind`` (those ``ids``, or all); an object that does not
    exist has no entry."""
    id_list = None if ids is None else sorted({int(i) for i in ids})
    if id_list is not None and not id_list:
        return {}
    if kind == "user":
        query = select(
            User.id, User.username, User.display_name, User.role, User.active, User.password_hash
        )
        digests = _owners(session, _where(query.order_by(User.id), User.id, id_list))
    elif kind == "group":
        query = _where(select(Group.id, Group.name).order_by(Group.id), Group.id, id_list)
        digests = _owners(session, query)
        members = select(GroupMember.group_id, GroupMember.user_id).order_by(
            GroupMember.group_id, GroupMember.user_id
        )
        _group_lines(digests, b"member ", session, _where(members, GroupMember.group_id, id_list))
    elif kind == "study":
        query = select(
            Study.id, Study.code, Study.title, Study.kind, Study.group_id, Study.created_by_id
        ).order_by(Study.id)
        digests = _owners(session, _where(query, Study.id, id_list))
        # Only a design that is there: a NULL design (every study of a store made before
        # revision 0006) adds nothing, so its recorded fingerprint is unchanged.
        designs = select(Study.id, Study.design).order_by(Study.id)
        for number, design in _stream(session, _where(designs, Study.id, id_list)):
            if design is not None and number in digests:
                digests[number].update(b"design " + _line([design]))
    elif kind == "plate":
        query = select(
            Plate.id, Plate.study_id, Plate.code, Plate.source_file, Plate.measurements_sha256
        ).order_by(Plate.id)
        digests = _owners(session, _where(query, Plate.id, id_list))
        columns = [c for c in Measurement.__table__.columns if c.name not in ("plate_id",)]
        rows = select(Measurement.plate_id, *columns).order_by(Measurement.plate_id, Measurement.id)
        _group_lines(digests, b"measurement ", session, _where(rows, Measurement.plate_id, id_list))
    elif kind == "analysis":
        # Not progress, progress_message nor heartbeat_at: a running job's pulse, not audited.
        query = select(
            Analysis.id,
            Analysis.study_id,
            Analysis.kind,
            Analysis.version,
            Analysis.status,
            Analysis.settings,
            Analysis.cytosafe_version,
            Analysis.inputs,
            Analysis.previous_id,
            Analysis.source_analysis_id,
            Analysis.note,
            Analysis.created_by_id,
            Analysis.signed_off_by_id,
            Analysis.signed_off_at,
        ).order_by(Analysis.id)
        digests = _owners(session, _where(query, Analysis.id, id_list))
        plates = select(AnalysisPlate.analysis_id, AnalysisPlate.plate_id).order_by(
            AnalysisPlate.analysis_id, AnalysisPlate.plate_id
        )
        _group_lines(
            digests, b"plate ", session, _where(plates, AnalysisPlate.analysis_id, id_list)
        )
        tables = select(
            AnalysisTable.analysis_id,
            AnalysisTable.name,
            AnalysisTable.format,
            AnalysisTable.columns,
            AnalysisTable.n_rows,
            AnalysisTable.sha256,
            AnalysisTable.content,  # hashed: the bytes as they are now
        ).order_by(AnalysisTable.analysis_id, AnalysisTable.name)
        _group_lines(
            digests, b"table ", session, _where(tables, AnalysisTable.analysis_id, id_list)
        )
        reports = select(
            Report.analysis_id,
            Report.id,
            Report.name,
            Report.media_type,
            Report.sha256,
            Report.content,
        ).order_by(Report.analysis_id, Report.id)
        _group_lines(digests, b"report ", session, _where(reports, Report.analysis_id, id_list))
        grades = select(
            Grade.analysis_id,
            Grade.id,
            Grade.patient_id,
            Grade.time,
            Grade.scale,
            Grade.grade,
            Grade.criterion,
        ).order_by(Grade.analysis_id, Grade.id)
        _group_lines(digests, b"grade ", session, _where(grades, Grade.analysis_id, id_list))
    elif kind == "observations":
        # The observation set of a study: one object per study that has observations.
        query = (
            select(
                Patient.study_id,
                Observation.id,
                Patient.code,
                Observation.time,
                Observation.item,
                Observation.value,
                Observation.unit,
                Observation.source_file,
                Observation.source_row,
            )
            .join(Patient, Patient.id == Observation.patient_id)
            .order_by(Patient.study_id, Observation.id)
        )
        digests: dict[int, Any] = {}
        for row in _stream(session, _where(query, Patient.study_id, id_list)):
            digests.setdefault(row[0], hashlib.sha256(b"observations\n")).update(_line(row[1:]))
    elif kind == "api_token":
        query = select(
            ApiToken.id,
            ApiToken.user_id,
            ApiToken.token_sha256,
            ApiToken.name,
            ApiToken.expires_at,
            ApiToken.revoked_at,
        ).order_by(ApiToken.id)
        digests = _owners(session, _where(query, ApiToken.id, id_list))
    elif kind == "signature":
        query = select(
            Signature.id,
            Signature.analysis_id,
            Signature.user_id,
            Signature.meaning,
            Signature.comment,
            Signature.signed_at,
            Signature.signed_sha256,
        ).order_by(Signature.id)
        digests = _owners(session, _where(query, Signature.id, id_list))
    else:
        raise ValueError(f"unknown kind of object {kind!r}")
    return {i: d.hexdigest() for i, d in digests.items()}


def all_ids(session: Session, kind: str) -> set[int]:
    """The ids of every object of ``kind`` in the store."""
    column = {
        "user": User.id,
        "group": Group.id,
        "study": Study.id,
        "plate": Plate.id,
        "analysis": Analysis.id,
        "api_token": ApiToken.id,
        "signature": Signature.id,
    }.get(kind)
    if kind == "observations":
        query = (
            select(Patient.study_id)
            .join(Observation, Observation.patient_id == Patient.id)
            .group_by(Patient.study_id)
        )
        return set(session.scalars(query))
    if column is None:
        raise ValueError(f"unknown kind of object {kind!r}")
    return set(session.scalars(select(column)))


def describe(session: Session, kind: str, object_id: int) -> str:
    """The object as a person names it: ``plate MSD-01 of study CRA-EX-001``."""
    if kind == "plate":
        row = session.execute(
            select(Plate.code, Study.code)
            .join(Study, Study.id == Plate.study_id)
            .where(Plate.id == object_id)
        ).first()
        return f"plate {row[0]} of study {row[1]}" if row else f"plate {object_id}"
    if kind == "analysis":
        row = session.execute(
            select(Analysis.kind, Analysis.version, Study.code)
            .join(Study, Study.id == Analysis.study_id)
            .where(Analysis.id == object_id)
        ).first()
        if row:
            return f"analysis {object_id} ({row[0]} v{row[1]} of study {row[2]})"
        return f"analysis {object_id}"
    if kind in ("study", "observations"):
        code = session.scalar(select(Study.code).where(Study.id == object_id))
        name = f"study {code}" if code else f"study {object_id}"
        return name if kind == "study" else f"the observations of {name}"
    if kind == "user":
        name = session.scalar(select(User.username).where(User.id == object_id))
        return f"user '{name}'" if name else f"user {object_id}"
    if kind == "group":
        name = session.scalar(select(Group.name).where(Group.id == object_id))
        return f"group '{name}'" if name else f"group {object_id}"
    if kind == "api_token":
        name = session.scalar(
            select(User.username)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.id == object_id)
        )
        return f"API token {object_id}" + (f" of user '{name}'" if name else "")
    if kind == "signature":
        row = session.execute(
            select(Signature.meaning, Signature.analysis_id, User.username)
            .join(User, User.id == Signature.user_id)
            .where(Signature.id == object_id)
        ).first()
        if row:
            return f"signature {object_id} ({row[0]}) of analysis {row[1]} by '{row[2]}'"
        return f"signature {object_id}"
    return f"{kind} {object_id}"
