"""The store's tables, as SQLAlchemy 2 typed declarative models.

Identifiers: every table has an integer surrogate key ``id``. The identifiers of the tidy
tables are kept as ``code`` columns: ``Study.code`` is the tidy ``study_id`` and
``Plate.code`` the tidy ``plate_id``; ``Patient.code`` is the observation table's
``patient_id``. Foreign keys (``study_id``, ``plate_id``, ...) hold surrogate keys.

Raw data (measurements, observations) are typed rows: they are the primary records a
GLP audit looks at, are queried by plate, analyte and patient, and are edited (with a
reason) only through :func:`cytosafe.store.edit_measurement`. Derived tables are stored
as :class:`AnalysisTable` rows: one Parquet blob per result table (see
:mod:`cytosafe.store.tables` for why). Grades, the result of clinical grading, are both:
typed rows for cohort queries and, when imported from an analysis, tied to it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false

__all__ = [
    "ANALYSIS_KINDS",
    "ANALYSIS_STATUSES",
    "ROLES",
    "Analysis",
    "AnalysisTable",
    "ApiToken",
    "AuditEntry",
    "AuditHead",
    "Base",
    "Grade",
    "Group",
    "Measurement",
    "MonitorAlert",
    "Observation",
    "Patient",
    "Plate",
    "Report",
    "Signature",
    "Study",
    "User",
]

#: Roles, from least to most privileged (the API of issue 6 item 3 checks them).
ROLES = ("viewer", "analyst", "study_director", "admin")
#: Kinds of analysis; a new stage adds its kind here and in a migration's check constraint.
ANALYSIS_KINDS = ("quantification", "hazard", "grading", "aop", "translation")
#: ``signed_off`` is final: the row and its tables can no longer change.
ANALYSIS_STATUSES = ("queued", "running", "completed", "failed", "signed_off")
STUDY_KINDS = ("cra", "clinical")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of every store table; constraints get predictable names so that
    later migrations (batch mode on SQLite) can address them."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


Timestamp = DateTime(timezone=True)


class Group(Base):
    """A team (lab, CRO client, clinical site); studies belong to at most one group."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=_now)

    members: Mapped[list[User]] = relationship(secondary="group_members", back_populates="groups")


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)


class User(Base):
    """A person who signs in. ``password_hash`` is an argon2id hash (None: cannot sign in,
    e.g. the local user of the command line)."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32), default="viewer")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=_now)
    #: Set for the first admin and for a password an admin chose: the user must choose
    #: their own at the next sign-in (migration 0006).
    must_change_password: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)

    groups: Mapped[list[Group]] = relationship(secondary="group_members", back_populates="members")


class ApiToken(Base):
    """A bearer token of the REST API, issued at password sign-in.

    Only the SHA-256 of the token is kept (the token is 256 random bits, so a fast hash
    suffices; a stolen database does not yield usable tokens). ``revoked_at`` set: signed
    out; past ``expires_at``: no longer accepted.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=_now)
    expires_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)

    user: Mapped[User] = relationship()


class Study(Base):
    """A study: a CRA (plates, measurements, analyses) or a clinical cohort (patients)."""

    __tablename__ = "studies"
    __table_args__ = (CheckConstraint(_in("kind", STUDY_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32), default="cra")
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=_now)
    #: The study design entered in the web form, as the JSON of the study TOML's tables
    #: (the TOML stays the import and export format; migration 0006).
    design: Mapped[dict | None] = mapped_column(JSON)

    plates: Mapped[list[Plate]] = relationship(back_populates="study")
    analyses: Mapped[list[Analysis]] = relationship(back_populates="study")
    group: Mapped[Group | None] = relationship()


