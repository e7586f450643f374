"""``kvloop train TRAINER [flags] [--config FILE]``: train the extractor ensemble.

Thin entry point: the trainer's config dataclass is parsed by ``training.cli.parse_config``
(flags and JSON/YAML config files, from the dataclass fields) and the trainer does the work.
``kvloop train TRAINER --help`` lists a trainer's flags.

Files of the training, dev or calibration data that cannot be read are skipped (each named
once as it is met) and training goes on; the run then ends with their records and exit
status 1, the saved model notwithstanding, unless ``--allow-partial`` accepts them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Any

from extractor.loaders.report import ALLOW_PARTIAL_HELP, batch_status
from training.cli import ConfigError, parse_config

# trainer -> (config class, trainer class, one-line help); classes as "module:name", imported
# only for the trainer asked for. Each trainer class takes (config) and has ``train()``.
TRAINERS: dict[str, tuple[str, str, str]] = {
    "base": ("training.supervised_config:SupervisedConfig",
             "training.supervised_trainer:SupervisedTrainer",
             ("supervised training from gold labels (dev early stopping, then the decisions "
             "fitted on the calibration split)")),
    "calibrate": ("training.supervised_config:SupervisedConfig", "",
                  ("refit the decisions (fusion, absent threshold, word correction, calibration, "
                  "auto-accept) of the model in --out on --calib-split read by --ocr")),
    "sft": ("training.sft_config:SFTConfig", "training.sft_trainer:SFTTrainer",
            ("supervised fine-tuning on the operators' corrections (feedback store), with replay "
            "and an optional unlikelihood term on rejected values")),
    "reward": ("training.reward_config:RewardConfig", "training.reward_trainer:RewardTrainer",
               ("a reward model scoring (document, field, value) from preference pairs, "
               "accepted and rejected values (or from gold)")),
    "rl": ("training.rl_config:RLConfig", "training.rl_trainer:RLTrainer",
           ("policy updates against a reward model: group baseline (RLOO/GRPO) or PPO, exact KL "
           "to the start model")),
    "sft-rl": ("training.sft_rl_config:SFTThenRLConfig",
               "training.sft_rl_trainer:SFTThenRLTrainer",
               ("SFT on the corrections, then RL from the SFT model (its KL reference): "
                "writes <out>.sft, then <out>; the sft_ flags configure the SFT stage")),
    "dpo": ("training.dpo_config:DPOConfig", "training.dpo_trainer:DPOTrainer",
            ("direct preference optimisation on chosen-vs-rejected values (DPO, DPOP, "
            "differing-words)")),
}


def load(path: str) -> Any:
    """``module:name`` -> the object."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def available() -> dict[str, tuple[str, str, str]]:
    """The trainers whose modules exist in this checkout."""
    out = {}
    for name, entry in TRAINERS.items():
        try:
            load(entry[0])
        except ImportError:
            continue
        out[name] = entry
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    trainers = available()
    parser.add_argument("trainer", choices=list(trainers),
                        help="; ".join(f"'{k}' = {v[2]}" for k, v in trainers.items()))
    parser.add_argument("options", nargs=argparse.REMAINDER,
                        help="the trainer's flags (kvloop train TRAINER --help), and "
                             f"--allow-partial: {ALLOW_PARTIAL_HELP}")


def data_status(prog: str, skipped: list[tuple[str, str]], allow_partial: bool) -> int:
    """Exit status of a run that finished: 1 when its data loads skipped a file (each named
    here as ``kvloop data`` names them), unless ``allow_partial``."""
    if not skipped:
        return 0
    print(f"{prog}: {len(skipped)} data file(s) could not be read and were skipped:",
          file=sys.stderr)
    for path, reason in skipped:
        print(f"  FAILED {path}: {reason}", file=sys.stderr)
    # the run saved its model, so a document was read
    status, why = batch_status(len(skipped), 1, allow_partial)
    print(f"{prog}: {why}", file=sys.stderr)
    return status


def run(args: argparse.Namespace) -> int:
    from training.data import skipped_files

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    prog = f"kvloop train {args.trainer}"
    # a flag of the command, not of the trainer's config (it changes no model)
    allow_partial = "--allow-partial" in args.options
    options = [o for o in args.options if o != "--allow-partial"]
    with skipped_files() as skipped:
        status = train(args.trainer, options, prog)
    return status or data_status(prog, list(skipped), allow_partial)


def train(trainer_name: str, options: list[str], prog: str) -> int:
    """Parse the trainer's config from ``options`` and run it: 0, or 2 for bad options."""
    cfg_path, trainer_path, help_text = TRAINERS[trainer_name]
    try:
        cfg = parse_config(load(cfg_path), options, prog=prog, description=help_text)
        # base and calibrate read a dataset; every other trainer (sft, reward, rl, sft-rl, dpo)
        # starts from a saved model.
        required = ("data", "out") if trainer_name in ("base", "calibrate") else ("out", "init")
        for name in required:
            if not getattr(cfg, name):
                raise ConfigError(f"--{name} is required")
        if trainer_name == "base":
            from extractor.model.zoo import ARCHS
            if cfg.arch not in ARCHS:
                raise ConfigError(f"unknown --arch {cfg.arch!r}; choose one of {ARCHS}")
    except ConfigError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    if trainer_name == "calibrate":
        from training.data import load_split
        from training.decisions import add_missing_lexicon, recalibrate
        add_missing_lexicon(cfg.out, cfg.data, cfg.train_split, cfg.max_docs)
        engine, fit = recalibrate(cfg.out, load_split(cfg.data, cfg.calib_split, cfg.ocr,
                                                      cfg.max_docs))
        print(f"{cfg.out}: {engine} pages: fusion weights {list(fit.fusion_weights)}, absent "
              f"threshold {fit.profile.absent_threshold}, lenient F1 {fit.lenient_f1}, "
              f"calibration {fit.profile.calibrator.export()}")
        return 0
    try:
        trainer = load(trainer_path)(cfg)
    except (OSError, ValueError) as e:  # missing/occupied folders, bad store, bad model
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    result = trainer.train()
    if trainer_name == "base":
        print(f"saved {result.out} (best epoch {result.best_epoch}, dev lenient F1 "
              f"{result.best_dev_f1:.4f})")
    else:
        print(f"saved {result}")
    return 0
