"""``kvloop train base``: supervised training of the extractor ensemble from gold labels.

Thin entry point: arguments become a ``SupervisedConfig`` and ``SupervisedTrainer`` does the
work (``training/supervised_trainer.py``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields

from training.supervised_config import SupervisedConfig

STAGES = ("base", "calibrate")
_FLAGS = ("data", "out", "ocr", "ocr_mix", "epochs", "lr", "head_lr", "layout_lr", "batch_size",
          "max_length", "stride", "seed", "arch", "layout_init", "patience", "train_split",
          "dev_split", "calib_split", "max_docs", "threads", "max_span_len", "init",
          "tesseract_profile")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", choices=STAGES,
                        help="'base' = supervised training from gold labels; 'calibrate' = "
                             "refit the decisions (absent threshold, word correction, "
                             "confidence calibration) of the model in --out on --calib-split "
                             "read by --ocr")
    helps = {f.name: f for f in fields(SupervisedConfig)}
    for name in _FLAGS:
        f = helps[name]
        default = f.default
        kind = {int: int, float: float}.get(type(default), str)
        if name == "max_docs":
            kind = int
        if name == "layout_lr":
            kind = float
        if name == "init":
            kind = str
        if isinstance(default, bool):
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=default,
                                action=argparse.BooleanOptionalAction,
                                help=f"{f.metadata.get('help', '')} (default: {default})")
            continue
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind,
                            default=default, required=name in ("data", "out"),
                            help=f"{f.metadata.get('help', '')} (default: {default})")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        cfg = SupervisedConfig(**{n: getattr(args, n) for n in _FLAGS})
    except ValueError as e:
        print(f"kvloop train: {e}", file=sys.stderr)
        return 2
    from extractor.model.zoo import ARCHS
    if cfg.arch not in ARCHS:
        print(f"kvloop train: unknown --arch {cfg.arch!r}; choose one of {ARCHS}",
              file=sys.stderr)
        return 2
    if args.stage == "calibrate":
        from training.supervised_trainer import add_missing_lexicon, load_split, recalibrate
        add_missing_lexicon(cfg.out, cfg.data, cfg.train_split, cfg.max_docs)
        engine, fit = recalibrate(cfg.out, load_split(cfg.data, cfg.calib_split, cfg.ocr,
                                                      cfg.max_docs))
        print(f"{cfg.out}: {engine} pages: fusion weights {list(fit.fusion_weights)}, absent "
              f"threshold {fit.profile.absent_threshold}, lenient F1 {fit.lenient_f1}, "
              f"calibration {fit.profile.calibrator.export()}")
        return 0
    from training.supervised_trainer import SupervisedTrainer
    result = SupervisedTrainer(cfg).train()
    print(f"saved {result.out} (best epoch {result.best_epoch}, dev lenient F1 "
          f"{result.best_dev_f1:.4f})")
    return 0
