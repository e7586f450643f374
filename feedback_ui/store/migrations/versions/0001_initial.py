"""Initial schema: documents, extractions, saves, actions, leases.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("source", sa.Text()),
        sa.Column("content_hash", sa.String(64), nullable=False, index=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("dataset", sa.String(255), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
    )
    op.create_table(
        "extractions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("doc_id", sa.String(255), sa.ForeignKey("documents.id"), nullable=False,
                  index=True),
        sa.Column("model_version", sa.String(255), nullable=False, index=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "saves",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("doc_id", sa.String(255), sa.ForeignKey("documents.id"), nullable=False,
                  index=True),
        sa.Column("extraction_id", sa.Integer(), sa.ForeignKey("extractions.id")),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("undoes_id", sa.Integer(), sa.ForeignKey("saves.id"), unique=True),
        sa.Column("operator", sa.String(255), nullable=False, index=True),
        sa.Column("dataset", sa.String(255), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("ended_at", TZ, nullable=False, index=True),
    )
    op.create_table(
        "actions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("save_id", sa.Integer(), sa.ForeignKey("saves.id"), nullable=False,
                  index=True),
        sa.Column("doc_id", sa.String(255), sa.ForeignKey("documents.id"), nullable=False,
                  index=True),
        sa.Column("field", sa.String(255), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("pick_index", sa.Integer()),
        sa.Column("shown_value", sa.Text()),
        sa.Column("shown_confidence", sa.Float()),
        sa.Column("candidates_shown", sa.JSON(), nullable=False),
        sa.Column("prev_value", sa.Text()),
        sa.Column("final_value", sa.Text()),
    )
    op.create_table(
        "leases",
        sa.Column("doc_id", sa.String(255), sa.ForeignKey("documents.id"), primary_key=True),
        sa.Column("operator", sa.String(255), nullable=False),
        sa.Column("acquired_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
    )


def downgrade() -> None:
    for table in ("leases", "actions", "saves", "extractions", "documents"):
        op.drop_table(table)
