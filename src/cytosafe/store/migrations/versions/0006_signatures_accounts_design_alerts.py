"""Electronic signatures, password changes, a study's stored design and monitoring
alerts (issues 14, 15 and 17).

- ``signatures``: one row per electronic signature of an analysis (21 CFR 11.50: the
  signer's name, the date and time, and the meaning of the signature; 11.70: linked to
  the record it signs, here by ``analysis_id`` and the SHA-256 of what was signed).
  Append-only, as ``audit_log`` is: the database refuses UPDATE and DELETE.
- ``users.must_change_password`` / ``users.password_changed_at``: the first admin, and
  anyone whose password an admin set, must choose their own at the next sign-in (OWASP
  ASVS 4.0.3, 2.1 and 2.5: initial and reset secrets are temporary).
- ``studies.design``: the study design (treatments, roles, matched controls, expected
  responses) entered in the web form, stored as the JSON of the study TOML's tables so
  that the TOML stays the import and export format.
- ``monitor_alerts``: alerts raised by ``cytosafe monitor`` (a grade increase, a
  predictor turning positive, a vital sign past a threshold), each with its reason and
  the time of the observation that raised it; acknowledged, never deleted.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 15:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_TRIGGERS = {
    "signatures_no_update": "BEFORE UPDATE ON signatures BEGIN "
    "SELECT RAISE(ABORT, 'signatures is append-only: UPDATE refused'); END",
    "signatures_no_delete": "BEFORE DELETE ON signatures BEGIN "
    "SELECT RAISE(ABORT, 'signatures is append-only: DELETE refused'); END",
}
# The function cytosafe_audit_append_only() of the first migration raises for any row.
_PG_TRIGGERS = {
    "signatures_append_only": "BEFORE UPDATE OR DELETE ON signatures "
    "FOR EACH ROW EXECUTE FUNCTION cytosafe_audit_append_only()",
    "signatures_no_truncate": "BEFORE TRUNCATE ON signatures "
    "FOR EACH STATEMENT EXECUTE FUNCTION cytosafe_audit_append_only()",
}


def upgrade() -> None:
    # Plain ALTER TABLE, not Alembic's batch mode (see 0003): batch mode may copy the table.
    op.add_column(
        "users",
        sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "users", sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("studies", sa.Column("design", sa.JSON(), nullable=True))
    op.create_table(
        "signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("analysis_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("meaning", sa.String(length=32), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed_sha256", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["analysis_id"], ["analyses.id"], name=op.f("fk_signatures_analysis_id_analyses")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_signatures_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signatures")),
    )
    op.create_index(op.f("ix_signatures_analysis_id"), "signatures", ["analysis_id"], unique=False)
    op.create_table(
        "monitor_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("patient_code", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_by_id", sa.Integer(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_monitor_alerts_study_id_studies")
        ),
        sa.ForeignKeyConstraint(
            ["acknowledged_by_id"],
            ["users.id"],
            name=op.f("fk_monitor_alerts_acknowledged_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_alerts")),
    )
    op.create_index(
        "ix_monitor_alerts_study_patient",
        "monitor_alerts",
        ["study_id", "patient_code"],
        unique=False,
    )
    triggers = _PG_TRIGGERS if op.get_bind().dialect.name == "postgresql" else _SQLITE_TRIGGERS
    for name, body in triggers.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in _PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON signatures")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_monitor_alerts_study_patient", table_name="monitor_alerts")
    op.drop_table("monitor_alerts")
    op.drop_index(op.f("ix_signatures_analysis_id"), table_name="signatures")
    op.drop_table("signatures")
    op.drop_column("studies", "design")
    op.drop_column("users", "password_changed_at")
    op.drop_column("users", "must_change_password")
