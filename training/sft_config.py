"""Configuration of supervised fine-tuning (SFT) on the operators' corrections.

Parameters, by group:

* feedback (``training.feedback_trainer.FeedbackConfig``): ``init`` (the parent model, never
  changed), ``store`` and its filters (``dataset``, ``operator``, ``model_version``, ``since``,
  ``until``, ``max_feedback_docs``), ``calib_data``/``calib_split`` (gold pages the decisions
  are refitted on; empty keeps the parent's);
* replay: ``replay_data`` (a dataset spec of gold pages, e.g. the SROIE folder),
  ``replay_split`` (``fit``: the pages the parent was fitted on; never ``calibration`` or
  ``dev`` if those are to stay held out), ``replay_ocr``, ``replay_ratio`` (replayed pages per
  feedback page per epoch, drawn afresh each epoch with the seed), ``max_replay_docs``;
* selection: ``dev_data``/``dev_split``/``dev_ocr``/``max_dev_docs`` (gold pages scored after
  each epoch, lenient field F1 as in base training; the best epoch is kept; without them the
  lowest train loss is);
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

from extractor.splits import SPLITS
from training.feedback_trainer import FeedbackConfig

OCRS: tuple[str, ...] = ("provided", "tesseract")


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
    dev_data: str = field(default="", metadata={
        "help": "dataset spec of gold pages for per-epoch dev F1 and epoch selection "
                "('' = keep the epoch with the lowest train loss)"})
    dev_split: str = field(default="dev", metadata={"help": "split of dev_data"})
    dev_ocr: str = field(default="provided", metadata={"help": "OCR of dev_data pages"})
    max_dev_docs: int | None = field(default=None, metadata={"help": "cap the dev pages"})
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
        for name in ("replay_split", "dev_split"):
            if getattr(self, name) not in SPLITS:
                raise ValueError(f"{name} must be one of {SPLITS}, got {getattr(self, name)!r}")
        for name in ("replay_ocr", "dev_ocr"):
            if getattr(self, name) not in OCRS:
                raise ValueError(f"{name} must be one of {OCRS}, got {getattr(self, name)!r}")
        if self.replay_ratio < 0:
            raise ValueError(f"replay_ratio must be >= 0, got {self.replay_ratio}")
        if self.unlikelihood_weight < 0:
            raise ValueError(f"unlikelihood_weight must be >= 0, got {self.unlikelihood_weight}")
        if len(self.loss_weights) != 3:
            raise ValueError(f"loss_weights takes 3 numbers (bert, layoutlm, fused), "
                             f"got {self.loss_weights}")
        self.loss_weights = [float(w) for w in self.loss_weights]
        for name in ("max_replay_docs", "max_dev_docs"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
