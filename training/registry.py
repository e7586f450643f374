"""Every trainer by name: its config class, its trainer class and what it reads.

The one table the CLI (``kvloop train``), ``kvloop compare`` and ``scripts/bench_trainers.py``
read. Classes are named as ``"module:Class"`` and imported only when asked for, so listing the
trainers (``kvloop train --help``, ``kvloop compare --list-arms``) does not load torch.

Adding a trainer: a config file (a ``training.config.TrainConfig`` subclass whose
``__post_init__`` checks its required fields), a trainer file (a ``training.base.BaseTrainer``
whose ``train()`` returns a ``TrainResult``), and one line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from typing import Any, Literal

Reads = Literal["dataset", "model"]


def load_object(path: str) -> Any:
    """``"module:name"`` -> the object."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class TrainerSpec:
    """One trainer: ``reads`` says what it starts from (``dataset``: gold pages, ``data``;
    ``model``: a saved model version, ``init``, and its feedback)."""

    name: str
    config: str
    trainer: str
    reads: Reads
    help: str

    def config_class(self) -> type:
        return load_object(self.config)

    def trainer_class(self) -> type:
        return load_object(self.trainer)

    def config_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self.config_class()))


TRAINERS: dict[str, TrainerSpec] = {t.name: t for t in (
    TrainerSpec("base", "training.supervised_config:SupervisedConfig",
                "training.supervised_trainer:SupervisedTrainer", "dataset",
                "supervised training from gold labels (dev early stopping, then the decisions "
                "fitted on the calibration split)"),
    TrainerSpec("calibrate", "training.supervised_config:SupervisedConfig",
                "training.calibrate_trainer:CalibrateTrainer", "dataset",
                "refit the decisions (fusion, absent threshold, word correction, calibration, "
                "auto-accept) of the model in --out on --calib-split read by --ocr"),
    TrainerSpec("sft", "training.sft_config:SFTConfig", "training.sft_trainer:SFTTrainer",
                "model", "supervised fine-tuning on the operators' corrections (feedback "
                "store), with replay and an optional unlikelihood term on rejected values"),
    TrainerSpec("reward", "training.reward_config:RewardConfig",
                "training.reward_trainer:RewardTrainer", "model",
                "a reward model scoring (document, field, value) from preference pairs, "
                "accepted and rejected values (or from gold)"),
    TrainerSpec("rl", "training.rl_config:RLConfig", "training.rl_trainer:RLTrainer", "model",
                "policy updates against a reward model: group baseline (RLOO/GRPO) or PPO, "
                "exact KL to the start model"),
    TrainerSpec("sft-rl", "training.sft_rl_config:SFTThenRLConfig",
                "training.sft_rl_trainer:SFTThenRLTrainer", "model",
                "SFT on the corrections, then RL from the SFT model (its KL reference): "
                "writes <out>.sft, then <out>; the sft_ flags configure the SFT stage"),
    TrainerSpec("dpo", "training.dpo_config:DPOConfig", "training.dpo_trainer:DPOTrainer",
                "model", "direct preference optimisation on chosen-vs-rejected values (DPO, "
                "DPOP, differing-words)"),
)}


def get_trainer(name: str) -> TrainerSpec:
    """The trainer called ``name``; ``ValueError`` listing the valid names otherwise."""
    try:
        return TRAINERS[name]
    except KeyError:
        raise ValueError(f"unknown trainer {name!r}; choose one of {list(TRAINERS)}") from None


def available() -> dict[str, TrainerSpec]:
    """The trainers whose modules exist in this checkout."""
    out = {}
    for name, spec in TRAINERS.items():
        try:
            spec.config_class()
        except ImportError:
            continue
        out[name] = spec
    return out
