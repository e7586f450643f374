"""Direct preference optimisation of the extractor on chosen-vs-rejected values.

Pairs (offline, from the store): for every reviewed field with a known right outcome
(``FieldExample.target``: the operator's final span, or ``()`` = not present), the chosen side
is that outcome and each placed rejected value (``FieldExample.rejected`` with a span: a value
the operator saw and did not keep) is a rejected side. A reject-only field (the operator said
the shown value is wrong and gave no right one) has no chosen side: it gives no pair (and no
SFT target) and is counted (``PairCounts.reject_only``).

The log-probability of a **value** is that of every span that spells it (the decoder shows a
value's probability as that sum): ``logsumexp`` over the span categorical's log-probs
(``losses.logsumexp_value_logprob``) of every span of at most ``max_span_len`` words whose
``span_value`` has the value's ``lenient_key`` (:func:`value_spans`), plus the stored span
(which may be longer); "absent" is its own value. The reference is the start model (frozen);
its log-probs of the offline pairs are computed once.

Losses (``loss_type``):

* ``dpo``: ``losses.dpo_loss`` on the value log-probs (Rafailov et al. 2023, Eq. 7);
* ``dpop``: ``losses.dpop_loss`` (Pal et al. 2024, "Smaug", arXiv 2402.13228, Eq. 3): DPO
  with chosen and rejected values sharing most words lowers the chosen likelihood too; the
  ``lam`` term keeps it from falling below the reference's;
* ``diff_words``: ``losses.dpo_loss`` on the *differing-words scores* of the two stored spans
  (``policy_losses.differing_words_log_probs``): per word, the fused model's log-prob of the
  tag (``B-f``, ``I-f`` or neither) that each outcome implies, summed over only the words
  where the two outcomes imply different tags. Inspired by TDPO (Zeng et al. 2024) and
  Focused-/Target-DPO (Zhang et al. 2025; Wu et al. 2025); the exact definition is in
  ``training.policy_losses``.

Online (``online``; Guo et al. 2024, OAIF): every step draws ``samples_per_field`` outcomes per
reviewed field of the batch's documents from the current policy (``BatchedPolicy.sample``),
scores them with the reward (``training.rewards``), and pairs the best- over the worst-rewarded
value when their rewards differ; the store's pairs then only measure the epochs.

Selection: with dev pages (``dev_data``, ``FeedbackConfig``) the epoch with the best dev lenient
F1 is kept, else the latest.

Curves (per step): ``loss``, ``chosen_reward``/``rejected_reward`` (implicit rewards
``beta (log pi - log pi_ref)``, means), ``margin`` (their mean difference), ``accuracy``
(share of pairs with a positive margin), ``chosen_logp`` and ``chosen_vs_ref`` (mean
``log pi(chosen) - log pi_ref(chosen)``, negative when training lowers the chosen value),
``chosen_vs_ref_min`` (the pair whose chosen value fell most), ``chosen_down`` (share of pairs
whose chosen value is below the reference), ``rejected_vs_ref``, ``pairs``; per epoch the same
over every offline pair (``pairs_*``) and, with dev pages, ``dev_f1``, ``dev_strict_f1``,
``dev_recall_at_5``.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from extractor.align import value_spans
from extractor.devices import resolve_device
from extractor.document import Document, FieldSpec
from extractor.model.decode import field_label_ids
from extractor.model.policy import BatchedPolicy, FieldOutcomes
from extractor.normalize import lenient_key
from training.dpo_config import DPOConfig
from training.feedback_data import FeedbackSet
from training.feedback_trainer import FeedbackTrainer
from training.losses import dpo_loss, dpop_loss, logsumexp_value_logprob
from training.policy_losses import differing_words_log_probs
from training.rewards import Reward, load_reward, outcome_value, same_value

log = logging.getLogger(__name__)

Span = tuple[int, ...]  # word indices; () = absent


@dataclass(frozen=True)
class ValuePair:
    """A chosen and a rejected value of one field of one document (``doc`` indexes
    ``FeedbackSet.documents``): the stored spans and every span that spells each value."""

    doc: int
    field: str
    chosen: Span
    rejected: Span
    chosen_spans: tuple[Span, ...]
    rejected_spans: tuple[Span, ...]


@dataclass
class PairCounts:
    """What the reviewed fields gave: pairs, and why the others gave none."""

    fields: int = 0
    with_pairs: int = 0
    pairs: int = 0
    reject_only: int = 0  # rejected values but no right one: no chosen side
    no_rejection: int = 0  # a right value, and no placed rejected value that differs from it
    unknown_target: int = 0  # a typed right value the page's words cannot spell

    def export(self) -> dict[str, int]:
        return dict(vars(self))


class SpanIndex:
    """``value_spans`` of each (document, field type, key), computed once."""

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len
        self._cache: dict[tuple[int, str, str], list[Span]] = {}

    def spans(self, doc_index: int, doc: Document, spec: FieldSpec, value: str | None,
              stored: Span) -> tuple[Span, ...]:
        """The spans of ``value`` (``((),)`` for absent), ``stored`` included."""
        if value is None:
            return ((),)
        key = (doc_index, spec.type, lenient_key(value))
        if key not in self._cache:
            self._cache[key] = value_spans(doc.words, spec, value, self.max_len)
        return tuple(dict.fromkeys([*self._cache[key], *([stored] if stored else [])]))


def document_batches(docs_of: Sequence[int], per_batch: int,
                     rng: random.Random | None = None) -> list[list[int]]:
    """Item indices grouped by document, ``per_batch`` documents per batch (shuffled with
    ``rng``). A step then runs one forward per document and scores all its pairs with it:
    batching pairs instead cost one forward per pair's document, about one per pair, since
    a page gives a dozen pairs (four fields x its rejected values)."""
    by_doc: dict[int, list[int]] = {}
    for i, d in enumerate(docs_of):
        by_doc.setdefault(d, []).append(i)
    order = sorted(by_doc)
    if rng is not None:
        rng.shuffle(order)
    return [[i for d in order[a:a + per_batch] for i in by_doc[d]]
            for a in range(0, len(order), per_batch)]


def make_pair(index: SpanIndex, doc_index: int, doc: Document, spec: FieldSpec,
              chosen: Span, chosen_value: str | None, rejected: Span,
              rejected_value: str | None) -> ValuePair | None:
    """The pair, or ``None`` when both sides are one value (or one span)."""
    if chosen == rejected or same_value(chosen_value, rejected_value):
        return None
    c = index.spans(doc_index, doc, spec, chosen_value, chosen)
    r = tuple(s for s in index.spans(doc_index, doc, spec, rejected_value, rejected)
              if s not in set(c))
    return ValuePair(doc_index, spec.name, chosen, rejected, c, r) if r else None


def feedback_pairs(feedback: FeedbackSet, schema: Any, max_len: int,
                   max_per_field: int | None = None) -> tuple[list[ValuePair], PairCounts]:
    """The offline pairs of the feedback and the counts (module docstring)."""
    index, pairs, counts = SpanIndex(max_len), [], PairCounts()
    for e in feedback.examples:
        counts.fields += 1
        placed = [r for r in e.rejected if r.span]
        if not e.has_final:
            counts.reject_only += bool(placed)
            continue
        if e.target is None:
            counts.unknown_target += 1
            continue
        doc, spec = feedback.documents[e.doc], schema[e.field]
        made = [p for r in placed
                if (p := make_pair(index, e.doc, doc, spec, e.target,
                                   e.final_value if e.target else None, r.span, r.value))]
        made = made[:max_per_field] if max_per_field else made
        counts.no_rejection += not made
        counts.with_pairs += bool(made)
        pairs += made
    counts.pairs = len(pairs)
    return pairs, counts


@dataclass
class PairScores:
    """Policy and reference scores [N] of a list of pairs (policy with grad)."""

    pi_c: torch.Tensor
    pi_r: torch.Tensor
    ref_c: torch.Tensor
    ref_r: torch.Tensor


class DPOTrainer(FeedbackTrainer):
    """Preference pairs in, DPO / DPOP / differing-words updates, a new version out."""

    name = "dpo"
    cfg: DPOConfig

    def __init__(self, cfg: DPOConfig, feedback: FeedbackSet | None = None, *,
                 reward: Reward | None = None,
                 dev_docs: Sequence[Document] | None = None) -> None:
        super().__init__(cfg, feedback, dev_docs)
        schema = self.model.schema
        self.pairs, self.counts = feedback_pairs(self.feedback, schema, self.model.max_span_len,
                                                 cfg.max_pairs_per_field)
        log.info("dpo: %s", self.counts.export())
        self.reward: Reward | None = None
        if cfg.online:
            self.reward = reward if reward is not None else load_reward(
                cfg.reward, schema, cfg.reward_transform, resolve_device(cfg.device))
            self.index = SpanIndex(self.model.max_span_len)
            self.doc_fields = self._reviewed_fields()
            if not self.doc_fields:
                raise ValueError("dpo: online needs reviewed documents")
        elif not self.pairs:
            raise ValueError(f"dpo: no preference pairs in the feedback ({self.counts.export()})")
        self.policy = BatchedPolicy(self.model)
        self.ref_policy = BatchedPolicy(self.reference)  # frozen now, before any update
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self._ref_cache = self._reference_scores(self.pairs)  # [N, 2]

    def _reviewed_fields(self) -> list[tuple[int, list[str]]]:
        per_doc: dict[int, list[str]] = {}
        for e in self.feedback.examples:
            per_doc.setdefault(e.doc, []).append(e.field)
        return sorted(per_doc.items())

    # -- scores ----------------------------------------------------------------------------------
    def scores(self, policy: BatchedPolicy, pairs: Sequence[ValuePair]
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s_chosen [N], s_rejected [N])`` of ``pairs`` under ``policy``: value log-probs
        (``dpo``, ``dpop``) or differing-words scores (``diff_words``); one forward."""
        order = sorted({p.doc for p in pairs})
        pos = {d: i for i, d in enumerate(order)}
        docs = [self.feedback.documents[d] for d in order]
        if self.cfg.loss_type == "diff_words":
            wlp = policy.word_log_probs(docs)  # [n_i, L] per document
            c, r = [], []
            for p in pairs:
                b_id, i_id = field_label_ids(self.model.schema, p.field)
                sc, sr = differing_words_log_probs(wlp[pos[p.doc]], b_id, i_id, p.chosen,
                                                   p.rejected)
                c.append(sc)
                r.append(sr)
            return torch.stack(c), torch.stack(r)
        queries = [FieldOutcomes(pos[p.doc], p.field, [*p.chosen_spans, *p.rejected_spans])
                   for p in pairs]
        lps = policy.log_probs(docs, queries)  # [S_c + S_r] per pair
        n_c = [len(p.chosen_spans) for p in pairs]
        return (torch.stack([logsumexp_value_logprob(lp[:n]) for lp, n in zip(lps, n_c)]),
                torch.stack([logsumexp_value_logprob(lp[n:]) for lp, n in zip(lps, n_c)]))

    def _reference_scores(self, pairs: Sequence[ValuePair]) -> torch.Tensor:
        """Reference scores [N, 2] (chosen, rejected), ``batch_size`` documents per forward."""
        out = torch.zeros((len(pairs), 2))
        with torch.no_grad():
            for chunk in document_batches([p.doc for p in pairs], self.cfg.batch_size):
                c, r = self.scores(self.ref_policy, [pairs[i] for i in chunk])
                out[chunk] = torch.stack([c, r], dim=-1).cpu()
        return out

    def pair_scores(self, pairs: Sequence[ValuePair], ref: torch.Tensor | None = None
                    ) -> PairScores:
        if ref is None:
            ref = self._reference_scores(pairs)
        pi_c, pi_r = self.scores(self.policy, pairs)
        ref = ref.to(pi_c.device)
        return PairScores(pi_c, pi_r, ref[:, 0], ref[:, 1])

    def loss(self, s: PairScores) -> tuple[torch.Tensor, dict[str, float]]:
        """The configured preference loss and its curves (module docstring)."""
        cfg = self.cfg
        if cfg.loss_type == "dpop":
            loss, cr, rr = dpop_loss(s.pi_c, s.pi_r, s.ref_c, s.ref_r, cfg.beta, cfg.lam)
        else:
            loss, cr, rr = dpo_loss(s.pi_c, s.pi_r, s.ref_c, s.ref_r, cfg.beta)
        return loss, pair_curves(s, cr, rr)

    # -- the loop's hooks ------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        n = len(self.doc_fields) if self.cfg.online else len({p.doc for p in self.pairs})
        return max(1, math.ceil(n / self.cfg.batch_size))

    def epoch_batches(self, epoch: int, rng: random.Random) -> list[list[int]]:
        """Shuffled batches of ``batch_size`` documents: every pair of those documents
        (offline; pair indices), or the documents themselves (online)."""
        if not self.cfg.online:
            return document_batches([p.doc for p in self.pairs], self.cfg.batch_size, rng)
        order = list(range(len(self.doc_fields)))
        rng.shuffle(order)
        bs = self.cfg.batch_size
        return [order[i:i + bs] for i in range(0, len(order), bs)]

    def compute_loss(self, batch: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        if self.reference.device != self.model.device:
            self.reference.to(self.model.device)
        if self.cfg.online:
            pairs = self.online_pairs(batch)
            if not pairs:  # every field's samples tied: no parameter gets a gradient
                empty = torch.zeros(0, device=self.model.device)
                return (torch.zeros((), device=self.model.device, requires_grad=True),
                        pair_curves(PairScores(empty, empty, empty, empty), empty, empty))
            return self.loss(self.pair_scores(pairs))
        pairs = [self.pairs[i] for i in batch]
        return self.loss(self.pair_scores(pairs, self._ref_cache[batch]))

    def online_pairs(self, batch: Sequence[int]) -> list[ValuePair]:
        """Best- over worst-rewarded value of each field's samples from the current policy."""
        assert self.reward is not None
        entries = [self.doc_fields[i] for i in batch]
        docs = [self.feedback.documents[d] for d, _ in entries]
        fields = [(p, f) for p, (_, names) in enumerate(entries) for f in names]
        draws = self.policy.sample(docs, fields, self.cfg.samples_per_field, self.generator)
        rewards = self.reward.score(docs, [FieldOutcomes(s.doc, s.field, s.outcomes)
                                           for s in draws])
        pairs = []
        for s, r in zip(draws, rewards):
            best, worst = int(r.argmax()), int(r.argmin())
            if not float(r[best]) > float(r[worst]):
                continue
            d, doc, spec = entries[s.doc][0], docs[s.doc], self.model.schema[s.field]
            c, w = tuple(s.outcomes[best]), tuple(s.outcomes[worst])
            p = make_pair(self.index, d, doc, spec, c, outcome_value(doc, spec, c), w,
                          outcome_value(doc, spec, w))
            if p is not None:
                pairs.append(p)
        return pairs

    def evaluate(self, epoch: int) -> dict[str, Any]:
        """The curves over every offline pair (``pairs_*``, no grad) and the dev scores
        (``FeedbackTrainer.dev_scores``), after the epoch."""
        row = self.dev_scores()
        if self.pairs:
            with torch.no_grad():
                loss, parts = self.loss(self.pair_scores(self.pairs, self._ref_cache))
            row.update({f"pairs_{k}": v for k, v in {"loss": float(loss), **parts}.items()})
        return row

    def selection_score(self, row: dict[str, Any]) -> float:
        """Dev F1 when dev pages are given, else the latest epoch (``beta`` and the fixed
        reference are the regularisation; the ``pairs_*`` curves are the training pairs, no
        held-out measure to select on)."""
        return float(row["dev_f1"]) if "dev_f1" in row else float(row["epoch"])

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self.counts.export(), "loss_type": self.cfg.loss_type,
                "online": self.cfg.online}


def pair_curves(s: PairScores, chosen_reward: torch.Tensor, rejected_reward: torch.Tensor,
                ) -> dict[str, float]:
    """Means over a batch of pairs (0 for an empty batch)."""
    def mean(x: torch.Tensor) -> float:
        return float(x.detach().float().mean()) if x.numel() else 0.0

    margin = chosen_reward - rejected_reward
    shift = (s.pi_c - s.ref_c).detach()  # [N]
    return {"chosen_reward": mean(chosen_reward), "rejected_reward": mean(rejected_reward),
            "margin": mean(margin), "accuracy": mean((margin > 0).float()),
            "chosen_logp": mean(s.pi_c), "chosen_vs_ref": mean(shift),
            "chosen_vs_ref_min": float(shift.min()) if shift.numel() else 0.0,
            "chosen_down": mean((shift < 0).float()),
            "rejected_vs_ref": mean(s.pi_r - s.ref_r), "pairs": float(s.pi_c.numel())}
