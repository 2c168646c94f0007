"""Job progress in the store: how far a background analysis is, and when its server was
last heard of, so that any server process can report it and an interrupted job is found.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 13:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, not Alembic's batch mode: on SQLite batch mode may copy the table,
# which would drop the triggers that keep signed-off analyses immutable.


def upgrade() -> None:
    op.add_column("analyses", sa.Column("progress", sa.Float(), nullable=True))
    op.add_column("analyses", sa.Column("progress_message", sa.String(length=500), nullable=True))
    op.add_column("analyses", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for column in ("heartbeat_at", "progress_message", "progress"):
        op.drop_column("analyses", column)
