"""Keep the history of leases: ``lease_events`` (acquire, renew, takeover, release).

``leases`` holds only who reviews a document now; until this revision a lease that was taken
over or released left no trace. Each lease standing at upgrade time gets an ``acquire`` event
from its own row (holder, acquired_at, expires_at), so the history starts with what is known.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    events = op.create_table(
        "lease_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("doc_id", sa.String(255), sa.ForeignKey("documents.id"), nullable=False,
                  index=True),
        sa.Column("operator", sa.String(255), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("expires_at", TZ),
        sa.Column("previous", sa.String(255)),
    )
    leases = sa.table("leases", sa.column("doc_id"), sa.column("operator"),
                      sa.column("acquired_at"), sa.column("expires_at"))
    op.execute(events.insert().from_select(
        ["doc_id", "operator", "event", "at", "expires_at"],
        sa.select(leases.c.doc_id, leases.c.operator, sa.literal("acquire"),
                  leases.c.acquired_at, leases.c.expires_at).order_by(leases.c.acquired_at,
                                                                      leases.c.doc_id)))


def downgrade() -> None:
    op.drop_table("lease_events")
