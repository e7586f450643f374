"""Plain records the store API takes and returns (callers never see table rows)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from extractor.document import Candidate, Document

Action = Literal["accept", "pick", "edit", "clear", "not_present"]
ACTIONS: tuple[str, ...] = ("accept", "pick", "edit", "clear", "not_present")


@dataclass
class FieldAction:
    """What an operator did with one field, as recorded.

    ``seen_action_id`` is the id of the field's current action when it was shown (``None`` when
    the field had never been reviewed): the store rejects the save if it changed since.
    ``final_value`` is ``None`` for ``not_present`` and ``clear``.
    """

    field: str
    action: Action
    final_value: str | None
    shown_value: str | None = None
    shown_confidence: float | None = None
    candidates_shown: list[Candidate] = dataclasses.field(default_factory=list)
    pick_index: int | None = None
    seen_action_id: int | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"field {self.field!r}: action must be one of {ACTIONS}, "
                             f"got {self.action!r}")
        if self.action == "pick" and self.pick_index is None:
            raise ValueError(f"field {self.field!r}: a pick needs pick_index")


@dataclass
class Lease:
    """A review lease on one document."""

    doc_id: str
    operator: str
    acquired_at: datetime
    expires_at: datetime


@dataclass
class SaveRecord:
    """One stored submission (a review or an undo)."""

    id: int
    doc_id: str
    kind: str
    operator: str
    dataset: str
    started_at: datetime
    ended_at: datetime
    extraction_id: int | None = None
    undoes_id: int | None = None


@dataclass
class CurrentField:
    """A field's derived current value and the action it comes from."""

    value: str | None
    action_id: int
    action: str
    operator: str


@dataclass
class HistoryEntry:
    """One field change in a document's history: before -> after, by whom, when."""

    save_id: int
    kind: str
    field: str
    action: str
    before: str | None
    after: str | None
    shown_value: str | None
    operator: str
    ended_at: datetime
    undone: bool


@dataclass
class CorrectedDocument:
    """A reviewed document with its final field values, for training and evaluation."""

    document: Document
    values: dict[str, str | None]
    actions: dict[str, str]
    model_version: str | None
    operator: str
    reviewed_at: datetime

    def export(self) -> dict[str, Any]:
        return {"doc_id": self.document.id, "model_version": self.model_version,
                "operator": self.operator, "reviewed_at": self.reviewed_at.isoformat(),
                "values": self.values, "actions": self.actions,
                "document": self.document.export()}


@dataclass
class PreferencePair:
    """The operator's final value preferred over one candidate that was shown and rejected."""

    document: Document
    field: str
    chosen: str | None
    rejected: str
    rejected_score: float
    rejected_rank: int
    model_version: str | None

    def export(self) -> dict[str, Any]:
        return {"doc_id": self.document.id, "field": self.field, "chosen": self.chosen,
                "rejected": self.rejected, "rejected_score": self.rejected_score,
                "rejected_rank": self.rejected_rank, "model_version": self.model_version,
                "document": self.document.export()}


@dataclass
class StoreStats:
    """Counts for the stats page."""

    documents: int
    reviewed_documents: int
    saves_since: int
    docs_reviewed_since: int
    per_operator_since: dict[str, int]
    corrections_per_field: dict[str, int]
    actions_per_field: dict[str, int]
    agreement_per_field: dict[str, float]
    agreement: float | None
