"""Record where each final value sits on the page: ``actions.final_span`` (word indices).

Nullable, so existing rows keep their data and read back with no span. The ``reject`` action
added with this revision needs no schema change (``actions.action`` is free text).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("actions", sa.Column("final_span", sa.JSON(), nullable=True))


def downgrade() -> None:
    # SQLite drops a column by rebuilding the table: batch mode does that (and is a plain
    # ALTER TABLE on PostgreSQL).
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("final_span")
