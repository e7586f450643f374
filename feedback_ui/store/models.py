"""The store's tables (SQLAlchemy 2 declarative models).

Review history is append-only: ``saves`` and ``actions`` rows are never updated or deleted. An
undo is a new ``saves`` row of kind ``undo`` pointing at the save it cancels; a field's current
value is derived from the latest action of a save that was not undone. ``documents.revision``
is bumped by every save so concurrent writers serialise on the document's row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of the feedback store."""


class DocumentRow(Base):
    """One page as loaded/OCR'd: the ``Document`` JSON, its source file and content hash."""

    __tablename__ = "documents"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    source: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    dataset: Mapped[str] = mapped_column(String(255), default="default")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revision: Mapped[int] = mapped_column(Integer, default=0)


class ExtractionRow(Base):
    """One ``ExtractionResult`` (all candidates with scores) for a document and model version."""

    __tablename__ = "extractions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doc_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    model_version: Mapped[str] = mapped_column(String(255), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SaveRow(Base):
    """One operator submission for a document (a ``review``), or an ``undo`` of one."""

    __tablename__ = "saves"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doc_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    extraction_id: Mapped[int | None] = mapped_column(ForeignKey("extractions.id"))
    kind: Mapped[str] = mapped_column(String(16))
    undoes_id: Mapped[int | None] = mapped_column(ForeignKey("saves.id"), unique=True)
    operator: Mapped[str] = mapped_column(String(255), index=True)
    dataset: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ActionRow(Base):
    """What the operator did with one field: shown value/candidates, action, final value and
    the final value's word span (``None`` when no words spell it, and on rows older than 0002).
    """

    __tablename__ = "actions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    save_id: Mapped[int] = mapped_column(ForeignKey("saves.id"), index=True)
    doc_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    field: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(16))
    pick_index: Mapped[int | None] = mapped_column(Integer)
    shown_value: Mapped[str | None] = mapped_column(Text)
    shown_confidence: Mapped[float | None] = mapped_column(Float)
    candidates_shown: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    prev_value: Mapped[str | None] = mapped_column(Text)
    final_value: Mapped[str | None] = mapped_column(Text)
    final_span: Mapped[list[int] | None] = mapped_column(JSON)  # revision 0002


class LeaseRow(Base):
    """Who is reviewing a document and until when (the only mutable, non-history table)."""

    __tablename__ = "leases"
    doc_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), primary_key=True)
    operator: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
