"""Training records from a field's review history (pure: rows in, records out, no SQL).

Values are compared with ``lenient_key``, the key the decoder merges candidates by: two
spellings it would merge (``27,JALAN`` / ``27, JALAN``) are one value here, so they are never
preferred over each other.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from extractor.document import Candidate, Document
from extractor.normalize import lenient_key
from feedback_ui.store.clock import as_utc
from feedback_ui.store.models import ActionRow, SaveRow
from feedback_ui.store.records import (
    DocumentFeedback,
    FieldFeedback,
    PreferencePair,
    RejectedValue,
    Span,
)

HistoryRow = tuple[ActionRow, SaveRow, str | None]
"""One non-undone action, its save and the model version of the save's extraction."""


def _note(seen: dict[str, RejectedValue], value: str, score: float | None, rank: int | None,
          explicit: bool) -> None:
    key = lenient_key(value)
    if not key:
        return
    old = seen.get(key)
    if old is None:
        seen[key] = RejectedValue(value, None, score, rank, explicit)
        return
    old.explicit = old.explicit or explicit
    if old.rank is None:
        old.score, old.rank = score, rank


def _known_spans(actions: Sequence[ActionRow]) -> dict[str, Span]:
    """Where each value was seen on the page: as a candidate or as someone's final value."""
    spans: dict[str, Span] = {}
    for a in actions:
        for c in a.candidates_shown:
            if c.get("word_indices"):
                spans.setdefault(lenient_key(c["value"]), list(c["word_indices"]))
        if a.final_value is not None and a.final_span:
            spans.setdefault(lenient_key(a.final_value), list(a.final_span))
    return spans


def rejected_values(actions: Sequence[ActionRow], final: str | None) -> list[RejectedValue]:
    """Every value shown over ``actions`` (oldest first) except ``final``, one per lenient key.

    A value's score and rank are those of the first candidate list it appeared in; it is
    ``explicit`` if any operator rejected it with the ``reject`` action.
    """
    seen: dict[str, RejectedValue] = {}
    for a in actions:
        for rank, c in enumerate(a.candidates_shown):
            _note(seen, str(c["value"]), float(c["score"]), rank, False)
        if a.shown_value is not None:
            _note(seen, a.shown_value, None, None, a.action == "reject")
    seen.pop(lenient_key(final), None)
    spans = _known_spans(actions)
    for key, r in seen.items():
        r.span = spans.get(key)
    return list(seen.values())


def field_feedback(history: Sequence[HistoryRow]) -> FieldFeedback:
    """One field's feedback from its non-undone actions, oldest first (the last is current)."""
    last, save, version = history[-1]
    has_final = last.action != "reject"
    final = last.final_value if has_final else None
    actions = [a for a, _, _ in history]
    return FieldFeedback(
        field=last.field, action=last.action, final_value=final, final_span=last.final_span,
        has_final=has_final, shown=[Candidate.from_dict(c) for c in last.candidates_shown],
        rejected=rejected_values(actions, final if has_final else None),
        operator=save.operator, model_version=version)


def fields_of(history: Sequence[HistoryRow]) -> dict[str, FieldFeedback]:
    """Per field (in the order first reviewed), from one document's rows ordered by action."""
    per_field: dict[str, list[HistoryRow]] = {}
    for row in history:
        per_field.setdefault(row[0].field, []).append(row)
    return {name: field_feedback(rows) for name, rows in per_field.items()}


def _seconds(history: Sequence[HistoryRow]) -> float:
    saves = {sv.id: sv for _, sv, _ in history}
    return sum((as_utc(sv.ended_at) - as_utc(sv.started_at)).total_seconds()
               for sv in saves.values())


def document_feedback(doc: Document, history: Sequence[HistoryRow]) -> DocumentFeedback:
    """The document's record; its operator/version/time are the latest save's."""
    _, latest, version = history[-1]
    reviewed_at: datetime = as_utc(latest.ended_at)
    return DocumentFeedback(document=doc, fields=fields_of(history), operator=latest.operator,
                            model_version=version, reviewed_at=reviewed_at,
                            seconds=_seconds(history))


def preference_pairs(doc_id: str, fields: dict[str, FieldFeedback]) -> Iterator[PreferencePair]:
    """The final value over each rejected value, for fields whose right value is known."""
    for f in fields.values():
        if not f.has_final:
            continue
        for r in f.rejected:
            yield PreferencePair(doc_id=doc_id, field=f.field, chosen=f.final_value,
                                 chosen_span=f.final_span, rejected=r.value,
                                 rejected_span=r.span, rejected_score=r.score,
                                 rejected_rank=r.rank, explicit=r.explicit,
                                 model_version=f.model_version)
