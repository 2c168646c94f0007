"""What the faces do with the store: users, studies, transactional imports, sign-off.

Every function takes a :class:`~cytosafe.store.Store` (it opens one transaction and
commits it) or an open :class:`~sqlalchemy.orm.Session` (it joins the caller's
transaction; the caller commits, and rolls back when a function raises, as a
``with store.session():`` block does). Either way an import is one transaction: plates,
measurements, the analysis, its tables, its report and its audit entries are all
written, or, when anything fails (bad input, a crash, a lost connection), none of them.
Several calls on one session make one transaction, e.g. creating a study and importing
into it.

Objects returned are detached snapshots: their columns are loaded, relationships other
than those filled by the call (``Analysis.tables``, ``Analysis.plates``) are not.

Every change is attributed to a user and recorded in the audit trail
(:mod:`cytosafe.store.audit`). Analyses are versioned per study and kind; a re-analysis
(``previous=``) is a new version; a signed-off analysis can no longer change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import event, func, insert, inspect, select
from sqlalchemy.orm import Session, undefer

from cytosafe.errors import CytoSafeError, InputError
from cytosafe.schema.measurements import MEASUREMENT_COLUMNS, validate_measurements
from cytosafe.store.audit import canonical_json, record
from cytosafe.store.database import Store, StoreSession
from cytosafe.store.models import (
    ANALYSIS_KINDS,
    ROLES,
    Analysis,
    AnalysisTable,
    Grade,
    Measurement,
    Observation,
    Patient,
    Plate,
    Report,
    Study,
    User,
)
from cytosafe.store.tables import decode_table, encode_table

__all__ = [
    "AuthorizationError",
    "SignedOffError",
    "add_report",
    "beat",
    "complete_analysis",
    "create_study",
    "create_user",
    "edit_measurement",
    "file_hashes",
    "import_analysis",
    "import_grades",
    "import_measurements",
    "import_observations",
    "import_quantification",
    "load_measurements",
    "load_table",
    "quantification_settings",
    "recover_interrupted",
    "report_progress",
    "set_status",
    "sign_off",
    "verify_password",
    "verify_tables",
]

#: Roles allowed to sign off an analysis.
SIGN_OFF_ROLES = ("study_director", "admin")
_MEASUREMENT_FIELDS = tuple(
    c.name for c in MEASUREMENT_COLUMNS if c.name not in ("study_id", "plate_id")
)
#: Fields an audited edit may change (the raw reading and its use; not its identity).
EDITABLE_FIELDS = ("signal", "exclude", "dilution_factor", "bead_count", "standard_concentration")


class SignedOffError(InputError):
    """A change to an analysis that has been signed off (make a re-analysis instead)."""


class AuthorizationError(CytoSafeError):
    """The user's role does not allow the action."""


@contextmanager
def _transaction(target: Store | Session) -> Iterator[Session]:
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
def _reading(target: Store | Session) -> Iterator[Session]:
    if isinstance(target, Session):
        yield target
    else:
        with target.reader() as session:
            yield session


# --- users ------------------------------------------------------------------------------


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) defaults


def create_user(
    target: Store | Session,
    username: str,
    *,
    role: str = "viewer",
    password: str | None = None,
    display_name: str | None = None,
    by: User | str | None = None,
) -> User:
    """Add a user; ``password`` is stored as an argon2id hash (None: cannot sign in).

    ``by`` is the admin creating the account (None: the user creates itself, as the
    local command-line user or the first admin of a new store does).
    """
    username = (username or "").strip()
    if not username:
        raise InputError("a user name is empty", field="username", expected="a non-empty name")
    if role not in ROLES:
        raise InputError(f"unknown role '{role}'", field="role", expected=" | ".join(ROLES))
    with _transaction(target) as session:
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            raise InputError(f"user '{username}' already exists", field="username")
        user = User(
            username=username,
            role=role,
            display_name=display_name,
            password_hash=None if password is None else _hasher().hash(password),
        )
        session.add(user)
        session.flush()
        actor = user if by is None else _user(session, by)
        record(
            session,
            "create",
            "user",
            user.id,
            user=actor,
            details={"username": username, "role": role},
        )
        return user


