"""Background jobs in the store: status, progress, heartbeat, and recovery after a crash.

A job is an analysis created ``queued`` (:func:`~cytosafe.store.import_analysis` with
``status="queued"``), moved along ``queued -> running -> completed | failed``
(:func:`set_status`; :func:`~cytosafe.store.complete_analysis` stores its tables and
completes it). Its progress and a heartbeat are written to the analysis row
(:func:`report_progress`, :func:`beat`), so every server process answers alike; a job
whose server stopped is failed, with the reason, by :func:`recover_interrupted`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cytosafe.errors import InputError
from cytosafe.store._session import aware, find_analysis, find_user, refuse_signed, transaction
from cytosafe.store.audit import record
from cytosafe.store.database import Store
from cytosafe.store.models import Analysis, User

__all__ = ["beat", "recover_interrupted", "report_progress", "set_status"]


def set_status(
    target: Store | Session,
    analysis: Analysis | int,
    status: str,
    *,
    user: User | str,
    message: str | None = None,
) -> Analysis:
    """Move a background analysis along ``queued -> running -> completed | failed``."""
    if status not in ("queued", "running", "completed", "failed"):
        raise InputError(
            f"unknown status '{status}'",
            field="status",
            expected="queued | running | completed | failed",
        )
    with transaction(target) as session:
        actor = find_user(session, user)
        row = find_analysis(session, analysis, lock=True)
        refuse_signed(row, "change its status")
        old, row.status = row.status, status
        row.heartbeat_at = dt.datetime.now(dt.UTC)
        if status in ("completed", "failed"):
            row.progress, row.progress_message = 1.0, (message or status)[:500]
        session.flush()
        record(
            session,
            "status",
            "analysis",
            row.id,
            user=actor,
            details={"old": old, "new": status, "message": message},
        )
        return row


def _touch_live(target: Store | Session, ids: list[int], **values: Any) -> None:
    """Update queued or running analyses (a finished one keeps its last word), with the
    heartbeat set to now."""
    with transaction(target) as session:
        session.execute(
            Analysis.__table__.update()
            .where(Analysis.id.in_(ids), Analysis.status.in_(("queued", "running")))
            .values(heartbeat_at=dt.datetime.now(dt.UTC), **values)
        )


def report_progress(
    target: Store | Session, analysis: Analysis | int, fraction: float, message: str
) -> None:
    """Record how far a running job is, and that its server is alive (not audited: the
    audit trail records the status changes, not every step)."""
    if not 0 <= fraction <= 1:
        raise InputError(f"progress {fraction} is not between 0 and 1", field="progress")
    analysis_id = analysis.id if isinstance(analysis, Analysis) else int(analysis)
    _touch_live(
        target,
        [analysis_id],
        progress=round(float(fraction), 3),
        progress_message=str(message)[:500],
    )


def beat(target: Store | Session, analyses: Iterable[int]) -> None:
    """Say that the server running these jobs is alive."""
    ids = list(analyses)
    if ids:
        _touch_live(target, ids)


def recover_interrupted(
    target: Store | Session, *, silent_for: dt.timedelta = dt.timedelta(minutes=2)
) -> list[int]:
    """Fail the queued or running analyses whose server has not been heard of for
    ``silent_for`` (it stopped or crashed while they ran), so that they do not look
    alive for ever; returns their ids. Each change is audited, attributed to the user
    who started the job, with the reason."""
    cutoff = dt.datetime.now(dt.UTC) - silent_for
    with transaction(target) as session:
        rows = session.scalars(
            select(Analysis).where(Analysis.status.in_(("queued", "running")))
        ).all()
        stale = []
        for row in rows:
            last = aware(row.heartbeat_at or row.created_at)
            if last <= cutoff:
                stale.append((row, last))
        for row, last in stale:
            message = (
                f"interrupted: the server running this job stopped (last heard of at "
                f"{last.isoformat(timespec='seconds')}); run the analysis again"
            )
            set_status(session, row, "failed", user=row.created_by_id, message=message)
        return [row.id for row, _ in stale]