class Plate(Base):
    """An assay plate of a study; ``measurements_sha256`` fingerprints its measurements so
    that importing the same plate again is recognised and a different one refused."""

    __tablename__ = "plates"
    __table_args__ = (UniqueConstraint("study_id", "code", name="uq_plates_study_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    code: Mapped[str] = mapped_column(String(200))
    source_file: Mapped[str | None] = mapped_column(Text)
    measurements_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=_now)

    study: Mapped[Study] = relationship(back_populates="plates")
    measurements: Mapped[list[Measurement]] = relationship(back_populates="plate")


class Measurement(Base):
    """One row of the tidy measurement table (:data:`cytosafe.schema.MEASUREMENT_COLUMNS`);
    ``study_id``/``plate_id`` of the tidy table are the plate's and study's codes. Columns a
    reader added beyond the contract are kept in ``extra`` (JSON).

    ``exclusion_reason`` is why the well is excluded (the latest reason given; NULL when it
    is not, or when an import marked it without one): it travels with ``exclude`` into every
    quantification of the stored plate, as the ``exclusion_reason`` column of the files'
    exclusions does (:mod:`cytosafe.store.exclusions`; the history is in the audit trail).
    """

    __tablename__ = "measurements"
    __table_args__ = (
        UniqueConstraint("plate_id", "well", "analyte", name="uq_measurements_plate_well_analyte"),
        Index("ix_measurements_plate_analyte", "plate_id", "analyte"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plate_id: Mapped[int] = mapped_column(ForeignKey("plates.id"))
    well: Mapped[str] = mapped_column(String(8))
    analyte: Mapped[str] = mapped_column(String(200))
    sample_type: Mapped[str] = mapped_column(String(32))
    standard_concentration: Mapped[float | None] = mapped_column(Float)
    donor_id: Mapped[str | None] = mapped_column(String(200))
    treatment: Mapped[str | None] = mapped_column(String(200))
    treatment_role: Mapped[str | None] = mapped_column(String(32))
    treatment_concentration: Mapped[float | None] = mapped_column(Float)
    treatment_unit: Mapped[str | None] = mapped_column(String(32))
    assay_format: Mapped[str | None] = mapped_column(String(64))
    incubation_h: Mapped[float | None] = mapped_column(Float)
    replicate: Mapped[int | None] = mapped_column(Integer)
    signal: Mapped[float] = mapped_column(Float)
    dilution_factor: Mapped[float] = mapped_column(Float, default=1.0)
    exclude: Mapped[bool] = mapped_column(Boolean, default=False)
    exclusion_reason: Mapped[str | None] = mapped_column(Text)
    sample_id: Mapped[str | None] = mapped_column(String(200))
    bead_count: Mapped[float | None] = mapped_column(Float)
    source_file: Mapped[str | None] = mapped_column(Text)
    source_row: Mapped[int | None] = mapped_column(Integer)
    extra: Mapped[dict | None] = mapped_column(JSON)

    plate: Mapped[Plate] = relationship(back_populates="measurements")


class AnalysisPlate(Base):
    """Which plates an analysis read (its provenance; an edit of a plate used by a
    signed-off analysis is refused)."""

    __tablename__ = "analysis_plates"

    analysis_id: Mapped[int] = mapped_column(ForeignKey("analyses.id"), primary_key=True)
    plate_id: Mapped[int] = mapped_column(ForeignKey("plates.id"), primary_key=True)


class Analysis(Base):
    """One run of an analysis stage on a study: its exact settings, CytoSafe version,
    input file hashes, status and version number.

    Versions count per study and kind (quantification v1, v2, ...); a re-analysis is a
    new row with the next version and ``previous_id`` pointing at the one it revises. A
    ``signed_off`` analysis is immutable: the store API and database triggers refuse to
    update or delete it or its tables.
    """

    __tablename__ = "analyses"
    __table_args__ = (
        UniqueConstraint("study_id", "kind", "version", name="uq_analyses_study_kind_version"),
        CheckConstraint(_in("status", ANALYSIS_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32), default="completed")
    settings: Mapped[dict] = mapped_column(JSON)
    cytosafe_version: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[list] = mapped_column(JSON, default=list)
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("analyses.id"))
    source_analysis_id: Mapped[int | None] = mapped_column(ForeignKey("analyses.id"))
    note: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=_now)
    signed_off_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    signed_off_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    # While a background job runs: how far it is (0-1), what it does, and when the server
    # running it last said so (a job not heard of for long was interrupted).
    progress: Mapped[float | None] = mapped_column(Float)
    progress_message: Mapped[str | None] = mapped_column(String(500))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)

    study: Mapped[Study] = relationship(back_populates="analyses")
    tables: Mapped[list[AnalysisTable]] = relationship(
        back_populates="analysis", order_by="AnalysisTable.name"
    )
    plates: Mapped[list[Plate]] = relationship(secondary="analysis_plates")
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    signed_off_by: Mapped[User | None] = relationship(foreign_keys=[signed_off_by_id])


class AnalysisTable(Base):
    """One result table of an analysis (``concentrations``, ``curves``, ``qc``, ``potency``,
    later ``hazard_calls`` ...) as Parquet bytes, with its column schema, row count and the
    SHA-256 of the bytes (also recorded in the audit entry of the import)."""

    __tablename__ = "analysis_tables"
    __table_args__ = (UniqueConstraint("analysis_id", "name", name="uq_analysis_tables_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analyses.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    format: Mapped[str] = mapped_column(String(16), default="parquet")
    columns: Mapped[list] = mapped_column(JSON)
    n_rows: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # loaded when read

    analysis: Mapped[Analysis] = relationship(back_populates="tables")


class Report(Base):
    """A rendered report (self-contained HTML, later PDF) of an analysis."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analyses.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(100), default="text/html")
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # loaded when read
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=_now)


class Patient(Base):
    """A patient of a clinical study; ``code`` is the observation table's ``patient_id``."""

    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("study_id", "code", name="uq_patients_study_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    code: Mapped[str] = mapped_column(String(200))


class Observation(Base):
    """One row of the observation table (patient_id, time, item, value, unit)."""

    __tablename__ = "observations"
    __table_args__ = (Index("ix_observations_patient_time", "patient_id", "time"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    time: Mapped[dt.datetime] = mapped_column(Timestamp)
    item: Mapped[str] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(Text)
    unit: Mapped[str | None] = mapped_column(String(32))
    source_file: Mapped[str | None] = mapped_column(Text)
    source_row: Mapped[int | None] = mapped_column(Integer)


class Grade(Base):
    """One graded time point (patient_id, time, scale, grade, criterion) of a grading
    analysis."""

    __tablename__ = "grades"
    __table_args__ = (Index("ix_grades_patient_time", "patient_id", "time"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analyses.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    time: Mapped[dt.datetime] = mapped_column(Timestamp)
    scale: Mapped[str] = mapped_column(String(64))
    grade: Mapped[int] = mapped_column(Integer)
    criterion: Mapped[str | None] = mapped_column(Text)


class AuditEntry(Base):
    """One entry of the append-only audit trail (see :mod:`cytosafe.store.audit`).

    ``seq`` numbers entries 1, 2, 3, ... without gaps; ``prev_hash`` is the previous
    entry's ``hash`` (64 zeros for the first) and ``hash`` the SHA-256 of ``prev_hash``
    and the canonical serialisation of this entry. ``details`` is canonical JSON text,
    stored as text so that the bytes hashed are the bytes kept.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[dt.datetime] = mapped_column(Timestamp)
    actor: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """A head of the audit chain written down when it mattered (each sign-off): the entry
    ``seq`` had hash ``hash`` then. :func:`cytosafe.store.verify_audit` checks that the
    chain still reaches every one, so a truncated tail is found; append-only as the
    log is (migration 0005). A copy kept outside the database (``cytosafe audit head``, the
    store's heads file) anchors the chain against someone who truncates both."""

    __tablename__ = "audit_heads"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(Timestamp)
    reason: Mapped[str] = mapped_column(Text)


class Signature(Base):
    """One electronic signature of an analysis: who, when and what it means (21 CFR 11.50),
    linked to the record signed by ``analysis_id`` and the SHA-256 of what was signed
    (11.70). Append-only: the database refuses UPDATE and DELETE (migration 0006)."""

    __tablename__ = "signatures"

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analyses.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    meaning: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str | None] = mapped_column(Text)
    signed_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=_now)
    signed_sha256: Mapped[str | None] = mapped_column(String(64))


class MonitorAlert(Base):
    """An alert raised by ``cytosafe monitor`` for one patient of a clinical study: its
    kind (grade increase, predictor positive, vital sign past a threshold), the reason in
    words, the time of the observation that raised it, and who acknowledged it."""

    __tablename__ = "monitor_alerts"
    __table_args__ = (Index("ix_monitor_alerts_study_patient", "study_id", "patient_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    patient_code: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict | None] = mapped_column(JSON)
    observed_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    raised_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=_now)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
