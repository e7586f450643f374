"""Configuration of supervised fine-tuning (SFT) on the operators' corrections.

Parameters, by group:

* shared with every feedback trainer, documented once in
  ``training.feedback_trainer.FeedbackConfig``: the parent (``init``, never changed), the
  store and its filters, the dev pages (``dev_data``/``dev_split``/``dev_ocr``/
  ``max_dev_docs``) and the decisions refit (``calib_data``/...);
* replay: ``replay_data`` (a dataset spec of gold pages, e.g. the SROIE folder),
  ``replay_split`` (``fit``: the pages the parent was fitted on; never ``calibration`` or
  ``dev`` if those are to stay held out), ``replay_ocr``, ``replay_ratio`` (replayed pages per
  feedback page per epoch, drawn afresh each epoch with the seed), ``max_replay_docs``;
* selection: the dev pages' lenient field F1 after each epoch, as in base training; the best
  epoch is kept; without dev pages the lowest train loss is;
* loss: ``loss_weights`` (bert, layoutlm, fused: the partial-label cross-entropy of each),
  ``unlikelihood_weight`` (0 = off: the ``-log(1 - p(span))`` term on the spans of values the
  operators did not keep), ``unlikelihood_explicit_only`` (only values rejected with the
  ``reject`` action, not those merely passed over);
* optimisation, shared with every trainer (``training.config.TrainConfig``): ``epochs``,
  ``max_steps``, ``batch_size`` (windows), ``lr``, ``head_lr``, ``layout_lr``,
  ``warmup_ratio``, ``weight_decay``, ``grad_clip``, ``seed``, ``patience``, ``threads``,
  ``device``, ``mixed_precision``.

``head_lr`` defaults to ``lr`` here: it exists for freshly initialised heads, and SFT starts
from a trained model whose heads are not new (unmeasured on SROIE; see the module docstring
of ``training.sft_trainer``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from extractor.loaders import OCR_MODES
from extractor.splits import SPLITS
from training.feedback_trainer import FeedbackConfig


@dataclass
class SFTConfig(FeedbackConfig):
    replay_data: str = field(default="", metadata={
        "help": "dataset spec of gold pages replayed beside the feedback ('' = no replay)"})
    replay_split: str = field(default="fit", metadata={"help": "split of replay_data"})
    replay_ocr: str = field(default="provided", metadata={"help": "OCR of replay_data pages"})
    replay_ratio: float = field(default=1.0, metadata={
        "help": "replayed pages per feedback page per epoch (seeded draw each epoch)"})
    max_replay_docs: int | None = field(default=None, metadata={
        "help": "cap the replay pool (documents)"})
    loss_weights: list[float] = field(
        default_factory=lambda: [1.0, 1.0, 1.0],
        metadata={"help": "partial-label CE weights: bert, layoutlm, fused"})
    unlikelihood_weight: float = field(default=0.0, metadata={
        "help": "weight of -log(1 - p(span)) on rejected values' spans (0 = off)"})
    unlikelihood_explicit_only: bool = field(default=False, metadata={
        "help": "unlikelihood only on values rejected with 'reject' (not on values passed "
                "over for another)"})
    head_lr: float = field(default=2e-4, metadata={
        "help": "learning rate of the heads and fusion weights (not new in SFT: lr)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.replay_split not in SPLITS:
            raise ValueError(f"replay_split must be one of {SPLITS}, got {self.replay_split!r}")
        if self.replay_ocr not in OCR_MODES:
            raise ValueError(f"replay_ocr must be one of {OCR_MODES}, got {self.replay_ocr!r}")
        if self.replay_ratio < 0:
            raise ValueError(f"replay_ratio must be >= 0, got {self.replay_ratio}")
        if self.unlikelihood_weight < 0:
            raise ValueError(f"unlikelihood_weight must be >= 0, got {self.unlikelihood_weight}")
        if len(self.loss_weights) != 3:
            raise ValueError(f"loss_weights takes 3 numbers (bert, layoutlm, fused), "
                             f"got {self.loss_weights}")
        self.loss_weights = [float(w) for w in self.loss_weights]
        if self.max_replay_docs is not None and self.max_replay_docs < 1:
            raise ValueError(f"max_replay_docs must be >= 1, got {self.max_replay_docs}")
