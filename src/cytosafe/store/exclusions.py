"""Exclude and restore wells of a stored study, each with a reason, as audited events.

A bioanalyst leaves a well out of the calibration with the reason ICH M10 (2022,
section 8, documentation) asks for: a calibrator is excluded for a documented, assignable
reason, and the exclusion is reported. In the store an exclusion is an audited event:
:func:`exclude_wells` marks the measurements (``exclude`` and ``exclusion_reason``),
records one audit entry per exclusion (action ``exclude``: plate, well, analyte, reason;
who and when are the entry's) and updates the plate's fingerprint, in one transaction;
:func:`include_wells` restores them the same way (action ``include``). Both take the
exclusion table of :func:`cytosafe.curves.exclusions.parse_exclusions` (columns
``plate_id``, ``well``, ``analyte``, ``reason``; no analyte: every analyte of the well),
so the command line, the web app and the Python API say the same thing. They are refused
on plates read by a signed-off analysis, as :func:`~cytosafe.store.edit_measurement` is.
An exclusion that matches no well is an :class:`~cytosafe.errors.InputError` naming it,
and nothing is written.

The next quantification of the study reads the reasons back
(:func:`~cytosafe.store.load_measurements`) and lists them in ``standards.csv`` and
``settings.json``; the curves the exclusions do not touch are fitted as before.

>>> exclude_wells(store, "CRA-EX-001", [{"plate_id": "P1", "well": "B3", "analyte": "IL-6",
...                                      "reason": "bubble in the well"}], user="ada")  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from cytosafe.errors import InputError
from cytosafe.store._session import (
    ANALYST_ROLES,
    SignedOffError,
    find_study,
    find_user,
    plain,
    reading,
    require_role,
    transaction,
)
from cytosafe.store.audit import record
from cytosafe.store.database import Store
from cytosafe.store.models import Analysis, AnalysisPlate, Measurement, Plate, Study, User
from cytosafe.store.studies import load_measurements, plate_sha256

__all__ = ["EXCLUSION_COLUMNS", "exclude_wells", "include_wells", "list_exclusions"]

#: The columns of an exclusions table (those of ``parse_exclusions``).
EXCLUSION_COLUMNS = ("plate_id", "well", "analyte", "reason")

Exclusions = pd.DataFrame | Iterable[Mapping[str, Any]]


def _norm_well(well: object) -> str:
    """``B03`` and ``b3`` are ``B3`` (as the files' exclusions match them)."""
    text = str(well).strip().upper()
    match = re.match(r"^([A-Z]{1,2})0*(\d+)$", text)
    return f"{match.group(1)}{int(match.group(2))}" if match else text


def _text(value: object) -> str | None:
    value = plain(value)
    text = None if value is None else str(value).strip()
    return text or None


def _table(exclusions: Exclusions) -> list[dict[str, str | None]]:
    """The exclusions as checked records: plate, well and reason required."""
    frame = exclusions if isinstance(exclusions, pd.DataFrame) else pd.DataFrame(list(exclusions))
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    for column in ("plate_id", "well", "reason"):
        if column not in frame.columns:
            raise InputError(
                "the exclusions have no column",
                field=column,
                expected="columns plate_id, well, analyte (optional), reason",
            )
    if frame.empty:
        raise InputError(
            "no exclusions given", field="exclusions", expected="PLATE:WELL[:ANALYTE]=REASON"
        )
    rows = []
    for number, row in enumerate(frame.to_dict("records"), start=1):
        item = {c: _text(row.get(c)) for c in EXCLUSION_COLUMNS}
        for column in ("plate_id", "well", "reason"):
            if item[column] is None:
                raise InputError(
                    "an exclusion needs a plate, a well and a reason",
                    row=number,
                    field=column,
                    expected="PLATE:WELL[:ANALYTE]=REASON (the reason is required)",
                )
        rows.append(item)
    return rows


def _name(item: Mapping[str, str | None]) -> str:
    return f"{item['plate_id']}:{item['well']}" + (f":{item['analyte']}" if item["analyte"] else "")


def _change(
    target: Store | Session,
    study: Study | str,
    exclusions: Exclusions,
    *,
    user: User | str,
    exclude: bool,
) -> list[dict[str, Any]]:
    action = "exclude" if exclude else "include"
    items = _table(exclusions)
    with transaction(target) as session:
        actor = find_user(session, user)
        require_role(actor, ANALYST_ROLES, f"{action} wells")
        st = find_study(session, study)
        codes = sorted({i["plate_id"] for i in items})
        plates = {
            p.code: p
            for p in session.scalars(
                select(Plate)
                .where(Plate.study_id == st.id, Plate.code.in_(codes))
                .order_by(Plate.id)
                .with_for_update()
            )
        }
        for item in items:
            if item["plate_id"] not in plates:
                raise InputError(
                    f"exclusion '{_name(item)}' matches no well: study '{st.code}' has no "
                    f"plate '{item['plate_id']}'",
                    field="plate_id",
                    expected="a plate of the study",
                )
        ids = [p.id for p in plates.values()]
        signed = session.execute(
            select(Plate.code, Analysis.id)
            .join(AnalysisPlate, AnalysisPlate.plate_id == Plate.id)
            .join(Analysis, Analysis.id == AnalysisPlate.analysis_id)
            .where(Plate.id.in_(ids), Analysis.status == "signed_off")
            .order_by(Plate.code, Analysis.id)
            .limit(1)
        ).first()
        if signed is not None:
            raise SignedOffError(
                f"plate '{signed.code}' was read by signed-off analysis {signed.id}",
                field="plate_id",
                expected="a plate not used by a signed-off analysis",
            )
        wells: dict[tuple[int, str], list[Measurement]] = {}
        for row in session.scalars(
            select(Measurement).where(Measurement.plate_id.in_(ids)).order_by(Measurement.id)
        ):
            wells.setdefault((row.plate_id, _norm_well(row.well)), []).append(row)
        # Match every exclusion before changing anything: a bad one writes nothing.
        matched = []
        for item in items:
            plate = plates[item["plate_id"]]
            hits = [
                m
                for m in wells.get((plate.id, _norm_well(item["well"])), [])
                if item["analyte"] is None or m.analyte == item["analyte"]
            ]
            if not hits:
                raise InputError(
                    f"exclusion '{_name(item)}' matches no well",
                    well=item["well"],
                    field="analyte" if item["analyte"] else "well",
                    expected="a plate, well (and analyte) of the study's measurements",
                )
            if not exclude:
                hits = [m for m in hits if m.exclude]
                if not hits:
                    raise InputError(
                        f"'{_name(item)}' is not excluded: nothing to restore",
                        well=item["well"],
                        field="exclude",
                        expected="an excluded well",
                    )
            matched.append((item, plate, hits))
        events = []
        for item, plate, hits in matched:
            before = {m.analyte: m.exclusion_reason if m.exclude else None for m in hits}
            for m in hits:
                m.exclude = exclude
                m.exclusion_reason = item["reason"] if exclude else None
            events.append(
                {
                    "study": st.code,
                    "plate": plate.code,
                    "well": hits[0].well,
                    "analyte": item["analyte"],
                    "analytes": [m.analyte for m in hits],
                    "reason": item["reason"],
                    # What each measurement was: excluded with that reason, or None.
                    "previous": before,
                    "measurements": [m.id for m in hits],
                }
            )
        session.flush()
        touched = {e["plate"] for e in events}
        for code in sorted(touched):
            table = load_measurements(session, st, plates=[code])  # validates the change
            plates[code].measurements_sha256 = plate_sha256(table)
        for event in events:
            plate = plates[event["plate"]]
            event["measurements_sha256"] = plate.measurements_sha256
            record(session, action, "plate", plate.id, user=actor, details=event)
        return events


def exclude_wells(
    target: Store | Session, study: Study | str, exclusions: Exclusions, *, user: User | str
) -> list[dict[str, Any]]:
    """Exclude wells of a stored study from the calibration, each with its reason.

    Parameters
    ----------
    target:
        A :class:`~cytosafe.store.Store` (one transaction) or a store session.
    study:
        The study (object or code).
    exclusions:
        A table (or records) with ``plate_id``, ``well``, ``analyte`` (optional: empty
        means every analyte of the well) and ``reason``, as
        :func:`cytosafe.curves.exclusions.parse_exclusions` returns. Wells match without
        regard to zero padding or case (``b03`` is ``B3``).
    user:
        Who excludes (an analyst, study director or admin).

    Returns
    -------
    list of dict
        One per exclusion, as its audit entry records it: ``study``, ``plate``, ``well``,
        ``analyte`` (as asked), ``analytes`` (the measurements marked), ``reason``,
        ``previous`` (the reason each had, None when it was not excluded),
        ``measurements`` (ids) and the plate's new ``measurements_sha256``.

    Raises
    ------
    InputError
        An exclusion without a plate, well or reason, or that matches no well (named).
    SignedOffError
        A plate read by a signed-off analysis (re-import and re-analyse instead).
    AuthorizationError
        A viewer.
    """
    return _change(target, study, exclusions, user=user, exclude=True)


def include_wells(
    target: Store | Session, study: Study | str, exclusions: Exclusions, *, user: User | str
) -> list[dict[str, Any]]:
    """Restore excluded wells to the calibration, each with the reason for restoring it.

    Takes the same table as :func:`exclude_wells` (its ``reason`` is why the well comes
    back); without an analyte, every excluded analyte of the well is restored. A well
    that matches but is not excluded is an :class:`~cytosafe.errors.InputError`. Audited
    (action ``include``), refused under a signed-off analysis, all or nothing.
    """
    return _change(target, study, exclusions, user=user, exclude=False)


def list_exclusions(
    target: Store | Session, study: Study | str, *, plates: Iterable[str] | None = None
) -> pd.DataFrame:
    """The excluded measurements of a study: ``plate_id``, ``well``, ``analyte``,
    ``sample_type``, ``standard_concentration`` and ``exclusion_reason`` (None when the
    well was marked without one), by plate, well and analyte."""
    columns = ["plate_id", "well", "analyte", "sample_type", "standard_concentration"]
    with reading(target) as session:
        st = find_study(session, study, lock=False)
        query = (
            select(
                Plate.code,
                Measurement.well,
                Measurement.analyte,
                Measurement.sample_type,
                Measurement.standard_concentration,
                Measurement.exclusion_reason,
            )
            .join(Plate, Measurement.plate_id == Plate.id)
            .where(Plate.study_id == st.id, Measurement.exclude.is_(True))
            .order_by(Plate.code, Measurement.well, Measurement.analyte)
        )
        if plates is not None:
            query = query.where(Plate.code.in_(list(plates)))
        rows = session.execute(query).all()
    return pd.DataFrame(rows, columns=[*columns, "exclusion_reason"])
