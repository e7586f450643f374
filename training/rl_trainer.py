"""Policy updates of the extractor against a reward: RLOO, GRPO or PPO, exact KL to the start.

Per field, extraction is a one-step contextual bandit: the context is the page, the action is
one outcome of the field's span categorical (a word span of at most ``max_span_len`` words, or
"absent"; ``extractor.model.policy``), the reward scores its value (``training.rewards``). No
value function is needed: the baseline is the group of ``K`` outcomes drawn for the same
(document, field).

One step (``compute_loss``):

1. one forward of the policy over the batch's documents (``BatchedPolicy.distributions``,
   dropout off, with grad) gives every (document, field) categorical;
2. on the first step of a batch of samples, ``K`` outcomes per (document, field) are drawn
   from those categoricals (their detached copy: the same draws and behaviour log-probs as
   ``BatchedPolicy.sample``, without a second forward), scored by the reward, and turned into
   advantages: ``rloo`` ``r_i - mean_{j != i} r_j``, ``grpo`` ``(r_i - mean r) / std r``
   (``losses.group_advantages``), ``ppo`` the leave-one-out advantages whitened over the batch
   (``losses.normalize_advantages``; the raw rewards whitened when ``K = 1``); the frozen
   start model's categoricals of the same fields are computed once per batch of samples;
3. the loss is the policy-gradient surrogate (``rloo``/``grpo``: one update per batch of
   samples, so the ratio is 1 and PPO's clipped surrogate equals it) or PPO's clipped
   surrogate (``ppo``: ``ppo_epochs`` updates on the same samples) plus
   ``kl_coef * mean KL(pi || pi_start)``, the KL computed **exactly** over every outcome of
   each categorical (``losses.span_categorical_kl``), not estimated from the samples;
4. ``adaptive_kl`` moves ``kl_coef`` towards ``kl_target`` after every step
   (``losses.adaptive_kl_coef``, Ziegler et al. 2019).

``kl_stop``: a step that measures a mean KL above the bound (at the weights before its update)
makes no update: it puts back the weights of the last step that measured the KL within the
bound and ends training (``training.loop.StopTraining``; the epoch is closed as usual).

Documents: the reviewed documents of the feedback (their reviewed fields) and, with
``pool_share > 0``, unreviewed pages of ``pool_data`` (every field of the schema) in that
share of every batch. Gold is removed from every training page unless the reward is the
oracle ablation. With ``dev_data``, dev lenient F1 is measured before training and after
every epoch; an epoch whose mean sampled reward rose while dev F1 fell (by more than
``hacking_f1_drop``) is logged as a warning and marked ``reward_hacking: true``.

Curves (``curves.jsonl``, one row per step): ``reward`` (mean of the batch of samples),
``reward_std``, ``kl`` (exact, mean over fields), ``kl_coef``, ``entropy`` (of the span
categorical, mean over fields), ``adv_mean``/``adv_std``, ``pg_loss``, ``pool_share``,
``ppo``: ``clip_frac`` and ``approx_kl`` (k3 estimate of KL(old || new)); per epoch also
``reward``, the dev scores (``dev_f1``, ``dev_strict_f1``, ``dev_recall_at_5``:
``FeedbackTrainer.dev_scores``), ``reward_hacking``, ``kl_stopped``.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

import torch

from extractor.devices import resolve_device
from extractor.document import Document
from extractor.model import decode
from extractor.model.ensemble import SpanDistribution
from extractor.model.policy import BatchedPolicy, FieldOutcomes, outcome_log_probs
from training.data import load_split
from training.feedback_data import FeedbackSet
from training.feedback_trainer import FeedbackTrainer
from training.loop import StopTraining
from training.losses import (
    adaptive_kl_coef,
    group_advantages,
    normalize_advantages,
    policy_gradient_loss,
    ppo_clip_loss,
    span_categorical_kl,
)
from training.policy_losses import (
    span_categorical_entropy,
    sum_and_sample_advantages,
    weighted_policy_gradient_loss,
)
from training.rewards import OracleReward, Reward, load_reward
from training.rl_config import RLConfig

log = logging.getLogger(__name__)

FieldKey = tuple[int, str]  # (position of the document in the batch, field)


@dataclass(frozen=True)
class RolloutBatch:
    """One optimiser step: which batch of samples (``rollout``), on which documents (indices
    into ``RLTrainer.docs``), and which update on those samples (0 draws them)."""

    rollout: int
    docs: tuple[int, ...]
    update: int = 0


@dataclass
class Rollout:
    """A batch of samples: ``K`` outcomes per field, their behaviour log-probs, rewards,
    advantages and the start model's categoricals (all without grad)."""

    rollout: int
    fields: list[FieldKey]
    outcomes: list[list[list[int]]]  # [G][K] word spans ([] = absent)
    old_logp: torch.Tensor  # [G, K]
    rewards: torch.Tensor  # [G, K]
    advantages: torch.Tensor  # [G, K]
    ref: list[tuple[torch.Tensor, torch.Tensor]]  # [G] (span_lp [n, M], absent_lp [])
    weights: torch.Tensor | None = None  # [G, K]: sum-and-sample weights (judged_outcomes)


