"""The store's tables (SQLAlchemy 2 declarative models).

Review history is append-only: ``saves`` and ``actions`` rows are never updated or deleted. An
undo is a new ``saves`` row of kind ``undo`` pointing at the save it cancels; a field's current
value is derived from the latest action of a save that was not undone. ``documents.revision``
is bumped by every save so concurrent writers serialise on the document's row. ``leases`` is
the one mutable table; ``lease_events`` keeps its history (who took, renewed, took over or
released which document, when).

Names (ids, operators, datasets, fields, model versions) are ``String(255)``: PostgreSQL
refuses longer ones and SQLite would keep them, so the rows refuse them on both with a
message that names the column.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

NAME_MAX = 255
"""Longest id / operator / dataset / field / model version the store keeps (characters)."""


class Base(DeclarativeBase):
    """Declarative base of the feedback store."""


def _bounded(*names: str) -> Any:
    """A validator refusing values of ``names`` longer than ``NAME_MAX`` (one per class:
    ``validates`` marks the function object it decorates)."""
    def check(row: Base, key: str, value: str | None) -> str | None:
        if value is not None and len(value) > NAME_MAX:
            raise ValueError(f"{row.__tablename__}.{key} is {len(value)} characters long; the "
                             f"store keeps at most {NAME_MAX}: {value[:40]!r}...")
        return value
    return validates(*names)(check)


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
    _names = _bounded("id", "dataset")


class ExtractionRow(Base):
    """One ``ExtractionResult`` (all candidates with scores) for a document and model version."""

    __tablename__ = "extractions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doc_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    model_version: Mapped[str] = mapped_column(String(255), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    _names = _bounded("model_version")


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
    _names = _bounded("operator", "dataset")


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
    _names = _bounded("field")


class LeaseRow(Base):
    """Who is reviewing a document and until when (the only mutable, non-history table)."""

    __tablename__ = "leases"
    doc_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), primary_key=True)
    operator: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    _names = _bounded("operator")


LEASE_EVENTS: tuple[str, ...] = ("acquire", "renew", "takeover", "release")


class LeaseEventRow(Base):
    """One change of a lease (revision 0003): ``acquire`` (nobody held it), ``renew`` (the
    holder again), ``takeover`` (of ``previous``'s expired lease), ``release``. ``expires_at``
    is the lease's expiry after the event (``None`` for a release)."""

    __tablename__ = "lease_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doc_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    operator: Mapped[str] = mapped_column(String(255))
    event: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    previous: Mapped[str | None] = mapped_column(String(255))
    _names = _bounded("operator", "previous")
