"""Configuration of "SFT then RL" as one command (``kvloop train sft-rl``).

Every field of ``training.rl_config.RLConfig`` is a field here and means what it means there
(documented once: the RL fields in ``RLConfig``, the shared feedback fields, dev pages and
decisions refit in ``training.feedback_trainer.FeedbackConfig``). They configure the RL stage,
and the shared ones also the SFT stage:

* both stages: ``init`` (the start of the chain), ``store`` and its filters (read once, the
  same feedback for both stages), the dev pages (``dev_data``/...: each stage keeps its best
  dev-F1 epoch), and ``seed``, ``threads``, ``device``, ``mixed_precision``, ``warmup_ratio``,
  ``weight_decay``, ``grad_clip``, ``layout_lr``, ``patience``;
* RL stage only: the RL fields, ``epochs``, ``max_steps``, ``batch_size``, ``lr``,
  ``head_lr``, and ``calib_data``/``calib_split``/``calib_ocr``/``tesseract_profile``/
  ``auto_accept_target`` (the decisions are refitted once, on the final weights; see
  ``training.sft_rl_trainer``);
* SFT stage only: the ``sft_``-prefixed fields below, each the ``training.sft_config.SFTConfig``
  field of the same name without the prefix, with its default and help (``sft_epochs``,
  ``sft_max_steps``, ``sft_batch_size`` (windows), ``sft_lr``, ``sft_head_lr``,
  ``sft_replay_data``/``sft_replay_split``/``sft_replay_ocr``/``sft_replay_ratio``/
  ``sft_max_replay_docs``, ``sft_unlikelihood_weight``). SFT's other fields keep their
  defaults.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from training.feedback_trainer import FeedbackConfig
from training.rl_config import RLConfig
from training.sft_config import SFTConfig

SFT_PREFIX = "sft_"
SFT_STAGE_SUFFIX = ".sft"  # the SFT version is written beside ``out``, as ``<out>.sft``


def _sft(name: str) -> Any:
    """A field with ``SFTConfig.<name>``'s default and help (one definition of both)."""
    f = next(f for f in fields(SFTConfig) if f.name == name)
    if f.default is MISSING:
        raise TypeError(f"SFTConfig.{name} has no plain default to share")
    return field(default=f.default, metadata={"help": f"SFT stage: {f.metadata['help']}"})


@dataclass
class SFTThenRLConfig(RLConfig):
    sft_epochs: int = _sft("epochs")
    sft_max_steps: int | None = _sft("max_steps")
    sft_batch_size: int = _sft("batch_size")
    sft_lr: float = _sft("lr")
    sft_head_lr: float = _sft("head_lr")
    sft_replay_data: str = _sft("replay_data")
    sft_replay_split: str = _sft("replay_split")
    sft_replay_ocr: str = _sft("replay_ocr")
    sft_replay_ratio: float = _sft("replay_ratio")
    sft_max_replay_docs: int | None = _sft("max_replay_docs")
    sft_unlikelihood_weight: float = _sft("unlikelihood_weight")

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            self.sft_config()  # SFTConfig's own checks, on the stage it will run
        except ValueError as e:
            raise ValueError(f"SFT stage (the sft_ fields): {e}") from e

    @property
    def sft_out(self) -> str:
        """Where the SFT stage writes its version: ``<out>.sft``, a sibling of ``out``."""
        if not self.out:
            return ""
        out = Path(self.out)
        return str(out.with_name(out.name + SFT_STAGE_SUFFIX))

    def sft_config(self) -> SFTConfig:
        """The SFT stage: the shared fields, the ``sft_`` ones, ``out`` = :attr:`sft_out`, and
        no ``calib_data`` (its decisions are not refitted: the RL stage's are)."""
        shared = {f.name: getattr(self, f.name) for f in fields(FeedbackConfig)}
        stage = {f.name.removeprefix(SFT_PREFIX): getattr(self, f.name)
                 for f in fields(self) if f.name.startswith(SFT_PREFIX)}
        return SFTConfig(**{**shared, **stage, "out": self.sft_out, "calib_data": ""})

    def rl_config(self) -> RLConfig:
        """The RL stage: every ``RLConfig`` field as given, starting from the SFT version."""
        values = {f.name: getattr(self, f.name) for f in fields(RLConfig)}
        return RLConfig(**{**values, "init": self.sft_out})
