"""Analyses: versioned runs with their result tables and report, and their sign-off.

An analysis is stored in one transaction with its tables, its report, the plates it
read and its audit entry, or, when anything fails (bad input, a crash, a lost
connection), none of them. Analyses are versioned per study and kind; a re-analysis
(``previous=``) is a new version; a signed-off analysis can no longer change: the ORM
refuses it here (and the database triggers of the first migration refuse it too).
Background jobs are analyses created ``queued`` and finished by
:func:`complete_analysis` (see :mod:`cytosafe.store.jobs` for their progress).

Objects returned are detached snapshots: their columns are loaded, relationships other
than those filled by the call (``Analysis.tables``, ``Analysis.plates``) are not.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import event, func, inspect, select
from sqlalchemy.orm import Session, undefer

from cytosafe.errors import InputError
from cytosafe.schema.measurements import validate_measurements
from cytosafe.store._session import (
    ANALYST_ROLES,
    SIGN_OFF_ROLES,
    SignedOffError,
    find_analysis,
    find_study,
    find_user,
    reading,
    refuse_signed,
    require_role,
    transaction,
)
from cytosafe.store.audit import canonical_json, record
from cytosafe.store.database import Store
from cytosafe.store.models import (
    ANALYSIS_KINDS,
    Analysis,
    AnalysisTable,
    Grade,
    Report,
    Study,
    User,
)
from cytosafe.store.studies import store_plates
from cytosafe.store.tables import decode_table, encode_table

__all__ = [
    "add_report",
    "complete_analysis",
    "file_hashes",
    "import_analysis",
    "load_table",
    "sign_off",
    "verify_tables",
]


def file_hashes(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Name, size and SHA-256 of each existing file (others are listed without a hash)."""
    out = []
    for path in paths:
        p = Path(path)
        if p.is_file():
            digest = hashlib.sha256()
            with p.open("rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(chunk)
            out.append({"name": str(path), "bytes": p.stat().st_size, "sha256": digest.hexdigest()})
        else:
            out.append({"name": str(path), "bytes": None, "sha256": None})
    return out


def _json_settings(settings: Mapping[str, Any]) -> dict:
    try:
        return json.loads(canonical_json(dict(settings)))
    except (TypeError, ValueError) as exc:
        raise InputError(f"settings cannot be stored as JSON: {exc}", field="settings") from None


def import_analysis(
    target: Store | Session,
    kind: str,
    tables: Mapping[str, pd.DataFrame],
    *,
    study: Study | str,
    user: User | str,
    settings: Mapping[str, Any],
    inputs: list[dict[str, Any]] | None = None,
    measurements: pd.DataFrame | None = None,
    report: bytes | str | None = None,
    previous: Analysis | int | None = None,
    source_analysis: Analysis | int | None = None,
    status: str = "completed",
    note: str | None = None,
) -> Analysis:
    """Store one analysis run with its result tables, in one transaction.

    Parameters
    ----------
    kind:
        One of :data:`~cytosafe.store.models.ANALYSIS_KINDS`.
    tables:
        Result tables by name (``concentrations``, ``qc``, ``hazard_calls``, ...).
    settings:
        The exact settings of the run (JSON-serialisable); ``cytosafe_version`` in it, when
        present, is the version that ran it, else the running one is recorded.
    inputs:
        Input files (see :func:`file_hashes`).
    measurements:
        The tidy measurement table the run read: its plates are stored (or matched) and
        linked to the analysis.
    report:
        The HTML report (text or bytes).
    previous:
        The analysis this one re-analyses (same study and kind): recorded as a
        ``re-analysis``; the previous version stays as it is.
    source_analysis:
        The analysis whose tables this one read (hazard reads a quantification).
    """
    from cytosafe import __version__

    if kind not in ANALYSIS_KINDS:
        raise InputError(
            f"unknown analysis kind '{kind}'", field="kind", expected=" | ".join(ANALYSIS_KINDS)
        )
    if status not in ("queued", "running", "completed", "failed"):
        raise InputError(f"an analysis cannot start as '{status}'", field="status")
    clean = _json_settings(settings)
    encoded = {str(name): encode_table(str(name), frame) for name, frame in tables.items()}
    table = None if measurements is None else validate_measurements(measurements)
    with transaction(target) as session:
        actor = find_user(session, user)
        require_role(actor, ANALYST_ROLES, "run analyses")
        st = find_study(session, study)
        prev = None
        if previous is not None:
            prev = session.get(Analysis, getattr(previous, "id", previous))
            if prev is None or prev.study_id != st.id or prev.kind != kind:
                raise InputError(
                    f"analysis {getattr(previous, 'id', previous)} is not a {kind} analysis of study '{st.code}'",
                    field="previous",
                )
        source_id = getattr(source_analysis, "id", source_analysis)
        if source_id is not None and session.get(Analysis, source_id) is None:
            raise InputError(f"no analysis {source_id}", field="source_analysis")
        plates = [] if table is None else store_plates(session, table, st, actor)
        version = 1 + (
            session.scalar(
                select(func.max(Analysis.version)).where(
                    Analysis.study_id == st.id, Analysis.kind == kind
                )
            )
            or 0
        )
        analysis = Analysis(
            study_id=st.id,
            kind=kind,
            version=version,
            status=status,
            settings=clean,
            cytosafe_version=str(clean.get("cytosafe_version") or __version__),
            inputs=inputs or [],
            previous_id=None if prev is None else prev.id,
            source_analysis_id=source_id,
            note=note,
            created_by_id=actor.id,
            plates=plates,
        )
        session.add(analysis)
        session.flush()
        for name, enc in encoded.items():
            analysis.tables.append(
                AnalysisTable(
                    analysis_id=analysis.id,
                    name=name,
                    columns=enc.columns,
                    n_rows=enc.n_rows,
                    sha256=enc.sha256,
                    content=enc.content,
                )
            )
        report_sha = None
        if report is not None:
            report_sha = _add_report(session, analysis, report, "report.html").sha256
        session.flush()
        record(
            session,
            "import" if prev is None else "re-analysis",
            "analysis",
            analysis.id,
            user=actor,
            details={
                "study": st.code,
                "kind": kind,
                "version": version,
                "status": status,
                "previous": None if prev is None else prev.id,
                "source_analysis": source_id,
                "settings_sha256": hashlib.sha256(canonical_json(clean).encode()).hexdigest(),
                "cytosafe_version": analysis.cytosafe_version,
                "inputs": inputs or [],
                "plates": [p.code for p in plates],
                "tables": {n: e.sha256 for n, e in sorted(encoded.items())},
                "report_sha256": report_sha,
            },
        )
        return analysis


def complete_analysis(
    target: Store | Session,
    analysis: Analysis | int,
    tables: Mapping[str, pd.DataFrame],
    *,
    user: User | str,
    measurements: pd.DataFrame | None = None,
    report: bytes | str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Analysis:
    """Finish a ``queued`` or ``running`` analysis (a background job): store its result
    tables (and the plates it read, and its report) and mark it ``completed``, in one
    transaction.

    ``settings``, when given, are the settings the run recorded once it had run (the
    fitted model's formula, the potency settings, ...); they replace those it was queued
    with, and the audit entry records their SHA-256.
    """
    encoded = {str(name): encode_table(str(name), frame) for name, frame in tables.items()}
    table = None if measurements is None else validate_measurements(measurements)
    clean = None if settings is None else _json_settings(settings)
    with transaction(target) as session:
        actor = find_user(session, user)
        require_role(actor, ANALYST_ROLES, "run analyses")
        row = find_analysis(session, analysis, lock=True)
        refuse_signed(row, "complete it")
        if row.status not in ("queued", "running"):
            raise InputError(
                f"analysis {row.id} is {row.status}", field="status", expected="queued | running"
            )
        clash = sorted(set(encoded) & {t.name for t in row.tables})
        if clash:
            raise InputError(f"analysis {row.id} already has table '{clash[0]}'", field="tables")
        if table is not None:
            study = session.get(Study, row.study_id)
            for plate in store_plates(session, table, study, actor):
                if plate not in row.plates:
                    row.plates.append(plate)
        for name, enc in encoded.items():
            row.tables.append(
                AnalysisTable(
                    analysis_id=row.id,
                    name=name,
                    columns=enc.columns,
                    n_rows=enc.n_rows,
                    sha256=enc.sha256,
                    content=enc.content,
                )
            )
        report_sha = (
            None if report is None else _add_report(session, row, report, "report.html").sha256
        )
        if clean is not None:
            row.settings = clean
        old, row.status = row.status, "completed"
        row.progress, row.progress_message = 1.0, "completed"
        row.heartbeat_at = dt.datetime.now(dt.UTC)
        session.flush()
        details = {
            "old": old,
            "new": "completed",
            "plates": [p.code for p in row.plates],
            "tables": {n: e.sha256 for n, e in sorted(encoded.items())},
            "report_sha256": report_sha,
        }
        if clean is not None:
            details["settings_sha256"] = hashlib.sha256(canonical_json(clean).encode()).hexdigest()
        record(session, "status", "analysis", row.id, user=actor, details=details)
        return row


def _add_report(session: Session, analysis: Analysis, content: bytes | str, name: str) -> Report:
    data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    report = Report(
        analysis_id=analysis.id,
        name=name,
        media_type="text/html",
        sha256=hashlib.sha256(data).hexdigest(),
        content=data,
    )
    session.add(report)
    return report


def add_report(
    target: Store | Session,
    analysis: Analysis | int,
    content: bytes | str,
    *,
    user: User | str,
    name: str = "report.html",
) -> Report:
    """Attach a rendered report to an analysis that is not signed off."""
    with transaction(target) as session:
        actor = find_user(session, user)
        row = find_analysis(session, analysis, lock=True)
        refuse_signed(row, "add a report")
        report = _add_report(session, row, content, name)
        session.flush()
        record(
            session,
            "edit",
            "analysis",
            row.id,
            user=actor,
            details={"report": name, "sha256": report.sha256},
        )
        return report


def sign_off(
    target: Store | Session,
    analysis: Analysis | int,
    *,
    user: User | str,
    meaning: str = "approved",
) -> Analysis:
    """Make a completed analysis final (study director or admin), without an electronic
    signature: for programs that act for a user they have already authenticated.

    People sign with :func:`cytosafe.store.signatures.sign`, which asks for the password
    again, records the signature (its meaning, comment and the SHA-256 of what was
    signed) and makes the analysis final at its "approved" signature; the web app and
    ``cytosafe store sign`` call that. ``meaning`` here is recorded in the audit entry.
    """
    with transaction(target) as session:
        actor = find_user(session, user)
        require_role(actor, SIGN_OFF_ROLES, "sign off analyses")
        row = find_analysis(session, analysis, lock=True)
        tables = finalise(row, actor)
        session.flush()
        record(
            session,
            "sign-off",
            "analysis",
            row.id,
            user=actor,
            details={
                "kind": row.kind,
                "version": row.version,
                "meaning": meaning,
                "tables": tables,
            },
        )
        return row


def finalise(row: Analysis, actor: User) -> dict[str, str]:
    """Mark ``row`` (a completed analysis, locked by the caller) signed off by ``actor``,
    now; the SHA-256 of its tables by name. The caller records the audit entry.

    Raises
    ------
    SignedOffError
        It is already signed off.
    InputError
        It is not completed.
    """
    refuse_signed(row, "sign it off again")
    if row.status != "completed":
        raise InputError(
            f"analysis {row.id} is {row.status}",
            field="status",
            expected="a completed analysis",
        )
    tables = {t.name: t.sha256 for t in row.tables}
    row.status = "signed_off"
    row.signed_off_by_id = actor.id
    row.signed_off_at = dt.datetime.now(dt.UTC)
    return tables


def load_table(target: Store | Session, analysis: Analysis | int, name: str) -> pd.DataFrame:
    """One result table of an analysis, as it was stored."""
    with reading(target) as session:
        row = session.scalar(
            select(AnalysisTable).where(
                AnalysisTable.analysis_id == getattr(analysis, "id", analysis),
                AnalysisTable.name == name,
            )
        )
        if row is None:
            raise InputError(
                f"analysis {getattr(analysis, 'id', analysis)} has no table '{name}'", field="table"
            )
        return decode_table(row.content)


def verify_tables(target: Store | Session) -> list[str]:
    """Result tables and reports whose bytes no longer match their recorded SHA-256."""
    bad = []
    with reading(target) as session:
        for row in session.scalars(
            select(AnalysisTable)
            .options(undefer(AnalysisTable.content))
            .execution_options(yield_per=50)
        ):
            if hashlib.sha256(row.content).hexdigest() != row.sha256:
                bad.append(f"analysis {row.analysis_id} table '{row.name}'")
        for row in session.scalars(
            select(Report).options(undefer(Report.content)).execution_options(yield_per=50)
        ):
            if hashlib.sha256(row.content).hexdigest() != row.sha256:
                bad.append(f"analysis {row.analysis_id} report '{row.name}'")
    return bad


# The ORM refuses changes to signed-off analyses (the database triggers do too).


def _guard_analysis(mapper: Any, connection: Any, target: Analysis) -> None:
    history = inspect(target).attrs.status.history
    old = history.deleted[0] if history.deleted else target.status
    if old == "signed_off":
        raise SignedOffError(
            f"analysis {target.id} is signed off and cannot be changed",
            field="analysis",
            expected="a re-analysis (a new version) instead",
        )


def _guard_part(mapper: Any, connection: Any, target: Any) -> None:
    status = connection.execute(
        select(Analysis.status).where(Analysis.id == target.analysis_id)
    ).scalar()
    if status == "signed_off":
        raise SignedOffError(
            f"analysis {target.analysis_id} is signed off: its {mapper.class_.__name__} "
            "rows cannot change",
            field="analysis",
            expected="a re-analysis (a new version) instead",
        )


event.listen(Analysis, "before_update", _guard_analysis)
event.listen(Analysis, "before_delete", _guard_analysis)
for _part in (AnalysisTable, Report, Grade):
    for _when in ("before_insert", "before_update", "before_delete"):
        event.listen(_part, _when, _guard_part)
