"""The one training loop every trainer runs.

A trainer is a config (``training.config.TrainConfig`` subclass), a model, and three methods:
``epoch_batches(epoch, rng)`` (what to step on), ``compute_loss(batch)`` (forwards, then the
pure losses of ``training.losses``; returns the loss and floats to log) and, optionally,
``evaluate(epoch)`` (held-out scores; ``selection_score`` picks the kept epoch). The loop owns
the rest: seeding, AdamW over ``param_groups``, the warm-up/linear-decay schedule, gradient
clipping, device placement and mixed precision (Hugging Face Accelerate: one process on the
CPU or a GPU here, ``accelerate launch`` for several GPUs), progress bars, the curves file
(``curves.jsonl``: one row per step, one per epoch), a ``checkpoint-last`` after every epoch,
early stopping and restoring the best epoch's weights.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from extractor.devices import resolve_device
from extractor.model.card import CURVES_FILE
from extractor.model.ensemble import KVEnsemble
from training.config import TrainConfig
from training.optim import param_groups, warmup_linear

log = logging.getLogger(__name__)


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Python's and torch's global generators (dropout, fresh heads), and CPU threads."""
    if threads:
        torch.set_num_threads(threads)
    random.seed(seed)
    torch.manual_seed(seed)


def make_accelerator(cfg: TrainConfig) -> Any:
    """An ``accelerate.Accelerator`` on ``cfg.device`` with ``cfg.mixed_precision``."""
    from accelerate import Accelerator

    device = resolve_device(cfg.device)
    return Accelerator(cpu=device.type == "cpu", mixed_precision=cfg.mixed_precision)


class StopTraining(Exception):
    """Raised by ``compute_loss`` to end training before this step's update (a bound was
    crossed); ``parts`` (what the step measured) go to the curves as a row without an update,
    and the epoch is closed as usual (evaluation, curves, checkpoint)."""

    def __init__(self, reason: str, parts: dict[str, float] | None = None) -> None:
        super().__init__(reason)
        self.parts = dict(parts or {})


@dataclass
class LoopResult:
    out: Path
    best_epoch: int
    best_score: float
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Base of every trainer; subclasses set ``cfg`` and ``model`` and implement the hooks."""

    name = "trainer"
    cfg: TrainConfig
    model: KVEnsemble

    # -- hooks -------------------------------------------------------------------------------
    def epoch_batches(self, epoch: int, rng: random.Random) -> Sequence[Any]:
        raise NotImplementedError

    def steps_per_epoch(self) -> int:
        """Optimiser steps in one epoch (sizes the schedule before the first epoch)."""
        raise NotImplementedError

    def compute_loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def evaluate(self, epoch: int) -> dict[str, Any]:
        """Held-out scores after an epoch (none by default)."""
        return {}

    def selection_score(self, row: dict[str, Any]) -> float:
        """Higher is better: which epoch's weights are kept (default: lowest train loss)."""
        return -row["train_loss"]

    def checkpoint_card(self, epoch: int) -> Any:
        """The card written with ``checkpoint-last`` (default: the model's own)."""
        card = self.model.card()
        card.epoch = epoch
        return card

    def forward(self, **feats: Any) -> Any:
        """The ensemble's forward, through Accelerate's wrapper when training under it."""
        return getattr(self, "prepared", self.model)(**feats)

    def parameter_groups(self) -> list[dict[str, Any]]:
        c = self.cfg
        return param_groups(self.model, c.lr, c.head_lr, c.layout_lr, c.weight_decay)

    # -- the loop ----------------------------------------------------------------------------
    def fit(self) -> LoopResult:
        """Train, keep the best epoch's weights in ``self.model``; the caller saves."""
        cfg, out = self.cfg, Path(self.cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        acc = make_accelerator(cfg)
        rng = random.Random(cfg.seed)
        total = self.steps_per_epoch() * cfg.epochs
        if cfg.max_steps is not None:
            total = min(total, cfg.max_steps)
        self.model.to(acc.device)  # before the optimiser takes the parameters
        opt = torch.optim.AdamW(self.parameter_groups())
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, warmup_linear(int(cfg.warmup_ratio * total), total))
        # ``self.model`` stays the plain ensemble (its attributes, saving); forwards that
        # need gradient sync across processes go through ``self.forward``.
        self.prepared, opt, sched = acc.prepare(self.model, opt, sched)
        curves = out / CURVES_FILE
        curves.write_text("", encoding="utf-8")
        history: list[dict[str, Any]] = []
        best_score, best_epoch, best_state = -math.inf, 0, None
        step, stopped = 0, ""
        for epoch in range(1, cfg.epochs + 1):
            t0, parts_seen = time.time(), []
            batches = list(self.epoch_batches(epoch, rng))
            # Several processes (accelerate launch): each steps on its share of the batches.
            batches = batches[acc.process_index::acc.num_processes]
            bar = tqdm(batches, desc=f"{self.name} epoch {epoch}", unit="step",
                       disable=not acc.is_local_main_process)
            for batch in bar:
                self.model.train()
                try:
                    with acc.autocast():
                        loss, parts = self.compute_loss(batch)
                except StopTraining as e:
                    stopped = str(e) or "stopped by the trainer"
                    _append(curves, {"step": step + 1, "epoch": epoch, "updated": False,
                                     "stopped": stopped, **e.parts})
                    break
                opt.zero_grad(set_to_none=True)
                acc.backward(loss)
                if cfg.grad_clip:
                    acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                opt.step()
                sched.step()
                step += 1
                parts = {"loss": float(loss.detach()), **parts}
                parts_seen.append(parts)
                bar.set_postfix(loss=f"{parts['loss']:.3f}")
                _append(curves, {"step": step, "epoch": epoch,
                                 "lr": sched.get_last_lr()[0], **parts})
                if cfg.max_steps is not None and step >= cfg.max_steps:
                    break
            row: dict[str, Any] = {"epoch": epoch, "steps": step,
                                   "train_seconds": round(time.time() - t0, 1)}
            for key in parts_seen[0] if parts_seen else ():
                row[f"train_{key}"] = sum(p[key] for p in parts_seen) / len(parts_seen)
            row.setdefault("train_loss", math.inf)
            row.update(self.evaluate(epoch))
            history.append(row)
            _append(curves, {"epoch_end": epoch, **row})
            log.info("%s epoch %d: %s", self.name, epoch, row)
            score = self.selection_score(row)
            if score > best_score:
                best_score, best_epoch = score, epoch
                best_state = copy.deepcopy(self.model.state_dict())
            if acc.is_main_process:
                self.model.save_pretrained(out / "checkpoint-last", self.checkpoint_card(epoch))
            if cfg.max_steps is not None and step >= cfg.max_steps:
                stopped = stopped or "step cap"
            if not stopped and epoch - best_epoch >= cfg.patience:
                stopped = f"no gain for {cfg.patience} epochs"
            if stopped:
                log.info("%s: stopping after epoch %d (%s)", self.name, epoch, stopped)
                break
        del self.prepared
        if best_state is not None:
            self.model.load_state_dict(best_state)
        acc.wait_for_everyone()
        return LoopResult(out, best_epoch, best_score, step, history)


def _append(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
