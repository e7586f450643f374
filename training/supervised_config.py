"""Configuration of supervised (gold-label) training of the extractor ensemble.

Parameters, by group:

* data: ``data`` (a loader spec: SROIE folder, JSONL, images, ``demo``), ``ocr``,
  ``ocr_mix`` (share of training pages that each epoch reads from one of the page's image OCR
  passes, those of the default engines (``--ocr-engines``: PP-OCRv6 and tesseract), picked at
  random, instead of ``ocr``'s words: the model then meets OCR errors of the kind it will see
  on images, at no extra cost per epoch),
  ``train_split`` / ``dev_split`` / ``calib_split`` (see ``extractor.splits``; the model is
  fitted on ``fit`` = train minus the calibration fifth, which stays unseen for calibration),
  ``tesseract_profile`` (image input gets its own "absent" threshold and calibrator, fitted on
  the calibration split read by the default OCR engines; one profile per engine that leads a
  page), ``max_docs`` (cap per split, for tests);
* model: ``arch`` (``extractor.model.zoo.ARCHS``) or ``init`` (a saved model to continue), ``max_length``, ``stride``, ``max_span_len``;
* model: ``schema`` (``extractor.schemas.SCHEMAS`` by name; default: the one the training
  pages' gold is written in, e.g. ``cord`` for CORD, or ``init``'s), saved in the model card;
* model: ``layout_init`` (how the new LayoutLM layout embeddings start);
* optimisation: ``epochs``, ``lr`` (pretrained encoders), ``head_lr`` (new heads, fusion
  weights), ``layout_lr`` (layout embeddings; default ``lr``: Adam moves every embedding row
  by about the learning rate per step, so ``head_lr`` would let rows seen on a few pages drift
  far), ``batch_size`` (windows), ``warmup_ratio``, ``weight_decay``,
  ``grad_clip``, ``loss_weights`` (bert, layoutlm, fused);
* decisions: ``auto_accept_target`` (precision each field's auto-accept threshold must reach on
  the calibration split), ``auto_accept_level`` (a Clopper-Pearson level the precision's lower
  bound must reach instead of the plain precision; None: plain);
* shared with every trainer (``training.config.TrainConfig``): ``out``, ``seed``,
  ``patience`` (epochs without dev F1 gain before stopping), ``threads``, ``device``,
  ``mixed_precision``, ``max_steps``.

The defaults are the recipe measured on SROIE (BENCHMARKS.md, "Extractor"): 10 epochs at
2e-4, half the pages read from a tesseract pass each epoch; 300 receipts take ~31 min on 2 cores
(27.6 of them epochs, 1.1 the tesseract profile).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from extractor.loaders import OCR_MODES
from extractor.model.layoutlm import LAYOUT_INITS
from extractor.model.zoo import ARCHS
from extractor.schemas import SCHEMAS
from extractor.splits import SPLITS
from training.config import TrainConfig


@dataclass
class SupervisedConfig(TrainConfig):
    required: ClassVar[tuple[str, ...]] = ("data", "out")

    data: str = field(default="", metadata={"help": "dataset spec (SROIE folder, JSONL, demo)"})
    ocr: str = field(default="provided", metadata={
        "help": "'provided', 'images' (the OCR engines) or 'tesseract'"})
    ocr_mix: float = field(default=0.5, metadata={
        "help": "share of training pages read from a random image OCR pass each epoch"})
    train_split: str = field(default="fit", metadata={"help": "split to fit on"})
    dev_split: str = field(default="dev", metadata={"help": "split for early stopping"})
    calib_split: str = field(default="calibration", metadata={"help": "split for calibration"})
    tesseract_profile: bool = field(default=True, metadata={
        "help": "when the calibration split is not image-read, also fit the absent "
                "threshold and calibrator for image input on its pages read by the OCR engines"})
    max_docs: int | None = field(default=None, metadata={"help": "cap documents per split"})
    arch: str = field(default="minilm", metadata={"help": "model architecture (zoo name)"})
    schema: str | None = field(default=None, metadata={
        "help": "schema by name ('receipt', 'cord'); default: the one the data's gold uses"})
    init: str | None = field(default=None, metadata={
        "help": "continue from a saved model directory instead of fresh zoo weights"})
    layout_init: str = field(default="sinusoidal", metadata={
        "help": "start of the LayoutLM layout embeddings: 'sinusoidal' or 'zero'"})
    max_length: int = field(default=512, metadata={"help": "tokens per window, specials incl."})
    stride: int = field(default=128, metadata={"help": "token overlap between windows"})
    max_span_len: int = field(default=48, metadata={"help": "longest value span, in words"})
    epochs: int = field(default=10, metadata={"help": "maximum epochs"})
    batch_size: int = field(default=8, metadata={"help": "windows per step"})
    loss_weights: list[float] = field(
        default_factory=lambda: [1.0, 1.0, 1.0],
        metadata={"help": "CE weights: bert, layoutlm, fused"})
    auto_accept_target: float = field(default=0.99, metadata={
        "help": "precision each field's auto-accept threshold must reach on held-out pages"})
    auto_accept_level: float | None = field(default=None, metadata={
        "help": "require the Clopper-Pearson lower bound of that precision at this level "
                "(e.g. 0.95) instead of the plain precision (None)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.schema is not None and self.schema not in SCHEMAS:
            raise ValueError(f"unknown schema {self.schema!r}; choose one of {list(SCHEMAS)}")
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {ARCHS}")
        for name in ("train_split", "dev_split", "calib_split"):
            if getattr(self, name) not in SPLITS:
                raise ValueError(f"{name} must be one of {SPLITS}, got {getattr(self, name)!r}")
        if self.ocr not in OCR_MODES:
            raise ValueError(f"ocr must be one of {', '.join(OCR_MODES)}, got {self.ocr!r}")
        if not 0.0 <= self.ocr_mix <= 1.0:
            raise ValueError(f"ocr_mix must be in [0, 1], got {self.ocr_mix}")
        if not 8 <= self.max_length <= 512:
            raise ValueError(f"max_length must be in [8, 512], got {self.max_length}")
        if not 0 <= self.stride < self.max_length - 2:
            raise ValueError(f"stride must be in [0, max_length - 2), got {self.stride}")
        if self.layout_init not in LAYOUT_INITS:
            raise ValueError(f"layout_init must be one of {LAYOUT_INITS}, got {self.layout_init!r}")
        if len(self.loss_weights) != 3:
            raise ValueError(f"loss_weights takes 3 numbers (bert, layoutlm, fused), "
                             f"got {self.loss_weights}")
        if not 0.0 < self.auto_accept_target <= 1.0:
            raise ValueError(f"auto_accept_target must be in (0, 1], got {self.auto_accept_target}")
        self.loss_weights = [float(w) for w in self.loss_weights]