def rollout_advantages(rewards: torch.Tensor, algorithm: str) -> torch.Tensor:
    """Advantages [G, K] of a batch of rewards [G, K] for ``algorithm`` (module docstring)."""
    if algorithm in ("rloo", "grpo"):
        return group_advantages(rewards, algorithm)
    base = group_advantages(rewards, "rloo") if rewards.shape[-1] > 1 else rewards  # [G, K]
    return normalize_advantages(base)


def pool_counts(n_batches: int, batch_size: int, share: float) -> list[int]:
    """Pool documents in each of ``n_batches`` batches: ``share`` of all slots overall (to the
    nearest document), spread so that each batch is within one document of the share."""
    cum = [round(j * batch_size * share) for j in range(n_batches + 1)]
    return [b - a for a, b in pairwise(cum)]


class _Cycle:
    """Endless shuffled passes over ``items``; ``take(k)`` gives ``k`` distinct items."""

    def __init__(self, items: Sequence[int], rng: random.Random) -> None:
        self.items, self.rng = list(items), rng
        self.queue: list[int] = []

    def take(self, k: int) -> list[int]:
        out: list[int] = []
        deferred: list[int] = []
        while len(out) < min(k, len(self.items)):
            if not self.queue:
                self.queue = self.rng.sample(self.items, len(self.items))
            x = self.queue.pop(0)
            (deferred if x in out else out).append(x)
        self.queue = deferred + self.queue
        return out


def _without_gold(docs: Iterable[Document]) -> list[Document]:
    return [replace(d, gold=None) for d in docs]


