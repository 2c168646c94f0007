"""Studies and their raw data: plates of measurements, imported whole and edited with a reason.

A study id is unique: creating one that exists is a :class:`~cytosafe.errors.ConflictError`
(the web app's 409), also when two users create it at the same moment.

A plate is stored once, with the SHA-256 of its measurements: importing the same plate
again reuses it, a plate of the same name with other measurements is refused, so raw
data never change silently (:func:`import_measurements`). A stored reading changes only
through :func:`edit_measurement`, with a reason, audited with old and new values, and
never under a signed-off analysis; wells are excluded from (and restored to) the
calibration by :mod:`cytosafe.store.exclusions`.

Why a well is excluded (``exclusion_reason``) is stored with ``exclude`` and given back by
:func:`load_measurements` (as the column the files' exclusions add,
:func:`cytosafe.curves.exclusions.apply_exclusions`), so a quantification of the stored
plate lists it in ``standards.csv`` and ``settings.json`` as a quantification of files
does. The plate's fingerprint covers the reasons that are set.

A plate stored without its sample map gets one later through :func:`annotate_plate` (an
audited edit of its wells' culture metadata), and is deleted through :func:`delete_plate`;
both are refused once a signed-off analysis read the plate. :func:`save_design` stores the
study design entered in the web form (``studies.design``), audited.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cytosafe.errors import ConflictError, InputError
from cytosafe.schema.measurements import MEASUREMENT_COLUMNS, validate_measurements
from cytosafe.store._session import (
    ANALYST_ROLES,
    SignedOffError,
    find_study,
    find_user,
    reading,
    records,
    require_role,
    transaction,
)
from cytosafe.store.audit import canonical_json, record
from cytosafe.store.database import Store
from cytosafe.store.models import Analysis, Group, Measurement, Plate, Study, User

__all__ = [
    "ANNOTATION_FIELDS",
    "EDITABLE_FIELDS",
    "annotate_plate",
    "create_study",
    "delete_plate",
    "edit_measurement",
    "find_group",
    "import_measurements",
    "load_measurements",
    "plate_sha256",
    "save_design",
    "store_plates",
]

#: The measurement columns stored on each row (the study and plate are the row's plate).
MEASUREMENT_FIELDS = tuple(
    c.name for c in MEASUREMENT_COLUMNS if c.name not in ("study_id", "plate_id")
)
#: Fields an audited edit may change (the raw reading and its use; not its identity).
EDITABLE_FIELDS = ("signal", "exclude", "dilution_factor", "bead_count", "standard_concentration")
#: Why a well is excluded: a stored column beside the tidy ones (not a schema column).
REASON = "exclusion_reason"


def find_group(session: Session, name: str) -> tuple[Group, bool]:
    """The group ``name``, created when new (and whether it was): two transactions that
    create it at once both end with the one row (the loser of the race reads the
    winner's)."""
    row = session.scalar(select(Group).where(Group.name == name))
    if row is not None:
        return row, False
    row = Group(name=name)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return session.scalars(select(Group).where(Group.name == name)).one(), False
    return row, True


def create_study(
    target: Store | Session,
    code: str,
    *,
    user: User | str,
    title: str | None = None,
    kind: str = "cra",
    group: str | None = None,
) -> Study:
    """Create a study; ``code`` is the tidy tables' ``study_id``."""
    code = (code or "").strip()
    if not code:
        raise InputError("a study id is empty", field="study_id", expected="a non-empty identifier")
    if kind not in ("cra", "clinical"):
        raise InputError(f"unknown study kind '{kind}'", field="kind", expected="cra | clinical")
    with transaction(target) as session:
        actor = find_user(session, user)
        if session.scalar(select(Study.id).where(Study.code == code)) is not None:
            raise ConflictError(f"study '{code}' already exists", field="study_id")
        group_row, new_group = (None, False) if group is None else find_group(session, group)
        study = Study(code=code, title=title, kind=kind, group=group_row, created_by_id=actor.id)
        try:
            # A savepoint: another user may have created the same code a moment ago (on
            # PostgreSQL both pass the check above); the database's unique index decides.
            with session.begin_nested():
                session.add(study)
        except IntegrityError:
            raise ConflictError(f"study '{code}' already exists", field="study_id") from None
        record(
            session,
            "create",
            "study",
            study.id,
            user=actor,
            details={"code": code, "title": title, "kind": kind, "group": group},
            covers=[("group", group_row.id)] if new_group else (),
        )
        return study


def plate_sha256(plate_rows: pd.DataFrame) -> str:
    """SHA-256 of a plate's measurements (provenance columns left out)."""
    content = [c for c in MEASUREMENT_FIELDS if c not in ("source_file", "source_row")]
    ordered = plate_rows.sort_values(["well", "analyte"])
    rows = records(ordered, content)
    if REASON in ordered.columns:
        # Only the reasons set: a plate without any keeps the fingerprint it always had.
        for row, reason in zip(rows, records(ordered, [REASON]), strict=True):
            if reason[REASON] is not None:
                row[REASON] = str(reason[REASON])
    return hashlib.sha256(canonical_json(rows).encode("utf-8")).hexdigest()


def store_plates(session: Session, table: pd.DataFrame, study: Study, actor: User) -> list[Plate]:
    """Store the plates of a validated measurement table in ``study`` (audited, one entry
    per plate); a plate already stored with the same measurements is reused."""
    codes = sorted(set(table["study_id"]))
    if codes != [study.code]:
        other = next(c for c in codes if c != study.code)
        raise InputError(
            f"the table belongs to study '{other}', not '{study.code}'",
            field="study_id",
            expected=f"study_id '{study.code}' on every row",
        )
    known = {c.name for c in MEASUREMENT_COLUMNS} | {REASON}
    extras = [c for c in table.columns if c not in known]
    plates = []
    for code, rows in table.groupby("plate_id", sort=True):
        fingerprint = plate_sha256(rows)
        plate = session.scalar(select(Plate).where(Plate.study_id == study.id, Plate.code == code))
        if plate is not None:
            if plate.measurements_sha256 != fingerprint:
                raise InputError(
                    f"plate '{code}' is already in study '{study.code}' with different measurements",
                    field="plate_id",
                    expected="a new plate id, or the same measurements: a sample map is "
                    "attached to the stored plate (annotate_plate; the study page's 'Attach or "
                    "replace a sample map'), a reading changed through edit_measurement",
                )
            plates.append(plate)
            continue
        sources = rows["source_file"].dropna().unique().tolist()
        plate = Plate(
            study_id=study.id,
            code=str(code),
            source_file=";".join(map(str, sources)) or None,
            measurements_sha256=fingerprint,
        )
        session.add(plate)
        session.flush()
        values = records(rows, (*MEASUREMENT_FIELDS, *([REASON] if REASON in rows else [])))
        if extras:
            # Missing values are kept as nulls: a column empty on every row (a vendor's
            # concentration the export left blank) still comes back from the store.
            for value, extra in zip(values, records(rows, extras), strict=True):
                value["extra"] = extra
        for value in values:
            value["plate_id"] = plate.id
        session.execute(insert(Measurement), values)
        record(
            session,
            "import",
            "plate",
            plate.id,
            user=actor,
            details={
                "study": study.code,
                "plate": plate.code,
                "n_measurements": len(values),
                "measurements_sha256": fingerprint,
                "source_files": sources,
            },
        )
        plates.append(plate)
    return plates


def import_measurements(
    target: Store | Session,
    measurements: pd.DataFrame,
    *,
    study: Study | str | None = None,
    user: User | str,
    source: str | None = None,
) -> list[Plate]:
    """Store a tidy measurement table (validated first); returns its plates.

    A plate already stored with the same measurements is reused; with different ones it
    is refused (:class:`InputError`), so raw data never change silently.
    """
    table = validate_measurements(measurements, source=source)
    with transaction(target) as session:
        actor = find_user(session, user)
        if study is None:
            codes = table["study_id"].unique().tolist()
            if len(codes) != 1:
                raise InputError("the table holds several studies", field="study_id", file=source)
            study = codes[0]
        return store_plates(session, table, find_study(session, study), actor)


def load_measurements(
    target: Store | Session, study: Study | str, *, plates: Iterable[str] | None = None
) -> pd.DataFrame:
    """The tidy measurement table of a study (or of some of its plates), validated.

    Where a well is excluded with a reason, the table has the column ``exclusion_reason``
    (the latest reason; missing elsewhere), as a table whose exclusions were applied from
    a file has; without any reason it has no such column.
    """
    with reading(target) as session:
        st = find_study(session, study, lock=False)
        query = (
            select(
                Plate.code.label("plate_id"),
                *[getattr(Measurement, c) for c in MEASUREMENT_FIELDS],
                Measurement.exclusion_reason,
                Measurement.extra,
            )
            .join(Plate, Measurement.plate_id == Plate.id)
            .where(Plate.study_id == st.id)
            .order_by(Plate.code, Measurement.id)
        )
        if plates is not None:
            query = query.where(Plate.code.in_(list(plates)))
        rows = session.execute(query).all()
        code = st.code
    frame = pd.DataFrame(rows, columns=["plate_id", *MEASUREMENT_FIELDS, REASON, "extra"])
    if frame.empty:
        raise InputError(f"study '{code}' has no measurements", field="study")
    frame = frame.where(frame.notna(), np.nan)  # SQL NULL is NaN, as in the tables read
    if frame[REASON].isna().all():
        frame = frame.drop(columns=REASON)
    else:
        frame[REASON] = frame[REASON].astype(object).where(frame[REASON].notna(), None)
    extra = frame.pop("extra")
    if extra.notna().any():
        frame = frame.join(pd.DataFrame([e or {} for e in extra], index=frame.index))
    frame.insert(0, "study_id", code)
    return validate_measurements(frame)


def edit_measurement(
    target: Store | Session, measurement_id: int, *, user: User | str, reason: str, **changes: Any
) -> Measurement:
    """Change fields of one stored measurement, with a reason, audited (old and new values).

    Refused for plates read by a signed-off analysis: re-import and re-analyse instead.
    """
    if not reason or not reason.strip():
        raise InputError("an edit needs a reason", field="reason")
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown or not changes:
        raise InputError(
            f"cannot edit field(s) {', '.join(unknown) or '(none given)'}",
            field="changes",
            expected=" | ".join(EDITABLE_FIELDS),
        )
    with transaction(target) as session:
        actor = find_user(session, user)
        require_role(actor, ANALYST_ROLES, "edit measurements")
        row = session.get(Measurement, measurement_id)
        if row is None:
            raise InputError(f"no measurement {measurement_id}", field="measurement_id")
        plate = session.get(Plate, row.plate_id, with_for_update=True)
        signed = session.scalar(
            select(Analysis.id)
            .where(Analysis.plates.any(Plate.id == plate.id), Analysis.status == "signed_off")
            .limit(1)
        )
        if signed is not None:
            raise SignedOffError(
                f"plate '{plate.code}' was read by signed-off analysis {signed}",
                field="measurement_id",
                expected="a plate not used by a signed-off analysis",
            )
        old = {k: getattr(row, k) for k in changes}
        for key, value in changes.items():
            setattr(row, key, value)
        if "exclude" in changes:  # the edit's reason is the exclusion's, as exclude_wells'
            row.exclusion_reason = reason.strip() if row.exclude else None
        session.flush()
        study = session.get(Study, plate.study_id)
        table = load_measurements(session, study, plates=[plate.code])  # validates the edit
        plate.measurements_sha256 = plate_sha256(table)
        record(
            session,
            "edit",
            "measurement",
            row.id,
            user=actor,
            details={
                "plate": plate.code,
                "well": row.well,
                "analyte": row.analyte,
                "old": old,
                "new": changes,
                "reason": reason.strip(),
            },
            covers=[("plate", plate.id)],
        )
        return row


#: Fields a sample map sets on stored wells (the culture metadata an export does not know;
#: :data:`cytosafe.io.samples.MAP_VALUE_COLUMNS` without ``study_id``, the plate's own).
ANNOTATION_FIELDS = (
    "sample_type",
    "standard_concentration",
    "donor_id",
    "treatment",
    "treatment_role",
    "treatment_concentration",
    "treatment_unit",
    "assay_format",
    "incubation_h",
    "replicate",
    "dilution_factor",
)


def _signed_reader(session: Session, plate: Plate) -> int | None:
    """The first signed-off analysis that read ``plate`` (None: none did)."""
    return session.scalar(
        select(Analysis.id)
        .where(Analysis.plates.any(Plate.id == plate.id), Analysis.status == "signed_off")
        .order_by(Analysis.id)
        .limit(1)
    )


def _find_plate(session: Session, study: Study, code: str) -> Plate:
    plate = session.scalar(
        select(Plate).where(Plate.study_id == study.id, Plate.code == str(code)).with_for_update()
    )
    if plate is None:
        raise InputError(
            f"study '{study.code}' has no plate '{code}'",
            field="plate_id",
            expected="one of the study's plates",
        )
    return plate


def _same(old: Any, new: Any) -> bool:
    if old is None or new is None:
        return old is None and new is None
    if isinstance(old, float) or isinstance(new, float):
        try:
            return float(old) == float(new)
        except (TypeError, ValueError):
            return False
    return str(old) == str(new)


def annotate_plate(
    target: Store | Session,
    study: Study | str,
    plate: str,
    annotated: pd.DataFrame,
    *,
    user: User | str,
    reason: str,
    source: str | None = None,
    source_sha256: str | None = None,
) -> dict[str, Any]:
    """Attach (or replace) the sample map of a stored plate: an audited edit of its wells'
    culture metadata (:data:`ANNOTATION_FIELDS` and columns a map adds beyond the schema).

    ``annotated`` is the plate's stored table (:func:`load_measurements`) with the map
    joined by :func:`cytosafe.io.samples.annotate` (the face joins it: the store reads
    no files). Its wells, analytes and signals must be the stored ones; only the
    annotations change. One transaction and one ``edit`` entry on the plate, with the map's
    name and SHA-256, the fields changed, the number of rows and the plate's fingerprint
    before and after; refused (:class:`SignedOffError`) once an analysis that read the
    plate is signed off, as :func:`edit_measurement` is.

    Returns
    -------
    dict
        ``plate``, ``n_changed`` (measurements), ``fields`` (changed),
        ``measurements_sha256`` (new).
    """
    if not reason or not reason.strip():
        raise InputError("attaching a sample map needs a reason", field="reason")
    with transaction(target) as session:
        actor = find_user(session, user)
        require_role(actor, ANALYST_ROLES, "edit measurements")
        st = find_study(session, study)
        row = _find_plate(session, st, plate)
        signed = _signed_reader(session, row)
        if signed is not None:
            raise SignedOffError(
                f"plate '{row.code}' was read by signed-off analysis {signed}: its sample "
                "map can no longer change",
                field="plate_id",
                expected="a plate not used by a signed-off analysis (re-import it as a new plate)",
            )
        stored = session.scalars(
            select(Measurement).where(Measurement.plate_id == row.id).order_by(Measurement.id)
        ).all()
        new = annotated[annotated["plate_id"].astype(str) == row.code]
        keyed = {
            (str(w), str(a)): r
            for w, a, r in zip(new["well"], new["analyte"], records(new, new.columns), strict=True)
        }
        if len(keyed) != len(stored) or any((m.well, m.analyte) not in keyed for m in stored):
            raise InputError(
                f"the annotated table does not hold the wells of plate '{row.code}'",
                file=source,
                field="well",
                expected="the plate's stored wells and analytes, each once",
            )
        known = {c.name for c in MEASUREMENT_COLUMNS} | {REASON}
        extras = [c for c in new.columns if c not in known]
        updates, changed = [], set()
        for m in stored:
            value = keyed[(m.well, m.analyte)]
            if not _same(m.signal, value["signal"]):
                raise InputError(
                    "a sample map changes annotations, not signals",
                    file=source,
                    well=m.well,
                    field="signal",
                )
            change = {
                f: value.get(f)
                for f in ANNOTATION_FIELDS
                if f in value and not _same(getattr(m, f), value.get(f))
            }
            if extras:
                extra = dict(m.extra or {})
                for col in extras:
                    if value.get(col) is not None and extra.get(col) != value[col]:
                        extra[col] = value[col]
                if extra != (m.extra or {}):
                    change["extra"] = extra
            if change:
                changed |= set(change)
                updates.append({"id": m.id, **change})
        old_sha = row.measurements_sha256
        for item in updates:
            found = session.get(Measurement, item["id"])
            for key, value in item.items():
                if key != "id":
                    setattr(found, key, value)
        session.flush()
        table = load_measurements(session, st, plates=[row.code])  # validates the edit
        row.measurements_sha256 = plate_sha256(table)
        record(
            session,
            "edit",
            "plate",
            row.id,
            user=actor,
            details={
                "study": st.code,
                "plate": row.code,
                "change": "sample map",
                "sample_map": source,
                "sample_map_sha256": source_sha256,
                "n_changed": len(updates),
                "fields": sorted(changed),
                "old_measurements_sha256": old_sha,
                "measurements_sha256": row.measurements_sha256,
                "reason": reason.strip(),
            },
        )
        return {
            "plate": row.code,
            "n_changed": len(updates),
            "fields": sorted(changed),
            "measurements_sha256": row.measurements_sha256,
        }


def delete_plate(
    target: Store | Session, study: Study | str, plate: str, *, user: User | str, reason: str
) -> dict[str, Any]:
    """Delete a stored plate and its measurements, with a reason, audited.

    Refused (:class:`SignedOffError`, the web app's 409) when a signed-off analysis read
    the plate. Analyses not signed off that read it keep their stored tables and report;
    only their link to the deleted plate goes (their entry's ``covers`` records their
    fingerprint after it, and the plate's as absent, so ``cytosafe audit verify`` stays
    intact). The audit entry (action ``delete`` on the plate; its details keep
    ``change: "delete"`` as before) keeps the plate's fingerprint, its source files and its
    number of measurements.
    """
    from sqlalchemy import delete

    from cytosafe.store.models import AnalysisPlate

    if not reason or not reason.strip():
        raise InputError("deleting a plate needs a reason", field="reason")
    with transaction(target) as session:
        actor = find_user(session, user)
        require_role(actor, ANALYST_ROLES, "delete plates")
        st = find_study(session, study)
        row = _find_plate(session, st, plate)
        signed = _signed_reader(session, row)
        if signed is not None:
            raise SignedOffError(
                f"plate '{row.code}' was read by signed-off analysis {signed}: it cannot be "
                "deleted",
                field="plate_id",
                expected="a plate not used by a signed-off analysis",
            )
        readers = sorted(
            session.scalars(
                select(AnalysisPlate.analysis_id).where(AnalysisPlate.plate_id == row.id)
            )
        )
        n = session.scalar(select(func.count(Measurement.id)).where(Measurement.plate_id == row.id))
        details = {
            "study": st.code,
            "plate": row.code,
            "change": "delete",
            "n_measurements": int(n or 0),
            "measurements_sha256": row.measurements_sha256,
            "source_files": [s for s in (row.source_file or "").split(";") if s],
            "analyses_unlinked": readers,
            "reason": reason.strip(),
        }
        session.execute(delete(AnalysisPlate).where(AnalysisPlate.plate_id == row.id))
        session.execute(delete(Measurement).where(Measurement.plate_id == row.id))
        plate_id = row.id
        session.delete(row)
        session.flush()
        record(
            session,
            "delete",
            "plate",
            plate_id,
            user=actor,
            details=details,
            covers=[("analysis", a) for a in readers],
        )
        return details


def save_design(
    target: Store | Session, study: Study | str, design: dict | None, *, user: User | str
) -> Study:
    """Store a study's design (the JSON of the study file's tables: ``study``,
    ``treatment``, ``format``, ``analysis``, ``hazard``), audited with its SHA-256 and the
    previous one. ``None`` clears it. The design is validated by the face that built it
    (:mod:`cytosafe.web.design_form` through :func:`cytosafe.hazard.load_study`)."""
    if design is not None and not isinstance(design, dict):
        raise InputError("a design is a table of tables", field="design", expected="a dict")
    text = None if design is None else canonical_json(design)  # refuses what JSON cannot hold
    with transaction(target) as session:
        actor = find_user(session, user)
        require_role(actor, ANALYST_ROLES, "edit a study design")
        st = find_study(session, study)
        old = None if st.design is None else canonical_json(st.design)
        if old == text:
            return st
        st.design = None if text is None else json.loads(text)
        session.flush()

        def digest(t: str | None) -> str | None:
            return None if t is None else hashlib.sha256(t.encode("utf-8")).hexdigest()

        record(
            session,
            "edit",
            "study",
            st.id,
            user=actor,
            details={
                "study": st.code,
                "change": "design",
                "design_sha256": digest(text),
                "old_design_sha256": digest(old),
                "n_treatments": len((design or {}).get("treatment", [])),
            },
        )
        return st
