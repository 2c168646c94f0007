"""Alerts of the bedside monitor in the store (``monitor_alerts``), scoped to a clinical study.

``cytosafe monitor --study CODE`` stores each alert it raises (:func:`record_alerts`),
with the observations that raised it (:func:`cytosafe.store.import_observations`), in one
transaction per batch; the ward view of the web app reads them (:func:`list_alerts`,
:func:`latest_observations`) and a clinician acknowledges them (:func:`acknowledge_alert`).
Every change goes through the audited session: raising is audited as ``create`` of a
``monitor_alert``, acknowledging as ``status``; an alert is acknowledged, never deleted.
A source corrected after it was stored (a file rewritten, a FHIR resource updated or
entered in error) supersedes the rows it no longer holds (:func:`supersede_observations`:
an audited ``edit``, the rows kept and marked), and the ward reads the latest version.

Alerts support a clinician's judgement and do not replace it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cytosafe.errors import InputError
from cytosafe.store._session import aware, find_study, find_user, reading, transaction
from cytosafe.store.audit import record
from cytosafe.store.database import Store
from cytosafe.store.models import MonitorAlert, Observation, Patient, Study, User

__all__ = [
    "ALERT_KINDS",
    "acknowledge_alert",
    "alert_dict",
    "last_alert_id",
    "latest_observations",
    "list_alerts",
    "record_alerts",
    "study_observations",
    "supersede_observations",
    "superseded_count",
]

#: What a stored alert can be about (:data:`cytosafe.clinical.monitor.ALERT_KINDS`).
ALERT_KINDS = ("grade_increase", "predictor_positive", "vital_sign")
#: The prefix of a superseded observation's ``source_file`` (:func:`supersede_observations`).
SUPERSEDED = "[superseded] "


def _clinical(session: Session, study: Study | str | int, *, lock: bool) -> Study:
    st = find_study(session, study, lock=lock)
    if st.kind != "clinical":
        raise InputError(
            f"study '{st.code}' is a {st.kind} study, not a clinical one",
            field="study",
            expected="a clinical study (create it with kind clinical)",
        )
    return st


def _time(value: Any, n: int) -> dt.datetime:
    try:
        t = pd.Timestamp(value)
    except (TypeError, ValueError):
        t = pd.NaT
    if pd.isna(t):
        raise InputError(f"alert {n}: '{value}' is not a time", row=n, field="time")
    return (t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")).to_pydatetime()


def record_alerts(
    target: Store | Session,
    alerts: Iterable[Mapping[str, Any]],
    *,
    study: Study | str,
    user: User | str,
) -> list[int]:
    """Store alerts (``patient_id, kind, reason, time`` and ``details``); returns their ids.

    Each alert is audited (``create`` of ``monitor_alert``) in the caller's transaction.
    An alert of an unknown kind, or without a reason, is an :class:`InputError` and
    nothing is stored.
    """
    rows = list(alerts)
    for n, a in enumerate(rows, start=1):
        if a.get("kind") not in ALERT_KINDS:
            raise InputError(
                f"alert {n}: unknown kind '{a.get('kind')}'",
                row=n,
                field="kind",
                expected=" | ".join(ALERT_KINDS),
            )
        if not str(a.get("reason") or "").strip() or not str(a.get("patient_id") or "").strip():
            raise InputError(f"alert {n} has no reason or patient", row=n, field="reason")
    ids = []
    with transaction(target) as session:
        actor = find_user(session, user)
        st = _clinical(session, study, lock=True)
        for n, a in enumerate(rows, start=1):
            details = {k: v for k, v in (a.get("details") or {}).items()}
            for key in ("scale", "predictor", "note"):
                if a.get(key):
                    details[key] = a[key]
            alert = MonitorAlert(
                study_id=st.id,
                patient_code=str(a["patient_id"]).strip(),
                kind=str(a["kind"]),
                reason=str(a["reason"]),
                details=details,
                observed_at=_time(a.get("time"), n),
            )
            session.add(alert)
            session.flush()
            record(
                session,
                "create",
                "monitor_alert",
                alert.id,
                user=actor,
                details={
                    "study": st.code,
                    "patient": alert.patient_code,
                    "kind": alert.kind,
                    "reason": alert.reason,
                    "observed_at": alert.observed_at.isoformat(),
                },
            )
            ids.append(alert.id)
    return ids


def acknowledge_alert(
    target: Store | Session, alert_id: int, *, user: User | str, study: Study | str | None = None
) -> dict[str, Any]:
    """Acknowledge an alert (audited as ``status``); acknowledging twice is an error.

    ``study``, when given, must be the alert's study (a page of one study cannot
    acknowledge another's alert).
    """
    with transaction(target) as session:
        actor = find_user(session, user)
        alert = session.get(MonitorAlert, int(alert_id), with_for_update=True)
        st = None if alert is None else session.get(Study, alert.study_id)
        if alert is None or (study is not None and st.code != getattr(study, "code", study)):
            raise InputError(f"unknown alert {alert_id}", field="alert")
        if alert.acknowledged_at is not None:
            raise InputError(
                f"alert {alert_id} was already acknowledged",
                field="alert",
                expected="an alert not yet acknowledged",
            )
        alert.acknowledged_by_id = actor.id
        alert.acknowledged_at = dt.datetime.now(dt.UTC)
        session.flush()
        record(
            session,
            "status",
            "monitor_alert",
            alert.id,
            user=actor,
            details={"study": st.code, "patient": alert.patient_code, "acknowledged": True,
                     "kind": alert.kind},
        )  # fmt: skip
        return alert_dict(alert, actor.username)


def alert_dict(alert: MonitorAlert, acknowledged_by: str | None = None) -> dict[str, Any]:
    """A stored alert as JSON-ready data."""
    return {
        "id": alert.id,
        "patient_id": alert.patient_code,
        "kind": alert.kind,
        "reason": alert.reason,
        "details": alert.details or {},
        "time": aware(alert.observed_at).isoformat(),
        "raised_at": aware(alert.raised_at).isoformat() if alert.raised_at else None,
        "acknowledged": alert.acknowledged_at is not None,
        "acknowledged_at": aware(alert.acknowledged_at).isoformat()
        if alert.acknowledged_at
        else None,
        "acknowledged_by": acknowledged_by,
    }


def list_alerts(
    target: Store | Session,
    study: Study | str,
    *,
    after_id: int = 0,
    active_only: bool = False,
) -> list[dict[str, Any]]:
    """The study's alerts (oldest first), those with an id above ``after_id``; only the
    unacknowledged with ``active_only``."""
    with reading(target) as session:
        st = _clinical(session, study, lock=False)
        query = (
            select(MonitorAlert, User.username)
            .outerjoin(User, User.id == MonitorAlert.acknowledged_by_id)
            .where(MonitorAlert.study_id == st.id, MonitorAlert.id > int(after_id))
            .order_by(MonitorAlert.id)
        )
        if active_only:
            query = query.where(MonitorAlert.acknowledged_at.is_(None))
        return [alert_dict(a, who) for a, who in session.execute(query)]


def last_alert_id(target: Store | Session, study: Study | str) -> tuple[int, int]:
    """``(highest alert id, number acknowledged)`` of the study: what the ward view polls."""
    with reading(target) as session:
        st = _clinical(session, study, lock=False)
        top, acked = session.execute(
            select(func.max(MonitorAlert.id), func.count(MonitorAlert.acknowledged_at)).where(
                MonitorAlert.study_id == st.id
            )
        ).one()
        return int(top or 0), int(acked or 0)


def supersede_observations(
    target: Store | Session, rows: pd.DataFrame, *, study: Study | str, user: User | str
) -> int:
    """Mark the stored observations that ``rows`` name as superseded: a source corrected
    (a file rewritten, a FHIR resource updated or entered in error) no longer holds them.

    ``rows``: raw rows (``patient_id, time, item, value, unit, source_file, source_row``)
    as the monitor read them. Nothing is deleted: each stored row matched keeps its values
    and its ``source_file`` is prefixed with :data:`SUPERSEDED` (the schema has no status
    column), in one audited ``edit`` of the study's observations that lists their ids.
    :func:`study_observations` leaves them out. Returns the number of rows marked.
    """
    if rows is None or not len(rows):
        return 0
    keys = ["patient_id", "time", "item", "value", "unit", "source_file", "source_row"]
    want = rows.reindex(columns=keys).copy()
    want["time"] = pd.to_datetime(want["time"], utc=True, format="ISO8601", errors="coerce")
    for c in ("patient_id", "item", "value", "unit", "source_file"):
        want[c] = want[c].fillna("").astype(str).str.strip()
    want["source_row"] = pd.to_numeric(want["source_row"], errors="coerce")
    with transaction(target) as session:
        actor = find_user(session, user)
        st = _clinical(session, study, lock=True)
        stored = session.execute(
            select(Observation.id, Patient.code, Observation.time, Observation.item,
                   Observation.value, Observation.unit, Observation.source_file,
                   Observation.source_row)
            .join(Patient, Patient.id == Observation.patient_id)
            .where(Patient.study_id == st.id,
                   Observation.source_file.in_(sorted(set(want["source_file"]))))
        ).all()  # fmt: skip
        have = pd.DataFrame(stored, columns=["id", *keys])
        if not len(have):
            return 0
        have["time"] = pd.to_datetime(have["time"].map(aware), utc=True)
        for c in ("value", "unit", "source_file"):
            have[c] = have[c].fillna("").astype(str).str.strip()
        have["source_row"] = pd.to_numeric(have["source_row"], errors="coerce")
        ids = sorted(int(i) for i in have.merge(want, on=keys, how="inner")["id"].unique())
        if not ids:
            return 0
        for obs in session.scalars(select(Observation).where(Observation.id.in_(ids))):
            obs.source_file = SUPERSEDED + (obs.source_file or "")
        session.flush()
        record(
            session,
            "edit",
            "observations",
            st.id,
            user=actor,
            details={"study": st.code, "superseded": ids, "n_rows": len(ids),
                     "reason": "corrected at the source (no longer in it)"},
        )  # fmt: skip
        return len(ids)


def superseded_count(target: Store | Session, study: Study | str) -> int:
    """How many of the study's stored observations are superseded (for polling)."""
    with reading(target) as session:
        st = _clinical(session, study, lock=False)
        n = session.execute(
            select(func.count(Observation.id))
            .join(Patient, Patient.id == Observation.patient_id)
            .where(Patient.study_id == st.id, Observation.source_file.startswith(SUPERSEDED))
        ).scalar()
        return int(n or 0)


