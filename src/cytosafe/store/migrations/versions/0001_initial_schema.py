"""Initial schema: users and groups, studies, plates, measurements, analyses and their
tables, reports, patients, observations, grades, and the append-only audit log with the
triggers that guard it and signed-off analyses.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 10:18:53.823175
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# --- Triggers: the database itself refuses what the store API refuses. ----------------

_SQLITE_TRIGGERS = {
    "audit_log_no_update": "BEFORE UPDATE ON audit_log BEGIN "
    "SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END",
    "audit_log_no_delete": "BEFORE DELETE ON audit_log BEGIN "
    "SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END",
    "analyses_signed_off_no_update": "BEFORE UPDATE ON analyses "
    "WHEN OLD.status = 'signed_off' BEGIN "
    "SELECT RAISE(ABORT, 'analysis is signed off and cannot be changed'); END",
    "analyses_signed_off_no_delete": "BEFORE DELETE ON analyses "
    "WHEN OLD.status = 'signed_off' BEGIN "
    "SELECT RAISE(ABORT, 'analysis is signed off and cannot be deleted'); END",
}
for _table in ("analysis_tables", "reports", "grades", "analysis_plates"):
    _SQLITE_TRIGGERS[f"{_table}_signed_off_no_insert"] = (
        f"BEFORE INSERT ON {_table} WHEN (SELECT status FROM analyses "
        "WHERE id = NEW.analysis_id) = 'signed_off' BEGIN "
        "SELECT RAISE(ABORT, 'analysis is signed off and cannot be changed'); END"
    )
    _SQLITE_TRIGGERS[f"{_table}_signed_off_no_update"] = (
        f"BEFORE UPDATE ON {_table} WHEN (SELECT status FROM analyses "
        "WHERE id = OLD.analysis_id) = 'signed_off' BEGIN "
        "SELECT RAISE(ABORT, 'analysis is signed off and cannot be changed'); END"
    )
    _SQLITE_TRIGGERS[f"{_table}_signed_off_no_delete"] = (
        f"BEFORE DELETE ON {_table} WHEN (SELECT status FROM analyses "
        "WHERE id = OLD.analysis_id) = 'signed_off' BEGIN "
        "SELECT RAISE(ABORT, 'analysis is signed off and cannot be changed'); END"
    )

_PG_FUNCTIONS = {
    "cytosafe_audit_append_only": """
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END""",
    "cytosafe_analysis_immutable": """
        BEGIN
            IF OLD.status = 'signed_off' THEN
                RAISE EXCEPTION 'analysis % is signed off and cannot be changed', OLD.id
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
            RETURN NEW;
        END""",
    "cytosafe_analysis_part_immutable": """
        DECLARE
            parent integer;
        BEGIN
            IF TG_OP = 'INSERT' THEN parent := NEW.analysis_id; ELSE parent := OLD.analysis_id; END IF;
            IF EXISTS (SELECT 1 FROM analyses WHERE id = parent AND status = 'signed_off') THEN
                RAISE EXCEPTION 'analysis % is signed off and cannot be changed', parent
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
            RETURN NEW;
        END""",
}
_PG_TRIGGERS = {
    "audit_log_append_only": "BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION cytosafe_audit_append_only()",
    "audit_log_no_truncate": "BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION cytosafe_audit_append_only()",
    "analyses_immutable": "BEFORE UPDATE OR DELETE ON analyses "
    "FOR EACH ROW EXECUTE FUNCTION cytosafe_analysis_immutable()",
}
for _table in ("analysis_tables", "reports", "grades", "analysis_plates"):
    _PG_TRIGGERS[f"{_table}_immutable"] = (
        f"BEFORE INSERT OR UPDATE OR DELETE ON {_table} "
        "FOR EACH ROW EXECUTE FUNCTION cytosafe_analysis_part_immutable()"
    )


def _create_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, body in _PG_FUNCTIONS.items():
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $${body}\n$$")
        for name, body in _PG_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")
    else:
        for name, body in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")


def _drop_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, body in _PG_TRIGGERS.items():
            table = body.split(" ON ")[1].split()[0]
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for name in _PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table(
        "groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_groups_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('viewer', 'analyst', 'study_director', 'admin')", name=op.f("ck_users_role")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=200), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_audit_log_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_log_hash")),
        sa.UniqueConstraint("prev_hash", name=op.f("uq_audit_log_prev_hash")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_log_seq")),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_group_members_group_id_groups")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_group_members_user_id_users")
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_group_members")),
    )
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=200), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('cra', 'clinical')", name=op.f("ck_studies_kind")),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_studies_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_studies_group_id_groups")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
        sa.UniqueConstraint("code", name=op.f("uq_studies_code")),
    )
    op.create_table(
        "analyses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("cytosafe_version", sa.String(length=64), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("previous_id", sa.Integer(), nullable=True),
        sa.Column("source_analysis_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed_off_by_id", sa.Integer(), nullable=True),
        sa.Column("signed_off_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'failed', 'signed_off')",
            name=op.f("ck_analyses_status"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_analyses_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["previous_id"], ["analyses.id"], name=op.f("fk_analyses_previous_id_analyses")
        ),
        sa.ForeignKeyConstraint(
            ["signed_off_by_id"], ["users.id"], name=op.f("fk_analyses_signed_off_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["source_analysis_id"],
            ["analyses.id"],
            name=op.f("fk_analyses_source_analysis_id_analyses"),
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_analyses_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analyses")),
        sa.UniqueConstraint("study_id", "kind", "version", name="uq_analyses_study_kind_version"),
    )
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_analyses_study_id"), ["study_id"], unique=False)

    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_patients_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("study_id", "code", name="uq_patients_study_code"),
    )
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patients_study_id"), ["study_id"], unique=False)

    op.create_table(
        "plates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=200), nullable=False),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("measurements_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_plates_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plates")),
        sa.UniqueConstraint("study_id", "code", name="uq_plates_study_code"),
    )
    with op.batch_alter_table("plates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plates_study_id"), ["study_id"], unique=False)

    op.create_table(
        "analysis_plates",
        sa.Column("analysis_id", sa.Integer(), nullable=False),
        sa.Column("plate_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["analysis_id"], ["analyses.id"], name=op.f("fk_analysis_plates_analysis_id_analyses")
        ),
        sa.ForeignKeyConstraint(
            ["plate_id"], ["plates.id"], name=op.f("fk_analysis_plates_plate_id_plates")
        ),
        sa.PrimaryKeyConstraint("analysis_id", "plate_id", name=op.f("pk_analysis_plates")),
    )
    op.create_table(
        "analysis_tables",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("analysis_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["analysis_id"], ["analyses.id"], name=op.f("fk_analysis_tables_analysis_id_analyses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_tables")),
        sa.UniqueConstraint("analysis_id", "name", name="uq_analysis_tables_name"),
    )
    with op.batch_alter_table("analysis_tables", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_analysis_tables_analysis_id"), ["analysis_id"], unique=False
        )

    op.create_table(
        "grades",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("analysis_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scale", sa.String(length=64), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=False),
        sa.Column("criterion", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["analysis_id"], ["analyses.id"], name=op.f("fk_grades_analysis_id_analyses")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_grades_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grades")),
    )
    with op.batch_alter_table("grades", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_grades_analysis_id"), ["analysis_id"], unique=False)
        batch_op.create_index("ix_grades_patient_time", ["patient_id", "time"], unique=False)

    op.create_table(
        "measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plate_id", sa.Integer(), nullable=False),
        sa.Column("well", sa.String(length=8), nullable=False),
        sa.Column("analyte", sa.String(length=200), nullable=False),
        sa.Column("sample_type", sa.String(length=32), nullable=False),
        sa.Column("standard_concentration", sa.Float(), nullable=True),
        sa.Column("donor_id", sa.String(length=200), nullable=True),
        sa.Column("treatment", sa.String(length=200), nullable=True),
        sa.Column("treatment_role", sa.String(length=32), nullable=True),
        sa.Column("treatment_concentration", sa.Float(), nullable=True),
        sa.Column("treatment_unit", sa.String(length=32), nullable=True),
        sa.Column("assay_format", sa.String(length=64), nullable=True),
        sa.Column("incubation_h", sa.Float(), nullable=True),
        sa.Column("replicate", sa.Integer(), nullable=True),
        sa.Column("signal", sa.Float(), nullable=False),
        sa.Column("dilution_factor", sa.Float(), nullable=False),
        sa.Column("exclude", sa.Boolean(), nullable=False),
        sa.Column("sample_id", sa.String(length=200), nullable=True),
        sa.Column("bead_count", sa.Float(), nullable=True),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("source_row", sa.Integer(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["plate_id"], ["plates.id"], name=op.f("fk_measurements_plate_id_plates")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measurements")),
        sa.UniqueConstraint(
            "plate_id", "well", "analyte", name="uq_measurements_plate_well_analyte"
        ),
    )
    with op.batch_alter_table("measurements", schema=None) as batch_op:
        batch_op.create_index(
            "ix_measurements_plate_analyte", ["plate_id", "analyte"], unique=False
        )

    op.create_table(
        "observations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("item", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("unit", sa.String(length=32), nullable=True),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("source_row", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_observations_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observations")),
    )
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.create_index("ix_observations_patient_time", ["patient_id", "time"], unique=False)

    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("analysis_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["analysis_id"], ["analyses.id"], name=op.f("fk_reports_analysis_id_analyses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
    )
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reports_analysis_id"), ["analysis_id"], unique=False)

    # ### end Alembic commands ###
    _create_triggers()


def downgrade() -> None:
    _drop_triggers()
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reports_analysis_id"))

    op.drop_table("reports")
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.drop_index("ix_observations_patient_time")

    op.drop_table("observations")
    with op.batch_alter_table("measurements", schema=None) as batch_op:
        batch_op.drop_index("ix_measurements_plate_analyte")

    op.drop_table("measurements")
    with op.batch_alter_table("grades", schema=None) as batch_op:
        batch_op.drop_index("ix_grades_patient_time")
        batch_op.drop_index(batch_op.f("ix_grades_analysis_id"))

    op.drop_table("grades")
    with op.batch_alter_table("analysis_tables", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_analysis_tables_analysis_id"))

    op.drop_table("analysis_tables")
    op.drop_table("analysis_plates")
    with op.batch_alter_table("plates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plates_study_id"))

    op.drop_table("plates")
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patients_study_id"))

    op.drop_table("patients")
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_analyses_study_id"))

    op.drop_table("analyses")
    op.drop_table("studies")
    op.drop_table("group_members")
    op.drop_table("audit_log")
    op.drop_table("users")
    op.drop_table("groups")
    # ### end Alembic commands ###