def verify_password(user: User, password: str) -> bool:
    """Whether ``password`` is the user's password (False for users without one)."""
    from argon2.exceptions import InvalidHashError, VerificationError

    if not user.password_hash or not user.active:
        return False
    try:
        return _hasher().verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _aware(at: dt.datetime) -> dt.datetime:
    """``at`` with its time zone: SQLite gives back naive datetimes (stored as UTC),
    PostgreSQL aware ones."""
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at


def _user(session: Session, user: User | str | int | None) -> User:
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


# --- studies ----------------------------------------------------------------------------


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
    from cytosafe.store.models import Group

    code = (code or "").strip()
    if not code:
        raise InputError("a study id is empty", field="study_id", expected="a non-empty identifier")
    if kind not in ("cra", "clinical"):
        raise InputError(f"unknown study kind '{kind}'", field="kind", expected="cra | clinical")
    with _transaction(target) as session:
        actor = _user(session, user)
        if session.scalar(select(Study.id).where(Study.code == code)) is not None:
            raise InputError(f"study '{code}' already exists", field="study_id")
        group_row = None
        if group is not None:
            group_row = session.scalar(select(Group).where(Group.name == group))
            if group_row is None:
                group_row = Group(name=group)
                session.add(group_row)
        study = Study(code=code, title=title, kind=kind, group=group_row, created_by_id=actor.id)
        session.add(study)
        session.flush()
        record(
            session,
            "create",
            "study",
            study.id,
            user=actor,
            details={"code": code, "title": title, "kind": kind, "group": group},
        )
        return study


def _study(session: Session, study: Study | str | int, *, lock: bool = True) -> Study:
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


# --- measurements -----------------------------------------------------------------------


