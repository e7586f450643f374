"""What every trainer's config shares: output, optimisation, schedule, seeding, device.

Each trainer's config dataclass extends :class:`TrainConfig` with its own fields and
defaults; the shared loop (``training.loop``) reads only these. Every field carries
``metadata={"help": ...}`` so one parser (``training.cli.parse_config``, on
``transformers.HfArgumentParser``) builds the command line and reads config files for all of
them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")

MIXED_PRECISION = ("no", "fp16", "bf16")


class ConfigError(ValueError):
    """A config that could not be read or did not validate (the message says where)."""


def check_fields(cls: type[Any], values: Iterable[str], where: str | Path) -> None:
    """``ConfigError`` naming ``where``, the keys of ``values`` that are not fields of ``cls``
    and the fields it has: an unknown key is a misspelt option, never dropped (scikit-learn's
    ``set_params`` refuses one the same way)."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; {cls.__name__} has "
                          f"{sorted(names)}")


def make_config(cls: type[T], values: dict[str, Any], where: str | Path) -> T:
    """``cls(**values)`` after :func:`check_fields`; the dataclass's own checks raise
    ``ValueError`` as usual."""
    check_fields(cls, values, where)
    return cls(**values)


@dataclass
class TrainConfig:
    # Fields a run cannot start without. Checked by :meth:`check_required`, not in
    # ``__post_init__``: a partial config is a legitimate value (a stage of a two-stage
    # trainer, a test of one field's check), a run without ``out`` is not.
    required: ClassVar[tuple[str, ...]] = ("out",)

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

    def check_required(self) -> None:
        """``ValueError`` naming the first required field left empty."""
        for name in self.required:
            if not getattr(self, name):
                raise ValueError(f"--{name} is required")

    def export(self) -> dict[str, Any]:
        return asdict(self)