def study_observations(
    target: Store | Session, study: Study | str, *, after_id: int = 0
) -> pd.DataFrame:
    """The study's stored observations (``patient_id, time, item, value, unit``; times UTC)
    with an id above ``after_id`` (``source_row`` holds the id), in the order stored;
    those superseded by a correction (:func:`supersede_observations`) left out."""
    with reading(target) as session:
        st = _clinical(session, study, lock=False)
        live = Observation.source_file.is_(None) | ~Observation.source_file.startswith(SUPERSEDED)
        rows = session.execute(
            select(Patient.code, Observation.time, Observation.item, Observation.value,
                   Observation.unit, Observation.id)
            .join(Patient, Patient.id == Observation.patient_id)
            .where(Patient.study_id == st.id, Observation.id > int(after_id), live)
            .order_by(Observation.id)
        ).all()  # fmt: skip
    frame = pd.DataFrame(
        [(p, aware(t).isoformat(), i, v or "", u or "", n) for p, t, i, v, u, n in rows],
        columns=["patient_id", "time", "item", "value", "unit", "source_row"],
    )
    frame["source_file"] = f"store: study {getattr(study, 'code', study)}"
    return frame


def latest_observations(target: Store | Session, study: Study | str) -> tuple[int, int]:
    """``(number of observations, highest observation id)`` of the study (for polling)."""
    with reading(target) as session:
        st = _clinical(session, study, lock=False)
        n, top = session.execute(
            select(func.count(Observation.id), func.max(Observation.id))
            .join(Patient, Patient.id == Observation.patient_id)
            .where(Patient.study_id == st.id)
        ).one()
        return int(n or 0), int(top or 0)
