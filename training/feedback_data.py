"""What the feedback trainers learn from: the store's records as per-field examples.

Every trainer that learns from operators (SFT, reward model, RL, DPO) reads the feedback
store only through ``FeedbackStore.iter_feedback`` and turns each reviewed field into a
:class:`FieldExample`: the outcome the operator settled on as a word span of the page
(``target``; ``[]`` is "not present"; ``None`` when no right value is known: a reject-only
field, or a typed value the page's words cannot spell) and the spans of the values the
operator saw and did not keep (``rejected``). Values compare by ``lenient_key``, the key the
decoder merges candidates on, so two spellings of one value are never a pair.

``FeedbackSet`` keeps the documents once (examples index them) and a reference of which
records were read (``FeedbackRef``, recorded in the new model's card).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from extractor.document import Document
from extractor.model.card import FeedbackRef
from feedback_ui.store import DocumentFeedback, FeedbackFilter, FeedbackStore


@dataclass(frozen=True)
class RejectedSpan:
    """A value the operator saw and did not keep, where it sits on the page."""

    value: str
    span: tuple[int, ...]  # word indices into ``doc.words``; () when it could not be placed
    explicit: bool  # rejected with the ``reject`` action (not merely passed over)


@dataclass(frozen=True)
class FieldExample:
    """One reviewed field of one document (``doc`` indexes ``FeedbackSet.documents``)."""

    doc: int
    field: str
    target: tuple[int, ...] | None  # the kept outcome: a span, () = absent, None = unknown
    final_value: str | None
    has_final: bool  # False: only rejected (no right value was given)
    rejected: tuple[RejectedSpan, ...] = ()
    action: str = ""

    @property
    def has_target(self) -> bool:
        return self.target is not None


@dataclass
class FeedbackSet:
    """Documents and their per-field examples, as read from a store."""

    documents: list[Document]
    examples: list[FieldExample]
    ref: FeedbackRef = field(default_factory=FeedbackRef)

    def targets(self) -> list[FieldExample]:
        """Examples with a known right outcome (SFT's targets; DPO's and the reward model's
        chosen side)."""
        return [e for e in self.examples if e.has_target]

    def with_rejections(self) -> list[FieldExample]:
        """Examples with at least one placed wrong value (pairs; reject-only fields too)."""
        return [e for e in self.examples if any(r.span for r in e.rejected)]


def _span(span: Sequence[int] | None, n_words: int) -> tuple[int, ...] | None:
    """A stored span as a contiguous in-range tuple, or None (a stored span from another OCR
    pass, or a non-contiguous one, cannot be an outcome of the span categorical)."""
    if not span:
        return None
    s = tuple(sorted(int(i) for i in span))
    if s != tuple(range(s[0], s[-1] + 1)) or s[0] < 0 or s[-1] >= n_words:
        return None
    return s


def examples_of(doc_index: int, fb: DocumentFeedback) -> list[FieldExample]:
    """The per-field examples of one reviewed document."""
    n = len(fb.document.words)
    out = []
    for name, f in sorted(fb.fields.items()):
        target: tuple[int, ...] | None
        if not f.has_final:
            target = None
        elif f.final_value is None:
            target = ()  # "not present" is an outcome of the categorical too
        else:
            target = _span(f.final_span, n)
        # Without a right value, only what the operator rejected is known to be wrong: the
        # other candidates shown were not judged (the right value may be among them).
        judged = f.rejected if f.has_final else [r for r in f.rejected if r.explicit]
        rejected = tuple(RejectedSpan(r.value, _span(r.span, n) or (), r.explicit)
                         for r in judged)
        out.append(FieldExample(doc_index, name, target, f.final_value, f.has_final, rejected,
                                f.action))
    return out


def read_feedback(store: FeedbackStore, flt: FeedbackFilter | None = None,
                  fields: Iterable[str] | None = None) -> FeedbackSet:
    """Every reviewed field the filter selects (``fields``: only those), documents once."""
    keep = set(fields) if fields is not None else None
    docs: list[Document] = []
    examples: list[FieldExample] = []
    record_ids: list[str] = []
    for fb in store.iter_feedback(flt or FeedbackFilter()):
        ex = [e for e in examples_of(len(docs), fb) if keep is None or e.field in keep]
        if not ex:
            continue
        docs.append(fb.document)
        examples += ex
        record_ids += [f"{fb.document.id}/{e.field}/{e.action}/{e.final_value}" for e in ex]
    filters = {k: (sorted(v) if isinstance(v, (set, frozenset)) else
                   v.isoformat() if hasattr(v, "isoformat") else v)
               for k, v in vars(flt or FeedbackFilter()).items() if v is not None}
    ref = FeedbackRef.of(record_ids, [d.id for d in docs], _public_url(store.url), filters)
    return FeedbackSet(docs, examples, ref)


def _public_url(url: str) -> str:
    """The store URL (normalised by the store: always an SQLAlchemy URL) without a password:
    it goes into model cards."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def read_store_feedback(url: str, flt: FeedbackFilter | None = None,
                        fields: Iterable[str] | None = None) -> FeedbackSet:
    """:func:`read_feedback` of the store at ``url``, opened for the read and closed after."""
    with FeedbackStore(url) as store:
        return read_feedback(store, flt, fields)
