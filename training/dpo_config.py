"""Configuration of direct preference optimisation on operator feedback (``kvloop train dpo``).

Parameters, by group:

* loss: ``loss_type`` (``dpo``: Rafailov et al. 2023, Eq. 7; ``dpop``: DPO-Positive, Pal et
  al. 2024, arXiv 2402.13228, Eq. 3, with ``lam``; ``diff_words``: DPO on the per-word
  log-probs of only the words where the chosen and rejected spans differ, see
  ``training.policy_losses``), ``beta`` (the KL-regularisation strength of the implicit
  reward ``beta * (log pi - log pi_ref)``);
* pairs: ``max_pairs_per_field`` (rejected values used per reviewed field; None: all);
  ``batch_size`` (documents per step, each with all its pairs);
* online (Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback"):
  ``online`` (pairs from the current policy's own samples, the best- and worst-rewarded
  values of ``samples_per_field`` draws per reviewed field), ``reward`` (a reward-model
  directory or ``oracle``), ``reward_transform``;
* selection: with the dev pages of ``FeedbackConfig`` (``dev_data``, ...) the epoch with the
  best dev lenient F1 is kept, else the latest;
* shared with every feedback trainer, documented once in
  ``training.feedback_trainer.FeedbackConfig``: ``init`` (the start model, also the frozen
  reference), ``store`` and its filters, the dev pages, ``calib_data``; and
  ``training.config.TrainConfig``'s ``out``, ``epochs``, ``lr``, ``seed``, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field

from training.feedback_trainer import FeedbackConfig
from training.rewards import TRANSFORMS

LOSS_TYPES: tuple[str, ...] = ("dpo", "dpop", "diff_words")


@dataclass
class DPOConfig(FeedbackConfig):
    loss_type: str = field(default="dpo", metadata={
        "help": "'dpo', 'dpop' (chosen log-prob kept from falling below the reference's) or "
                "'diff_words' (only the words where chosen and rejected spans differ)"})
    beta: float = field(default=0.1, metadata={
        "help": "strength of the implicit KL regularisation (DPO's beta, Eq. 7)"})
    lam: float = field(default=50.0, metadata={
        "help": "dpop: weight of max(0, log pi_ref(chosen) - log pi(chosen)) (Smaug's lambda)"})
    max_pairs_per_field: int | None = field(default=None, metadata={
        "help": "rejected values paired with each field's chosen value (None: all)"})
    online: bool = field(default=False, metadata={
        "help": "pairs from the current policy's samples ranked by --reward, not the store's"})
    reward: str = field(default="", metadata={
        "help": "online: reward-model directory, or 'oracle' (exact match with gold: an "
                "ablation)"})
    reward_transform: str = field(default="sigmoid", metadata={
        "help": "online: reward from the reward model's logit: 'sigmoid' or 'logit'"})
    samples_per_field: int = field(default=4, metadata={
        "help": "online: outcomes drawn per reviewed field to rank"})
    batch_size: int = field(default=8, metadata={
        "help": "documents per step (with every preference pair of each)"})
    lr: float = field(default=1e-5, metadata={"help": "learning rate of pretrained weights"})
    head_lr: float = field(default=1e-5, metadata={"help": "learning rate of the heads"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if self.lam < 0:
            raise ValueError(f"lam must be >= 0, got {self.lam}")
        if self.max_pairs_per_field is not None and self.max_pairs_per_field < 1:
            raise ValueError(f"max_pairs_per_field must be >= 1, got {self.max_pairs_per_field}")
        if self.reward_transform not in TRANSFORMS:
            raise ValueError(f"reward_transform must be one of {TRANSFORMS}, "
                             f"got {self.reward_transform!r}")
        if self.online and not self.reward:
            raise ValueError("online DPO ranks the policy's samples with a reward: give --reward "
                             "(a reward-model directory or 'oracle')")
        if self.samples_per_field < 2:
            raise ValueError(f"samples_per_field must be >= 2, got {self.samples_per_field}")
