"""Configuration of policy updates against a reward (``kvloop train rl``).

Parameters, by group:

* reward: ``reward`` (a reward-model directory, or ``oracle``: exact match with gold, an
  ablation that reads gold), ``reward_transform`` (``sigmoid`` of the reward model's logit,
  or the raw ``logit``);
* algorithm: ``algorithm`` (``rloo``: leave-one-out group baseline, Ahmadian et al. 2024;
  ``grpo``: group-standardised rewards, Shao et al. 2024; ``ppo``: clipped ratio, Schulman et
  al. 2017, ``ppo_epochs`` optimiser steps per batch of samples, whitened advantages),
  ``samples_per_field`` (K outcomes drawn per document and field), ``ppo_clip``,
  ``judged_outcomes`` (RLOO's group also holds the outcomes the operator judged, summed
  exactly: ``training.policy_losses.sum_and_sample_advantages``);
* KL to the start model (exact over the span categorical): ``kl_coef`` (penalty coefficient,
  the start value when adaptive), ``adaptive_kl`` with ``kl_target`` and ``kl_horizon``
  (Ziegler et al. 2019), ``kl_stop`` (a bound: the first step that measures a larger mean KL
  ends training and the weights before the last update are kept);
* documents: the reviewed documents of the store (``FeedbackConfig`` filters) and, when
  ``pool_share > 0``, unreviewed pages of ``pool_data``/``pool_split``/``pool_ocr`` (at most
  ``max_pool_docs``; that share of every batch; their gold is never read, except by the
  ``oracle`` ablation), ``batch_size`` (documents per batch of samples);
* held-out: the dev pages of ``FeedbackConfig`` (``dev_data``, ...): dev lenient F1 after
  every epoch, the kept epoch (without dev pages: the latest), and the reward-hacking check:
  reward up while dev F1 falls by more than ``hacking_f1_drop``;
* shared with every feedback trainer, documented once in
  ``training.feedback_trainer.FeedbackConfig``: ``init`` (the start model, also the KL
  reference), ``store`` and its filters, the dev pages, ``calib_data`` (decisions refitted
  after training); and ``training.config.TrainConfig``'s ``out``, ``epochs``, ``lr``,
  ``seed``, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field

from extractor.loaders import OCR_MODES
from extractor.splits import SPLITS
from training.feedback_trainer import FeedbackConfig
from training.rewards import TRANSFORMS

ALGORITHMS: tuple[str, ...] = ("rloo", "grpo", "ppo")


@dataclass
class RLConfig(FeedbackConfig):
    reward: str = field(default="", metadata={
        "help": "reward-model directory, or 'oracle' (exact match with gold: an ablation)"})
    reward_transform: str = field(default="sigmoid", metadata={
        "help": "reward from the reward model's logit: 'sigmoid' (in [0, 1]) or 'logit'"})
    algorithm: str = field(default="rloo", metadata={"help": "'rloo', 'grpo' or 'ppo'"})
    samples_per_field: int = field(default=4, metadata={
        "help": "outcomes sampled per document and field (the group of RLOO/GRPO)"})
    # 2, not the common 4: each step is a full encoder pass, and on 2 CPU cores 4 steps a
    # batch take a pass over 300 documents past 10 minutes (866 s; 2 steps: 403 s, dev F1
    # 0.618 against 0.647 with 4, one seed; BENCHMARKS.md)
    judged_outcomes: bool = field(default=False, metadata={
        "help": "rloo: the outcomes the operator judged on a reviewed field (the value kept, "
                "the values rejected) enter every group, summed exactly with their "
                "probabilities; the samples are drawn from the rest (sum-and-sample, Liu et "
                "al. 2019: the same expected gradient, without waiting to sample a right "
                "value the policy gives little mass)"})
    ppo_epochs: int = field(default=2, metadata={
        "help": "ppo: optimiser steps on each batch of samples (4: a little better, twice "
                "the time)"})
    ppo_clip: float = field(default=0.2, metadata={"help": "ppo: ratio clip (Eq. 7's epsilon)"})
    kl_coef: float = field(default=0.05, metadata={
        "help": "coefficient of the exact KL(policy || start model) penalty (start value "
                "when adaptive)"})
    adaptive_kl: bool = field(default=False, metadata={
        "help": "adapt kl_coef towards kl_target (Ziegler et al. 2019)"})
    kl_target: float = field(default=0.05, metadata={"help": "adaptive KL target (nats)"})
    kl_horizon: int = field(default=10000, metadata={
        "help": "adaptive KL horizon (samples over which the coefficient moves by at most a fifth)"})
    kl_stop: float | None = field(default=None, metadata={
        "help": "stop training when a step measures a mean KL above this (nats; the weights "
                "before the last update are kept); None: no bound"})
    pool_data: str = field(default="", metadata={
        "help": "dataset spec of unreviewed pages to sample on too ('' = reviewed only)"})
    pool_split: str = field(default="train", metadata={"help": "split of pool_data"})
    pool_ocr: str = field(default="provided", metadata={"help": "OCR of pool_data pages"})
    max_pool_docs: int | None = field(default=None, metadata={"help": "cap pool documents"})
    pool_share: float = field(default=0.0, metadata={
        "help": "share of every batch drawn from the pool (0: reviewed documents only)"})
    hacking_f1_drop: float = field(default=0.0, metadata={
        "help": "dev F1 fall (absolute) that, with a rising reward, flags reward hacking"})
    batch_size: int = field(default=8, metadata={"help": "documents per batch of samples"})
    lr: float = field(default=1e-5, metadata={"help": "learning rate of pretrained weights"})
    head_lr: float = field(default=1e-5, metadata={"help": "learning rate of the heads"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if self.reward_transform not in TRANSFORMS:
            raise ValueError(f"reward_transform must be one of {TRANSFORMS}, "
                             f"got {self.reward_transform!r}")
        if self.samples_per_field < 1:
            raise ValueError(f"samples_per_field must be >= 1, got {self.samples_per_field}")
        if self.algorithm in ("rloo", "grpo") and self.samples_per_field < 2:
            raise ValueError(f"{self.algorithm} needs samples_per_field >= 2 (a group to "
                             "compare with); use ppo for single samples")
        if self.judged_outcomes and self.algorithm != "rloo":
            raise ValueError("judged_outcomes is an RLOO estimator (algorithm: rloo), got "
                             f"{self.algorithm!r}")
        if self.ppo_epochs < 1 or self.ppo_clip <= 0:
            raise ValueError("ppo_epochs must be >= 1 and ppo_clip > 0")
        if self.kl_coef < 0 or self.kl_target <= 0 or self.kl_horizon < 1:
            raise ValueError("kl_coef must be >= 0, kl_target > 0 and kl_horizon >= 1")
        if self.kl_stop is not None and self.kl_stop <= 0:
            raise ValueError(f"kl_stop must be > 0 (or None), got {self.kl_stop}")
        if not 0.0 <= self.pool_share <= 1.0:
            raise ValueError(f"pool_share must be in [0, 1], got {self.pool_share}")
        if self.pool_split not in SPLITS:
            raise ValueError(f"pool_split must be one of {SPLITS}, got {self.pool_split!r}")
        if self.pool_ocr not in OCR_MODES:
            raise ValueError(f"pool_ocr must be one of {OCR_MODES}, got {self.pool_ocr!r}")
        if self.max_pool_docs is not None and self.max_pool_docs < 1:
            raise ValueError(f"max_pool_docs must be >= 1, got {self.max_pool_docs}")
        if self.hacking_f1_drop < 0:
            raise ValueError(f"hacking_f1_drop must be >= 0, got {self.hacking_f1_drop}")

    @property
    def updates_per_batch(self) -> int:
        """Optimiser steps per batch of samples: ``ppo_epochs`` for PPO, else 1 (on-policy)."""
        return self.ppo_epochs if self.algorithm == "ppo" else 1
