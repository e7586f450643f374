"""``calibrate``: refit a saved model's decisions in place (its weights are unchanged).

The fusion weights, "absent" threshold, word correction, calibrator and auto-accept
thresholds of the model in ``cfg.out`` are refitted on ``cfg.calib_split`` of ``cfg.data`` read
by ``cfg.ocr`` (``training.decisions.recalibrate``); a model saved without a lexicon gets one
built from its training split first.
"""

from __future__ import annotations

import time
from pathlib import Path

from extractor.model.card import ModelCard, model_version
from training.base import BaseTrainer, TrainResult
from training.data import load_split
from training.decisions import add_missing_lexicon, recalibrate
from training.supervised_config import SupervisedConfig


class CalibrateTrainer(BaseTrainer):
    """The decisions of ``cfg.out`` refitted on held-out pages (see the module docstring)."""

    name = "calibrate"

    def __init__(self, cfg: SupervisedConfig) -> None:
        self.cfg = cfg

    def train(self) -> TrainResult:
        cfg, t0 = self.cfg, time.perf_counter()
        add_missing_lexicon(cfg.out, cfg.data, cfg.train_split, cfg.max_docs)
        engine, fit = recalibrate(cfg.out, load_split(cfg.data, cfg.calib_split, cfg.ocr,
                                                      cfg.max_docs))
        summary = (f"{engine} pages: fusion weights {list(fit.fusion_weights)}, absent "
                   f"threshold {fit.profile.absent_threshold}, lenient F1 {fit.lenient_f1}, "
                   f"calibration {fit.profile.calibrator.export()}")
        out = Path(cfg.out)
        return TrainResult(out, model_version(out), ModelCard.load(out),
                           seconds=time.perf_counter() - t0, summary=summary)