def _python(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _records(frame: pd.DataFrame, columns: Iterable[str]) -> list[dict[str, Any]]:
    data = {c: [_python(v) for v in frame[c].astype(object).tolist()] for c in columns}
    return [dict(zip(data, row, strict=True)) for row in zip(*data.values(), strict=True)]


def _fingerprint(plate_rows: pd.DataFrame) -> str:
    """SHA-256 of a plate's measurements (provenance columns left out)."""
    content = [c for c in _MEASUREMENT_FIELDS if c not in ("source_file", "source_row")]
    rows = _records(plate_rows.sort_values(["well", "analyte"]), content)
    return hashlib.sha256(canonical_json(rows).encode("utf-8")).hexdigest()


def _import_plates(session: Session, table: pd.DataFrame, study: Study, actor: User) -> list[Plate]:
    codes = sorted(set(table["study_id"]))
    if codes != [study.code]:
        other = next(c for c in codes if c != study.code)
        raise InputError(
            f"the table belongs to study '{other}', not '{study.code}'",
            field="study_id",
            expected=f"study_id '{study.code}' on every row",
        )
    extras = [c for c in table.columns if c not in {c.name for c in MEASUREMENT_COLUMNS}]
    plates = []
    for code, rows in table.groupby("plate_id", sort=True):
        fingerprint = _fingerprint(rows)
        plate = session.scalar(select(Plate).where(Plate.study_id == study.id, Plate.code == code))
        if plate is not None:
            if plate.measurements_sha256 != fingerprint:
                raise InputError(
                    f"plate '{code}' is already in study '{study.code}' with different measurements",
                    field="plate_id",
                    expected="a new plate id, or the same measurements (edits go through edit_measurement)",
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
        values = _records(rows, _MEASUREMENT_FIELDS)
        if extras:
            for value, extra in zip(values, _records(rows, extras), strict=True):
                value["extra"] = {k: v for k, v in extra.items() if v is not None} or None
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
    with _transaction(target) as session:
        actor = _user(session, user)
        if study is None:
            codes = table["study_id"].unique().tolist()
            if len(codes) != 1:
                raise InputError("the table holds several studies", field="study_id", file=source)
            study = codes[0]
        return _import_plates(session, table, _study(session, study), actor)


def load_measurements(
    target: Store | Session, study: Study | str, *, plates: Iterable[str] | None = None
) -> pd.DataFrame:
    """The tidy measurement table of a study (or of some of its plates), validated."""
    with _reading(target) as session:
        st = _study(session, study, lock=False)
        query = (
            select(
                Plate.code.label("plate_id"),
                *[getattr(Measurement, c) for c in _MEASUREMENT_FIELDS],
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
    frame = pd.DataFrame(rows, columns=["plate_id", *_MEASUREMENT_FIELDS, "extra"])
    if frame.empty:
        raise InputError(f"study '{code}' has no measurements", field="study")
    frame = frame.where(frame.notna(), np.nan)  # SQL NULL is NaN, as in the tables read
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
    with _transaction(target) as session:
        actor = _user(session, user)
        _require_role(actor, ("analyst", "study_director", "admin"), "edit measurements")
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
        session.flush()
        study = session.get(Study, plate.study_id)
        table = load_measurements(session, study, plates=[plate.code])  # validates the edit
        plate.measurements_sha256 = _fingerprint(table)
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
        )
        return row


# --- analyses ---------------------------------------------------------------------------


def _require_role(user: User, roles: tuple[str, ...], action: str) -> None:
    if user.role not in roles:
        raise AuthorizationError(
            f"user '{user.username}' ({user.role}) may not {action}; needs one of: {', '.join(roles)}"
        )


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
    with _transaction(target) as session:
        actor = _user(session, user)
        _require_role(actor, ("analyst", "study_director", "admin"), "run analyses")
        st = _study(session, study)
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
        plates = [] if table is None else _import_plates(session, table, st, actor)
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
) -> Analysis:
    """Finish a ``queued`` or ``running`` analysis (a background job): store its result
    tables (and the plates it read, and its report) and mark it ``completed``, in one
    transaction."""
    encoded = {str(name): encode_table(str(name), frame) for name, frame in tables.items()}
    table = None if measurements is None else validate_measurements(measurements)
    with _transaction(target) as session:
        actor = _user(session, user)
        _require_role(actor, ("analyst", "study_director", "admin"), "run analyses")
        row = _analysis(session, analysis, lock=True)
        _refuse_signed(row, "complete it")
        if row.status not in ("queued", "running"):
            raise InputError(
                f"analysis {row.id} is {row.status}", field="status", expected="queued | running"
            )
        clash = sorted(set(encoded) & {t.name for t in row.tables})
        if clash:
            raise InputError(f"analysis {row.id} already has table '{clash[0]}'", field="tables")
        if table is not None:
            study = session.get(Study, row.study_id)
            for plate in _import_plates(session, table, study, actor):
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
        old, row.status = row.status, "completed"
        row.progress, row.progress_message = 1.0, "completed"
        row.heartbeat_at = dt.datetime.now(dt.UTC)
        session.flush()
        record(
            session,
            "status",
            "analysis",
            row.id,
            user=actor,
            details={
                "old": old,
                "new": "completed",
                "plates": [p.code for p in row.plates],
                "tables": {n: e.sha256 for n, e in sorted(encoded.items())},
                "report_sha256": report_sha,
            },
        )
        return row


def quantification_settings(result: Any) -> dict[str, Any]:
    """The settings of a :class:`~cytosafe.quantification.QuantificationResult`, in the
    shape of ``settings.json`` written by ``cytosafe quantify``."""
    from cytosafe import __version__

    cal = result.calibration
    return {
        "cytosafe_version": __version__,
        "command": "quantify",
        "inputs": list(result.sources),
        "calibration": {**cal.settings.to_dict(), "formula": cal.fit.model.formula},
        "potency": result.potency_settings.to_dict(),
    }


def import_quantification(
    target: Store | Session,
    result: Any,
    *,
    study: Study | str | None = None,
    user: User | str,
    settings: Mapping[str, Any] | None = None,
    inputs: list[dict[str, Any]] | None = None,
    report: bytes | str | None = None,
    previous: Analysis | int | None = None,
    note: str | None = None,
) -> Analysis:
    """Store a quantification run: its measurements (plates), and as tables
    ``concentrations``, ``samples``, ``curves``, ``standards``, ``qc`` and ``potency``.

    ``study`` defaults to the measurements' single ``study_id``; ``settings`` to
    :func:`quantification_settings`; ``inputs`` to the hashes of ``result.sources`` that
    are files (a DataFrame input is fingerprinted by its measurements).
    """
    measurements = result.measurements
    if study is None:
        codes = measurements["study_id"].unique().tolist()
        if len(codes) != 1:
            raise InputError("the measurements hold several studies; name one", field="study")
        study = codes[0]
    if inputs is None:
        inputs = [
            h if h["sha256"] else {**h, "measurements_sha256": _fingerprint(measurements)}
            for h in file_hashes(result.sources)
        ]
    tables = result.tables()
    return import_analysis(
        target,
        "quantification",
        tables,
        study=study,
        user=user,
        settings=settings if settings is not None else quantification_settings(result),
        inputs=inputs,
        measurements=measurements,
        report=report,
        previous=previous,
        note=note,
    )


def _analysis(session: Session, analysis: Analysis | int, *, lock: bool = False) -> Analysis:
    found = session.get(Analysis, getattr(analysis, "id", analysis), with_for_update=lock)
    if found is None:
        raise InputError(f"no analysis {getattr(analysis, 'id', analysis)}", field="analysis")
    return found


def _refuse_signed(analysis: Analysis, what: str) -> None:
    if analysis.status == "signed_off":
        raise SignedOffError(
            f"analysis {analysis.id} ({analysis.kind} v{analysis.version}) is signed off: cannot {what}",
            field="analysis",
            expected="a re-analysis (a new version) instead",
        )


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
    with _transaction(target) as session:
        actor = _user(session, user)
        row = _analysis(session, analysis, lock=True)
        _refuse_signed(row, "add a report")
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
    with _transaction(target) as session:
        actor = _user(session, user)
        row = _analysis(session, analysis, lock=True)
        _refuse_signed(row, "change its status")
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
    with _transaction(target) as session:
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
    with _transaction(target) as session:
        rows = session.scalars(
            select(Analysis).where(Analysis.status.in_(("queued", "running")))
        ).all()
        stale = []
        for row in rows:
            last = _aware(row.heartbeat_at or row.created_at)
            if last <= cutoff:
                stale.append((row, last))
        for row, last in stale:
            message = (
                f"interrupted: the server running this job stopped (last heard of at "
                f"{last.isoformat(timespec='seconds')}); run the analysis again"
            )
            set_status(session, row, "failed", user=row.created_by_id, message=message)
        return [row.id for row, _ in stale]


def sign_off(
    target: Store | Session,
    analysis: Analysis | int,
    *,
    user: User | str,
    meaning: str = "approved",
) -> Analysis:
    """Sign off a completed analysis (study director or admin): from now on it is final.

    ``meaning`` is what the signature means (21 CFR 11.50: review, approval, ...).
    """
    with _transaction(target) as session:
        actor = _user(session, user)
        _require_role(actor, SIGN_OFF_ROLES, "sign off analyses")
        row = _analysis(session, analysis, lock=True)
        _refuse_signed(row, "sign it off again")
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


def load_table(target: Store | Session, analysis: Analysis | int, name: str) -> pd.DataFrame:
    """One result table of an analysis, as it was stored."""
    with _reading(target) as session:
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
    with _reading(target) as session:
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


# --- clinical ---------------------------------------------------------------------------


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
    with _transaction(target) as session:
        actor = _user(session, user)
        st = _study(session, study)
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
            for r in _records(
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
    with _transaction(target) as session:
        st = _study(session, study)
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
                    "criterion": None if _python(c) is None else str(c),
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


# --- the ORM refuses changes to signed-off analyses (the database triggers do too) -------


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
