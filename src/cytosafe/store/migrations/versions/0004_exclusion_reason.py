"""Why a measurement is excluded: the reason travels with ``exclude`` (issue 12, item 8).

A column rather than a key of the measurement's ``extra`` JSON: ``extra`` holds what a
reader added at import and is never changed afterwards, while the reason changes with
every audited exclusion or restoration; as a typed column it is set in the same UPDATE as
``exclude``, read back by every quantification of the stored plate, and queried without
parsing JSON on either database.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, not Alembic's batch mode (see 0003): batch mode may copy the table.


def upgrade() -> None:
    op.add_column("measurements", sa.Column("exclusion_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("measurements", "exclusion_reason")
