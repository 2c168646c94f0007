"""Chain heads written down at each sign-off, so that a truncated audit trail is found
(issue 14, item 2), and a baseline of the data's fingerprints for stores made before.

``audit_heads`` holds the entry number and hash that ended the chain when an analysis was
signed off; the database refuses to change or delete them, as it does for ``audit_log``.
A store upgraded from an earlier revision gets one audited ``baseline`` entry recording
the fingerprint of every object it holds (:func:`cytosafe.store.audit.record_baseline`,
written by :meth:`cytosafe.store.Store.upgrade` once this migration has run): from then
on a change made behind the store's back is found by ``cytosafe audit verify``; what was
changed before the upgrade cannot be (the baseline vouches for the data as it found it).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 13:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_TRIGGERS = {
    "audit_heads_no_update": "BEFORE UPDATE ON audit_heads BEGIN "
    "SELECT RAISE(ABORT, 'audit_heads is append-only: UPDATE refused'); END",
    "audit_heads_no_delete": "BEFORE DELETE ON audit_heads BEGIN "
    "SELECT RAISE(ABORT, 'audit_heads is append-only: DELETE refused'); END",
}
# The function cytosafe_audit_append_only() of the first migration raises for any row.
_PG_TRIGGERS = {
    "audit_heads_append_only": "BEFORE UPDATE OR DELETE ON audit_heads "
    "FOR EACH ROW EXECUTE FUNCTION cytosafe_audit_append_only()",
    "audit_heads_no_truncate": "BEFORE TRUNCATE ON audit_heads "
    "FOR EACH STATEMENT EXECUTE FUNCTION cytosafe_audit_append_only()",
}


def upgrade() -> None:
    op.create_table(
        "audit_heads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_heads")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_heads_seq")),
    )
    triggers = _PG_TRIGGERS if op.get_bind().dialect.name == "postgresql" else _SQLITE_TRIGGERS
    for name, body in triggers.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in _PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON audit_heads")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("audit_heads")
