"""Plain records the store API takes and returns (callers never see table rows)."""

from __future__ import annotations

import dataclasses
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from extractor.document import Candidate, Document

Action = Literal["accept", "pick", "edit", "clear", "not_present", "reject"]
ACTIONS: tuple[str, ...] = ("accept", "pick", "edit", "clear", "not_present", "reject")
Span = list[int]
"""Word indices into ``Document.words`` (reading order)."""


@dataclass
class FieldAction:
    """What an operator did with one field, as recorded.

    ``seen_action_id`` is the id of the field's current action when it was shown (``None`` when
    the field had never been reviewed): the store rejects the save if it changed since.
    ``final_value`` is ``None`` for ``not_present``, ``clear`` and ``reject``; ``final_span``
    is where the final value sits on the page (``None`` when no words spell it). A ``reject``
    says the shown value is wrong without saying what is right, so it needs a shown value.
    """

    field: str
    action: Action
    final_value: str | None
    shown_value: str | None = None
    shown_confidence: float | None = None
    candidates_shown: list[Candidate] = dataclasses.field(default_factory=list)
    pick_index: int | None = None
    seen_action_id: int | None = None
    final_span: Span | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"field {self.field!r}: action must be one of {ACTIONS}, "
                             f"got {self.action!r}")
        if self.action == "pick" and self.pick_index is None:
            raise ValueError(f"field {self.field!r}: a pick needs pick_index")
        if self.action == "reject" and (self.final_value is not None or self.shown_value is None):
            raise ValueError(f"field {self.field!r}: a reject marks the shown value wrong; it "
                             "needs a shown value and no final value")
        if self.final_span is not None and self.final_value is None:
            raise ValueError(f"field {self.field!r}: a span needs a final value")


@dataclass
class Lease:
    """A review lease on one document."""

    doc_id: str
    operator: str
    acquired_at: datetime
    expires_at: datetime


@dataclass
class LeaseEvent:
    """One change of a document's lease: ``acquire``, ``renew``, ``takeover`` (of
    ``previous``'s expired lease) or ``release``; ``expires_at`` is ``None`` after a release."""

    doc_id: str
    operator: str
    event: str
    at: datetime
    expires_at: datetime | None
    previous: str | None = None


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

    @property
    def seconds(self) -> float:
        """Time the operator spent on the document for this save (open to submit)."""
        return (self.ended_at - self.started_at).total_seconds()


@dataclass
class CurrentField:
    """A field's derived current value and the action it comes from.

    After a ``reject`` the value is ``None``, the field is still open and ``shown_value`` is
    the value that was rejected.
    """

    value: str | None
    action_id: int
    action: str
    operator: str
    shown_value: str | None = None


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
class FeedbackFilter:
    """Which fields the training API reads; every filter runs in SQL.

    A field is selected by its latest non-undone action: the model version of the extraction
    that action was made on, the save's dataset and operator, its end time (``since``
    inclusive, ``until`` exclusive) and the action name. ``limit`` caps the documents (by id).
    """

    model_version: str | None = None
    dataset: str | None = None
    operator: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    actions: AbstractSet[str] | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.actions or ()) - set(ACTIONS)
        if unknown:
            raise ValueError(f"unknown action(s) {sorted(unknown)}; choose from {ACTIONS}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")


@dataclass
class RejectedValue:
    """A value shown for a field and not chosen (``explicit``: the operator pressed reject).

    ``score`` and ``rank`` come from the candidate list it was shown in; a shown value that was
    no candidate (an earlier operator's edit) has neither.
    """

    value: str
    span: Span | None
    score: float | None
    rank: int | None
    explicit: bool

    def export(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FieldFeedback:
    """One field of a reviewed document: what was shown, done, and finally known.

    ``has_final`` is False when the latest action is a ``reject``: the shown value is known to
    be wrong but the right one is not (no SFT target, no preference pair, a reward signal).
    ``shown`` is the candidate list of the latest action, best first (rank = position).
    ``rejected`` is every other value shown over the field's non-undone history,
    de-duplicated by ``lenient_key`` and never the final value.
    """

    field: str
    action: str
    final_value: str | None
    final_span: Span | None
    has_final: bool
    shown: list[Candidate]
    rejected: list[RejectedValue]
    operator: str
    model_version: str | None

    def export(self) -> dict[str, Any]:
        return {"field": self.field, "action": self.action, "final_value": self.final_value,
                "final_span": self.final_span, "has_final": self.has_final,
                "shown": [c.export() for c in self.shown],
                "rejected": [r.export() for r in self.rejected], "operator": self.operator,
                "model_version": self.model_version}


@dataclass
class DocumentFeedback:
    """A reviewed document with the feedback on each selected field.

    ``operator``, ``model_version`` and ``reviewed_at`` are those of the latest save among the
    fields; ``seconds`` is the time operators spent on the document over those fields'
    non-undone saves.
    """

    document: Document
    fields: dict[str, FieldFeedback]
    operator: str
    model_version: str | None
    reviewed_at: datetime
    seconds: float

    def export(self) -> dict[str, Any]:
        """The record without the page (``doc_id`` refers to a documents file)."""
        return {"doc_id": self.document.id, "operator": self.operator,
                "model_version": self.model_version, "reviewed_at": self.reviewed_at.isoformat(),
                "seconds": self.seconds,
                "fields": {k: f.export() for k, f in self.fields.items()}}


@dataclass
class CorrectedDocument:
    """A reviewed document with its final field values, for training and evaluation.

    Only fields with a known final value are listed (a rejected-only field is not a target).
    """

    document: Document
    values: dict[str, str | None]
    actions: dict[str, str]
    model_version: str | None
    operator: str
    reviewed_at: datetime
    spans: dict[str, Span | None] = dataclasses.field(default_factory=dict)

    def export(self) -> dict[str, Any]:
        return {"doc_id": self.document.id, "model_version": self.model_version,
                "operator": self.operator, "reviewed_at": self.reviewed_at.isoformat(),
                "values": self.values, "actions": self.actions, "spans": self.spans,
                "document": self.document.export()}


@dataclass
class PreferencePair:
    """The operator's final value preferred over one value that was shown and not chosen.

    Pages are not embedded: ``doc_id`` refers to ``FeedbackStore.documents`` (or the documents
    file an export writes beside the pairs). ``explicit`` is True when the operator rejected
    that value with the ``reject`` action.
    """

    doc_id: str
    field: str
    chosen: str | None
    chosen_span: Span | None
    rejected: str
    rejected_span: Span | None
    rejected_score: float | None
    rejected_rank: int | None
    explicit: bool
    model_version: str | None

    def export(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
    rejects_per_field: dict[str, int]
