"""What every trainer's config shares: output, optimisation, schedule, seeding, device.

Each trainer's config dataclass extends :class:`TrainConfig` with its own fields and
defaults; the shared loop (``training.loop``) reads only these. Every field carries
``metadata={"help": ...}`` so one parser (``training.cli.parse_config``, on
``transformers.HfArgumentParser``) builds the command line and reads config files for all of
them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MIXED_PRECISION = ("no", "fp16", "bf16")


@dataclass
class TrainConfig:
    out: str = field(default="", metadata={"help": "output model directory (must not exist "
                                                   "for trainers that start from a model)"})
    epochs: int = field(default=1, metadata={"help": "maximum epochs (passes over the data)"})
    max_steps: int | None = field(default=None, metadata={
        "help": "stop after this many optimiser steps (None: epochs decide)"})
    batch_size: int = field(default=8, metadata={"help": "examples per step"})
    lr: float = field(default=2e-4, metadata={"help": "learning rate of pretrained weights"})
    head_lr: float = field(default=1e-3, metadata={"help": "learning rate of new parameters"})
    layout_lr: float | None = field(default=None, metadata={
        "help": "learning rate of the layout embeddings (None: lr)"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "linear warm-up share"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm"})
    seed: int = field(default=13, metadata={"help": "random seed"})
    patience: int = field(default=3, metadata={
        "help": "epochs without a gain of the selection score before stopping"})
    threads: int = field(default=2, metadata={"help": "torch CPU threads"})
    device: str = field(default="auto", metadata={
        "help": "'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or 'mps'"})
    mixed_precision: str = field(default="no", metadata={
        "help": "'no', 'fp16' or 'bf16' (Accelerate autocast; GPUs)"})

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.lr <= 0 or self.head_lr <= 0 or (self.layout_lr is not None
                                                 and self.layout_lr <= 0):
            raise ValueError("learning rates must be > 0")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION}, "
                             f"got {self.mixed_precision!r}")

    def export(self) -> dict[str, Any]:
        return asdict(self)