class RLTrainer(FeedbackTrainer):
    """Reward in, policy updates with an exact KL to the parent, a new version out."""

    name = "rl"
    cfg: RLConfig
    # What a resumed run needs besides weights, optimiser and generators: the adaptive KL
    # coefficient, the rewards and dev F1 the hacking warning compares with, the step count.
    resume_attrs = ("kl_coef", "_start_reward", "_prev_f1", "_prev_reward", "kl_stopped_at",
                    "_calls")

    def __init__(self, cfg: RLConfig, feedback: FeedbackSet | None = None, *,
                 reward: Reward | None = None, pool_docs: Sequence[Document] | None = None,
                 dev_docs: Sequence[Document] | None = None) -> None:
        super().__init__(cfg, feedback, dev_docs)
        self.reward = reward if reward is not None else load_reward(
            cfg.reward, self.model.schema, cfg.reward_transform, resolve_device(cfg.device))
        self.docs, self.fields_of, self.n_reviewed = self._documents(pool_docs)
        self.judged = self._judged() if cfg.judged_outcomes else {}
        n_pool = len(self.docs) - self.n_reviewed
        self.share = 1.0 if not self.n_reviewed else (cfg.pool_share if n_pool else 0.0)
        self.policy = BatchedPolicy(self.model)
        self.ref_policy = BatchedPolicy(self.reference)  # frozen now, before any update
        self.kl_coef = cfg.kl_coef
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self._rollout: Rollout | None = None
        self._calls = 0
        self._last_ok: dict[str, torch.Tensor] | None = None
        self.kl_stopped_at: int | None = None
        self._epoch_rewards: list[float] = []
        self._start_reward: float | None = None
        self._prev_reward: float | None = None
        self._prev_f1: float | None = self.dev_scores().get("dev_f1")  # the start model's
        log.info("rl: %s, %d reviewed + %d pool documents (pool share %.2f), %d dev, reward %s",
                 cfg.algorithm, self.n_reviewed, n_pool, self.share, len(self.dev_docs),
                 type(self.reward).__name__)

    def _documents(self, pool_docs: Sequence[Document] | None
                   ) -> tuple[list[Document], list[list[str]], int]:
        """Reviewed documents then pool documents, the fields to sample on each (reviewed:
        their reviewed fields; pool: every field), and how many are reviewed. Gold is removed
        unless the reward is the oracle ablation, which needs it on every page."""
        names = self.model.schema.field_names
        reviewed = list(self.feedback.documents)
        per_doc: dict[int, set[str]] = {}
        for e in self.feedback.examples:
            per_doc.setdefault(e.doc, set()).add(e.field)
        pool = self._pool(pool_docs, {d.id for d in reviewed})
        if not isinstance(self.reward, OracleReward):
            reviewed, pool = _without_gold(reviewed), _without_gold(pool)
        elif missing := [d.id for d in reviewed + pool if d.gold is None]:
            raise ValueError(f"rl: the oracle reward reads gold, and {len(missing)} documents "
                             f"have none (e.g. {missing[0]!r})")
        if not reviewed and not pool:
            raise ValueError("rl: no documents to sample on (no reviewed documents, no pool)")
        fields = ([[f for f in names if f in per_doc.get(i, ())] for i in range(len(reviewed))]
                  + [list(names)] * len(pool))
        return reviewed + pool, fields, len(reviewed)

    def _judged(self) -> dict[tuple[int, str], list[list[int]]]:
        """(reviewed document, field) -> the distinct outcomes the operator judged: the value
        kept (a span, or absent) and the values rejected that sit on the page."""
        out: dict[tuple[int, str], list[list[int]]] = {}
        for e in self.feedback.examples:
            spans = ([list(e.target)] if e.target is not None else []) + [
                list(r.span) for r in e.rejected if r.span]
            seen = out.setdefault((e.doc, e.field), [])
            seen += [o for o in spans if o not in seen]
        return out

    def _pool(self, given: Sequence[Document] | None, reviewed_ids: set[str]) -> list[Document]:
        cfg = self.cfg
        if cfg.pool_share == 0:
            return []
        docs = (list(given) if given is not None else
                load_split(cfg.pool_data, cfg.pool_split, cfg.pool_ocr, cfg.max_pool_docs)
                if cfg.pool_data else [])
        docs = [d for d in docs if d.id not in reviewed_ids]
        if not docs:
            raise ValueError("rl: pool_share > 0 needs unreviewed pool documents (pool_data)")
        return docs

    # -- batches ---------------------------------------------------------------------------------
    def n_rollouts(self) -> int:
        """Batches of samples per epoch: every reviewed document (or, without any, every pool
        document) at least once."""
        bs, n_pool = self.cfg.batch_size, len(self.docs) - self.n_reviewed
        if self.share >= 1.0:
            return max(1, math.ceil(n_pool / bs))
        return max(1, math.ceil(self.n_reviewed / (bs * (1.0 - self.share))))

    def steps_per_epoch(self) -> int:
        return self.n_rollouts() * self.cfg.updates_per_batch

    def epoch_batches(self, epoch: int, rng: random.Random) -> list[RolloutBatch]:
        bs, n = self.cfg.batch_size, self.n_rollouts()
        reviewed = _Cycle(range(self.n_reviewed), rng)
        pool = _Cycle(range(self.n_reviewed, len(self.docs)), rng)
        out = []
        for j, k in enumerate(pool_counts(n, bs, self.share)):
            docs = tuple(reviewed.take(bs - k) + pool.take(k))
            rollout = (epoch - 1) * n + j
            out += [RolloutBatch(rollout, docs, u) for u in range(self.cfg.updates_per_batch)]
        return out

    # -- one step --------------------------------------------------------------------------------
    def _sample_judged(self, batch: RolloutBatch, docs: list[Document],
                       fields: list[FieldKey], dists: dict[FieldKey, SpanDistribution]
                       ) -> Rollout:
        """Sum-and-sample (``judged_outcomes``): each field's judged outcomes, padded to the
        batch's most with the absent outcome at weight 0, then ``K`` draws from the rest."""
        k, device = self.cfg.samples_per_field, self.model.device
        # only outcomes of the categorical (a span longer than it enumerates is not one)
        fixed = [[o for o in self.judged.get((batch.docs[p], f), [])
                  if len(o) <= dists[(p, f)].span_lp.shape[1]] for p, f in fields]
        width = max(1, max(len(c) for c in fixed))
        outcomes, mask = [], []
        for key, c in zip(fields, fixed):
            d = dists[key]
            draws = decode.sample_spans(d.span_lp, d.absent_lp, k, self.generator, exclude=c)
            outcomes.append(c + [[]] * (width - len(c)) + draws)
            mask.append([True] * len(c) + [False] * (width - len(c)))
        old = torch.stack([outcome_log_probs(dists[key], o).detach()
                           for key, o in zip(fields, outcomes)])  # [G, F+K]
        rewards, ref = self._score(docs, fields, outcomes)
        weights, adv = sum_and_sample_advantages(
            old[:, :width].exp(), torch.tensor(mask, device=device), rewards[:, :width],
            rewards[:, width:])
        self._record_reward(float((weights * rewards).sum(-1).mean()))  # E_pi[R], estimated
        return Rollout(batch.rollout, fields, outcomes, old, rewards, adv, ref, weights)

    def _score(self, docs: list[Document], fields: list[FieldKey],
               outcomes: list[list[list[int]]]
               ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """The outcomes' rewards [G, N] and the start model's categoricals of the fields."""
        queries = [FieldOutcomes(p, f, o) for (p, f), o in zip(fields, outcomes)]
        with torch.no_grad():
            rewards = torch.stack([r.to(self.model.device, torch.float32)
                                   for r in self.reward.score(docs, queries)])
            ref_dists = self.ref_policy.distributions(docs, fields)
        return rewards, [(ref_dists[key].span_lp.detach(), ref_dists[key].absent_lp.detach())
                         for key in fields]

    def _record_reward(self, mean: float) -> None:
        """A batch's mean reward, for the epoch's hacking check."""
        self._epoch_rewards.append(mean)
        if self._start_reward is None:
            self._start_reward = mean

    def _sample(self, batch: RolloutBatch, docs: list[Document], fields: list[FieldKey],
                dists: dict[FieldKey, SpanDistribution]) -> Rollout:
        """Draw ``K`` outcomes per field from ``dists`` (detached), score, advantages."""
        if self.cfg.judged_outcomes:
            return self._sample_judged(batch, docs, fields, dists)
        k = self.cfg.samples_per_field
        outcomes, old = [], []
        for key in fields:
            d = dists[key]
            draws = decode.sample_spans(d.span_lp, d.absent_lp, k, self.generator)
            outcomes.append(draws)
            old.append(outcome_log_probs(d, draws).detach())
        rewards, ref = self._score(docs, fields, outcomes)  # [G, K]
        self._record_reward(float(rewards.mean()))
        return Rollout(batch.rollout, fields, outcomes, torch.stack(old), rewards,
                       rollout_advantages(rewards, self.cfg.algorithm), ref)

    def compute_loss(self, batch: RolloutBatch) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        self._calls += 1
        if self.reference.device != self.model.device:
            self.reference.to(self.model.device)
        docs = [self.docs[i] for i in batch.docs]
        fields = [(p, f) for p, i in enumerate(batch.docs) for f in self.fields_of[i]]
        dists = self.policy.distributions(docs, fields)  # with grad, dropout off
        if self._rollout is None or self._rollout.rollout != batch.rollout:
            self._rollout = self._sample(batch, docs, fields, dists)
        ro = self._rollout
        logp = torch.stack([outcome_log_probs(dists[key], o)
                            for key, o in zip(fields, ro.outcomes)])  # [G, K]
        kl = torch.stack([span_categorical_kl(dists[key].span_lp, dists[key].absent_lp, *ref)
                          for key, ref in zip(fields, ro.ref)])  # [G]
        with torch.no_grad():
            entropy = torch.stack([span_categorical_entropy(dists[key].span_lp,
                                                            dists[key].absent_lp)
                                   for key in fields])  # [G]
        parts: dict[str, float] = {}
        if cfg.algorithm == "ppo":
            pg, clip_frac, approx_kl = ppo_clip_loss(logp.flatten(), ro.old_logp.flatten(),
                                                     ro.advantages.flatten(), cfg.ppo_clip)
            parts.update(clip_frac=float(clip_frac), approx_kl=float(approx_kl))
        elif ro.weights is not None:
            pg = weighted_policy_gradient_loss(logp, ro.weights, ro.advantages)
        else:
            pg = policy_gradient_loss(logp.flatten(), ro.advantages.flatten())
        kl_mean = kl.mean()
        loss = pg + self.kl_coef * kl_mean
        measured = float(kl_mean.detach())
        parts.update(
            pg_loss=float(pg.detach()), reward=float(ro.rewards.mean()),
            reward_std=float(ro.rewards.std(correction=0)), kl=measured,
            kl_coef=self.kl_coef, entropy=float(entropy.mean()),
            adv_mean=float(ro.advantages.mean()),
            adv_std=float(ro.advantages.std(correction=0)),
            pool_share=sum(i >= self.n_reviewed for i in batch.docs) / len(batch.docs),
            kl_stopped=0.0)
        if cfg.kl_stop is not None:
            if measured > cfg.kl_stop:
                self._stop(measured, {**parts, "kl_stopped": 1.0})
            self._last_ok = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if cfg.adaptive_kl:
            self.kl_coef = adaptive_kl_coef(self.kl_coef, measured, cfg.kl_target,
                                            logp.numel(), cfg.kl_horizon)
        return loss, parts

    def _stop(self, kl: float, parts: dict[str, float]) -> None:
        """End training before this step's update, with the last in-bound weights back."""
        if self._last_ok is not None:
            self.model.load_state_dict(self._last_ok)
        self.kl_stopped_at = self._calls
        raise StopTraining(f"step {self._calls} measured KL {kl:.4g} > kl_stop "
                           f"{self.cfg.kl_stop:.4g}; weights of the last step within the bound",
                           parts)

    # -- epochs ----------------------------------------------------------------------------------
    def evaluate(self, epoch: int) -> dict[str, Any]:
        rewards, self._epoch_rewards = self._epoch_rewards, []
        reward = sum(rewards) / len(rewards) if rewards else None
        row: dict[str, Any] = {"reward": reward, "kl_coef": self.kl_coef}
        if self.kl_stopped_at is not None:
            row.update(kl_stopped=True, kl_stopped_at_step=self.kl_stopped_at)
        dev = self.dev_scores()
        if dev:
            f1 = dev["dev_f1"]
            before = self._prev_reward if self._prev_reward is not None else self._start_reward
            hacking = (reward is not None and before is not None and self._prev_f1 is not None
                       and reward > before and f1 < self._prev_f1 - self.cfg.hacking_f1_drop)
            if hacking:
                log.warning("rl epoch %d: possible reward hacking: mean reward %.4f -> %.4f "
                            "while dev F1 %.4f -> %.4f", epoch, before, reward, self._prev_f1,
                            f1)
            row.update(**dev, reward_hacking=hacking)
            self._prev_f1, self._prev_reward = f1, reward
        return row

    def selection_score(self, row: dict[str, Any]) -> float:
        """Dev F1 when gold pages are given, else the latest epoch (the KL keeps it close)."""
        return float(row["dev_f1"]) if "dev_f1" in row else float(row["epoch"])

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "pool": len(self.docs) - self.n_reviewed,
                "pool_share": self.share, "algorithm": self.cfg.algorithm}
