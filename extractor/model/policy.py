"""The extractor as a batched policy: log-probs and samples of many (document, field) at once.

Trainers score many (document, field, outcome) triples per step. Asking
``KVEnsemble.log_probs(doc, field, ...)`` for each runs the encoders once per (document, field);
:class:`BatchedPolicy` runs them once for all documents of a batch (windows of every page
length-bucketed together, ``KVEnsemble.word_log_probs``), builds each (document, field) span
categorical once (``decode.span_log_probs``) and gathers every outcome's log-prob from it with
one index. The result is differentiable; ``dropout=False`` (the default) runs the forward in
eval mode, so a log-prob ratio (PPO) or a reference comparison (DPO, KL) compares the same
function on both sides, while gradients still flow.

An outcome is a list of word indices into ``doc.words`` (a contiguous span) or ``[]`` for
"absent"; the categorical is the one the decoder ranks (see ``extractor.model.decode``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from extractor.document import Document
from extractor.model import decode
from extractor.model.ensemble import KVEnsemble, SpanDistribution

Outcome = Sequence[int]


@dataclass(frozen=True)
class FieldOutcomes:
    """Outcomes to score for one field of one document (``doc`` indexes the batch)."""

    doc: int
    field: str
    outcomes: Sequence[Outcome]


@dataclass
class SampledOutcomes:
    """``n`` outcomes drawn for one (document, field), with their log-probs (no grad)."""

    doc: int
    field: str
    outcomes: list[list[int]]
    log_probs: torch.Tensor  # [n]


@contextmanager
def dropout_off(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) for the duration, the previous mode restored; grads still flow."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def outcome_log_probs(dist: SpanDistribution, outcomes: Sequence[Outcome]) -> torch.Tensor:
    """Log-probs [K] of ``outcomes`` under one (document, field) span categorical."""
    return decode.outcome_log_probs(dist.span_lp, dist.absent_lp, dist.word_lp, dist.b_id,
                                    dist.i_id, outcomes)


class BatchedPolicy:
    """Span-categorical policy over a ``KVEnsemble``, batched across documents.

    ``batch_size`` is in windows per encoder forward (the ensemble's length buckets).
    """

    def __init__(self, model: KVEnsemble, batch_size: int = 8) -> None:
        self.model, self.batch_size = model, batch_size

    def word_log_probs(self, docs: Sequence[Document], dropout: bool = False
                       ) -> list[torch.Tensor]:
        """Fused per-word tag log-probs [n_i, L] of each document's ``words``, one forward."""
        pages = [([w.text for w in d.words], d.normalized_boxes()) for d in docs]
        if dropout:
            outs = self.model.word_log_probs(pages, ("fused",), self.batch_size)
        else:
            with dropout_off(self.model):
                outs = self.model.word_log_probs(pages, ("fused",), self.batch_size)
        return [o["fused"] for o in outs]

    def distributions(self, docs: Sequence[Document], fields: Sequence[tuple[int, str]],
                      dropout: bool = False) -> dict[tuple[int, str], SpanDistribution]:
        """The span categorical of each (document index, field), from one forward."""
        needed = sorted({i for i, _ in fields})
        lps = dict(zip(needed, self.word_log_probs([docs[i] for i in needed], dropout)))
        return {(i, f): self.model.span_distribution(docs[i], f, lps[i]) for i, f in fields}

    def log_probs(self, docs: Sequence[Document], queries: Sequence[FieldOutcomes],
                  dropout: bool = False) -> list[torch.Tensor]:
        """Per query, the log-probs [K] of its outcomes (differentiable under grad mode)."""
        dists = self.distributions(docs, [(q.doc, q.field) for q in queries], dropout)
        return [outcome_log_probs(dists[(q.doc, q.field)], q.outcomes) for q in queries]

    def sample(self, docs: Sequence[Document], fields: Sequence[tuple[int, str]], n: int,
               generator: torch.Generator | None = None) -> list[SampledOutcomes]:
        """``n`` outcomes per (document index, field) and their log-probs (no grad, no
        dropout: the behaviour policy's log-probs for importance ratios)."""
        with torch.no_grad():
            dists = self.distributions(docs, fields)
            out = []
            for i, f in fields:
                d = dists[(i, f)]
                draws = decode.sample_spans(d.span_lp, d.absent_lp, n, generator)
                out.append(SampledOutcomes(i, f, draws, outcome_log_probs(d, draws)))
        return out
