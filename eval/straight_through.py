"""Straight-through processing in ``kvloop eval``: coverage at a precision, and minutes saved.

Scores are the correctness model's P(correct) (``extractor.straight_through``) of each
(document, field) answer, judged as everywhere in eval (``extractor.scoring.is_correct``).
Two readings, kept apart:

* ``curve`` / ``targets`` (``eval.savings.savings`` on P(correct)): the largest coverage whose
  precision on *these* documents reaches 95 / 99 / 99.5%: an oracle that knew the gold, what
  P(correct) could do at best;
* ``certified``: what the certified thresholds of the model card (fitted beforehand, never on
  these documents) accept here, and the precision realised: what a deployment gets.

``minutes_per_100``: operator minutes the certified thresholds save per 100 documents, with
the effort model of ``kvloop compare`` (``kvloop.compare.operator.EffortModel``; its seconds
are passed in, eval does not import kvloop): every auto-accepted field saves verifying it and
accepting it; a document with every field auto-accepted is not opened at all.

A model fitted with the vendor-memory feature is scored here without a memory (eval has no
store): its memory votes are "unknown", as in ``kvloop extract``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eval.savings import savings
from extractor.document import Document, ExtractionResult, Schema
from extractor.scoring import is_correct
from extractor.straight_through import StraightThrough

TARGETS: tuple[float, ...] = (0.95, 0.99, 0.995)


@dataclass(frozen=True)
class Effort:
    """Seconds an operator spends per field (verify + accept) and per opened document."""

    field_s: float
    document_s: float


def _certified(scores: Sequence[float], correct: Sequence[bool], threshold: float | None
               ) -> dict[str, Any]:
    acc = [c for s, c in zip(scores, correct) if threshold is not None and s >= threshold]
    return {"threshold": threshold, "accepted": len(acc),
            "coverage": len(acc) / len(scores) if scores else 0.0,
            "precision": sum(acc) / len(acc) if acc else None}


def straight_through_metrics(docs: Sequence[Document], results: Sequence[ExtractionResult],
                             schema: Schema, st: StraightThrough,
                             effort: Effort | None = None,
                             targets: Sequence[float] = TARGETS) -> dict[str, Any]:
    """Per field and overall: the P(correct) curve and oracle targets, the certified
    thresholds' coverage and realised precision, and (with ``effort``) minutes saved."""
    by_id = {r.doc_id: r for r in results}
    names = schema.field_names
    scores: dict[str, list[float]] = {f: [] for f in names}
    correct: dict[str, list[bool]] = {f: [] for f in names}
    thresholds = {f: (c.threshold if (c := st.certificates.get(f)) else None) for f in names}
    whole_docs = 0
    n_docs = 0
    for d in docs:
        if d.gold is None:
            continue
        r = by_id.get(d.id) or ExtractionResult(d.id, "", {})
        n_docs += 1
        ps = st.scores(d, r, schema)
        all_in = True
        for f in names:
            fr = r.fields.get(f)
            scores[f].append(ps[f])
            correct[f].append(is_correct(d.gold.get(f), fr.value if fr else None))
            thr = thresholds[f]
            all_in &= thr is not None and ps[f] >= thr
        whole_docs += all_in
    fields = {f: {**savings(scores[f], correct[f], targets),
                  "certified": _certified(scores[f], correct[f], thresholds[f])}
              for f in names}
    every_s = [s for f in names for s in scores[f]]
    every_c = [c for f in names for c in correct[f]]
    accepted = sum(fields[f]["certified"]["accepted"] for f in names)
    right = sum(c for f in names if (thr := thresholds[f]) is not None
                for s, c in zip(scores[f], correct[f]) if s >= thr)
    overall = {**savings(every_s, every_c, targets),
               "certified": {"accepted": accepted,
                             "coverage": accepted / len(every_s) if every_s else 0.0,
                             "precision": right / accepted if accepted else None,
                             "documents_untouched": whole_docs}}
    out: dict[str, Any] = {"n_docs": n_docs, "target": st.target, "level": st.level,
                           "overall": overall, "fields": fields}
    if effort is not None and n_docs:
        saved_s = accepted * effort.field_s + whole_docs * effort.document_s
        out["minutes_per_100"] = saved_s / n_docs * 100 / 60
        out["effort"] = {"field_s": effort.field_s, "document_s": effort.document_s}
    return out
