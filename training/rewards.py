"""Rewards for the policy trainers: what a sampled outcome of one field is worth.

A reward scores outcomes of the span categorical (``extractor.model.policy``): for each query
(a document of the batch, a field, K outcomes, each a word span or ``[]`` = absent) it returns
a tensor [K] of rewards, higher is better, no gradient. Two implementations:

* :class:`ModelReward`: the learnt reward model (``extractor.model.reward.RewardModel``, whose
  ``score`` returns reward *logits*), mapped by ``transform``: ``"sigmoid"`` (the probability
  that the value is right, in [0, 1]) or ``"logit"`` (the raw logit; unbounded, a larger
  spread between good and bad outcomes, and easier to hack).
* :class:`OracleReward`: 1 when the outcome's value equals the document's gold value under
  ``lenient_key`` (the key the decoder merges values on), else 0. It reads gold, so it is an
  ablation (an upper bound on what a perfect reward model would teach), never a training
  signal for a deployed model.

``load_reward(spec)`` builds either from the ``--reward`` option: ``oracle`` or a reward-model
directory (``extractor.model.reward`` is imported only then).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from extractor.align import span_value
from extractor.document import Document, FieldSpec, Schema
from extractor.model.policy import FieldOutcomes, Outcome
from extractor.normalize import lenient_key

ORACLE = "oracle"
TRANSFORMS: tuple[str, ...] = ("sigmoid", "logit")


class Reward(Protocol):
    """Rewards [K] of each query's K outcomes (no grad; on any device)."""

    def score(self, docs: Sequence[Document], queries: Sequence[FieldOutcomes],
              ) -> list[torch.Tensor]: ...


def outcome_value(doc: Document, spec: FieldSpec, outcome: Outcome) -> str | None:
    """The value an outcome denotes: ``span_value`` of its words, ``None`` for absent."""
    return span_value(doc.words, outcome, spec) if outcome else None


def same_value(value: str | None, gold: str | None) -> bool:
    """One definition of "right value": equal ``lenient_key`` (absent only matches absent)."""
    if value is None or gold is None:
        return value is None and gold is None
    return lenient_key(value) == lenient_key(gold)


class OracleReward:
    """Exact match of each outcome's value with ``doc.gold`` (an ablation: reads gold)."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def score(self, docs: Sequence[Document], queries: Sequence[FieldOutcomes],
              ) -> list[torch.Tensor]:
        out = []
        for q in queries:
            doc = docs[q.doc]
            if doc.gold is None:
                raise ValueError(f"oracle reward: document {doc.id!r} has no gold values")
            spec, gold = self.schema[q.field], doc.gold.get(q.field)
            out.append(torch.tensor([float(same_value(outcome_value(doc, spec, o), gold))
                                     for o in q.outcomes]))
        return out


class ModelReward:
    """A reward model's logits as rewards: ``sigmoid(logit)`` or the logit itself."""

    def __init__(self, model: object, transform: str = "sigmoid") -> None:
        if transform not in TRANSFORMS:
            raise ValueError(f"reward transform must be one of {TRANSFORMS}, got {transform!r}")
        self.model, self.transform = model, transform

    def score(self, docs: Sequence[Document], queries: Sequence[FieldOutcomes],
              ) -> list[torch.Tensor]:
        with torch.no_grad():
            logits = self.model.score(docs, queries)  # type: ignore[attr-defined]
        return [lg.detach().sigmoid() if self.transform == "sigmoid" else lg.detach()
                for lg in logits]


def load_reward(spec: str, schema: Schema, transform: str = "sigmoid",
                device: str | torch.device | None = None) -> Reward:
    """``oracle`` or a saved reward model's directory (``ValueError`` when neither works)."""
    if not spec:
        raise ValueError("reward: a reward-model directory or 'oracle' is required")
    if spec == ORACLE:
        return OracleReward(schema)
    try:
        from extractor.model.reward import RewardModel
    except ImportError as e:
        raise ValueError(f"reward {spec!r}: reward models need extractor.model.reward, which "
                         f"this checkout does not have ({e})") from e
    model, _ = RewardModel.from_pretrained(spec, device)  # eval mode
    return ModelReward(model, transform)
