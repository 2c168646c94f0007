"""Clinical cohorts in the store: observations per patient, and graded runs over them.

Observations (``patient_id, time, item, value, unit``) are typed rows per patient
(:func:`import_observations`); a grading run is a ``grading`` analysis whose ``grades``
table is also kept as typed :class:`~cytosafe.store.models.Grade` rows for cohort
queries (:func:`import_grades`). Times are stored in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from cytosafe.errors import InputError
from cytosafe.store._session import find_study, find_user, plain, records, transaction
from cytosafe.store.analyses import import_analysis
from cytosafe.store.audit import record
from cytosafe.store.database import Store
from cytosafe.store.models import Analysis, Grade, Observation, Patient, Study, User

__all__ = ["import_grades", "import_observations"]


def _utc_times(values: pd.Series, field: str, source: str | None) -> pd.Series:
    times = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    bad = times.isna()
    if bad.any():
        pos = int(bad.to_numpy().nonzero()[0][0])
        raise InputError(
            f"'{values.iat[pos]}' is not a date-time",
            file=source,
            row=pos + 2,
            field=field,
            expected="ISO 8601, e.g. 2024-06-28T08:00:00",
        )
    return times


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], source: str | None) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise InputError("expected a table (pandas DataFrame)", file=source)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            "missing required column(s): " + ", ".join(missing),
            file=source,
            expected="columns " + ", ".join(columns),
        )


def _patients(session: Session, study: Study, codes: Iterable[str]) -> dict[str, int]:
    codes = sorted(set(codes))
    rows = session.execute(
        select(Patient.code, Patient.id).where(
            Patient.study_id == study.id, Patient.code.in_(codes)
        )
    )
    known = {code: id_ for code, id_ in rows}
    for code in codes:
        if code not in known:
            patient = Patient(study_id=study.id, code=code)
            session.add(patient)
            session.flush()
            known[code] = patient.id
    return known


def import_observations(
    target: Store | Session,
    observations: pd.DataFrame,
    *,
    study: Study | str,
    user: User | str,
    source: str | None = None,
) -> int:
    """Store an observation table (``patient_id, time, item, value, unit``); returns the
    number of rows. Validation of items and units belongs to
    :func:`cytosafe.clinical.validate_observations`, which the faces call first."""
    _require_columns(observations, ("patient_id", "time", "item", "value"), source)
    frame = observations.reset_index(drop=True).copy()
    if frame.empty:
        raise InputError("the observation table has no rows", file=source)
    frame["time"] = _utc_times(frame["time"], "time", source)
    for name in ("patient_id", "item"):
        blank = frame[name].isna() | (frame[name].astype(str).str.strip() == "")
        if blank.any():
            raise InputError(
                "value is empty",
                file=source,
                row=int(blank.to_numpy().nonzero()[0][0]) + 2,
                field=name,
            )
        frame[name] = frame[name].astype(str).str.strip()
    if "unit" not in frame:
        frame["unit"] = None
    with transaction(target) as session:
        actor = find_user(session, user)
        st = find_study(session, study)
        ids = _patients(session, st, frame["patient_id"])
        rows = [
            {
                "patient_id": ids[r["patient_id"]],
                "time": r["time"].to_pydatetime(),
                "item": r["item"],
                "value": None if r["value"] is None else str(r["value"]),
                "unit": r["unit"],
                "source_file": r.get("source_file") or source,
                "source_row": r.get("source_row"),
            }
            for r in records(
                frame,
                [
                    c
                    for c in frame.columns
                    if c
                    in ("patient_id", "time", "item", "value", "unit", "source_file", "source_row")
                ],
            )
        ]
        session.execute(insert(Observation), rows)
        record(
            session,
            "import",
            "observations",
            st.id,
            user=actor,
            details={
                "study": st.code,
                "n_rows": len(rows),
                "n_patients": len(ids),
                "source": source,
            },
        )
        return len(rows)


def import_grades(
    target: Store | Session,
    grades: pd.DataFrame,
    *,
    study: Study | str,
    user: User | str,
    settings: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame] | None = None,
    previous: Analysis | int | None = None,
) -> Analysis:
    """Store a grading run: a ``grading`` analysis whose ``grades`` table (``patient_id,
    time, scale, grade, criterion``) is also kept as typed :class:`Grade` rows."""
    _require_columns(grades, ("patient_id", "time", "scale", "grade"), None)
    frame = grades.reset_index(drop=True).copy()
    frame["time"] = _utc_times(frame["time"], "time", None)
    frame["patient_id"] = frame["patient_id"].astype(str)
    grade = pd.to_numeric(frame["grade"], errors="coerce")
    if grade.isna().any():
        raise InputError(
            "a grade is not a number",
            row=int(grade.isna().to_numpy().nonzero()[0][0]) + 2,
            field="grade",
        )
    if "criterion" not in frame:
        frame["criterion"] = None
    with transaction(target) as session:
        st = find_study(session, study)
        analysis = import_analysis(
            session,
            "grading",
            {"grades": grades, **(tables or {})},
            study=st,
            user=user,
            settings=settings,
            previous=previous,
        )
        ids = _patients(session, st, frame["patient_id"])
        session.execute(
            insert(Grade),
            [
                {
                    "analysis_id": analysis.id,
                    "patient_id": ids[p],
                    "time": t.to_pydatetime(),
                    "scale": str(s),
                    "grade": int(g),
                    "criterion": None if plain(c) is None else str(c),
                }
                for p, t, s, g, c in zip(
                    frame["patient_id"],
                    frame["time"],
                    frame["scale"],
                    grade,
                    frame["criterion"],
                    strict=True,
                )
            ],
        )
        return analysis
