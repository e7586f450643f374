"""The one training loop every trainer runs.

A trainer is a config (``training.config.TrainConfig`` subclass), a model, and three methods:
``epoch_batches(epoch, rng)`` (what to step on), ``compute_loss(batch)`` (forwards, then the
pure losses of ``training.losses``; returns the loss and floats to log) and, optionally,
``evaluate(epoch)`` (held-out scores; ``selection_score`` picks the kept epoch). The loop owns
the rest: seeding, AdamW over ``param_groups``, the warm-up/linear-decay schedule, gradient
clipping, device placement and mixed precision (Hugging Face Accelerate), progress bars, the
curves file (``curves.jsonl``: one row per step, one per epoch), a checkpoint after every
epoch, resuming from it, early stopping and restoring the best epoch's weights.

Checkpoint and resume. After every epoch the main process writes ``checkpoint-last/`` in
``cfg.out``: the model as ``save_pretrained`` writes it (loadable like any version), and the
loop's state, ``trainer_state.json`` (epoch, step, history, best epoch, why it stopped, the
schedule, the optimiser's hyper-parameters, the batch-order generator, the run's identity) and
``trainer_state.safetensors`` (AdamW's moments, and the best epoch's weights when they are not
the last), plus ``rng-<rank>.json`` per process (Python's, torch's and CUDA's generators and the
trainer's own: every ``torch.Generator``/``random.Random`` attribute and ``resume_attrs``). It
is written as ``checkpoint-next/`` and renamed, ``trainer_state.json`` last, so a kill at any
moment leaves one complete checkpoint. ``fit`` starts from the checkpoint it finds in
``cfg.out`` when it is this run's (same trainer, config, parent version and feedback:
:meth:`Trainer.resume_key`; ``ValueError`` naming the differences otherwise): with the same
seed, the resumed run steps on the same batches with the same dropout and ends with the same
weights as a run that was never stopped. ``training.versions.new_version_dir`` keeps the
folder under a fixed name, so the same command run again resumes. Nothing is pickled: JSON
and safetensors only.

Several processes (``accelerate launch``, ``torchrun``): each steps on its share of every
epoch's batches (the list padded by wrapping round, so that all take the same number of
steps), gradients are averaged across processes after every backward by the loop itself (so
it holds for every trainer, whether its forwards go through ``forward`` or through
``BatchedPolicy``/the reward model), a stop raised in one process stops all, the epoch's
scores are the main process's, and only the main process writes the curves and checkpoints.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from extractor.devices import resolve_device
from extractor.model.card import (
    CURVES_FILE,
    FeedbackRef,
    TrainingRecord,
    check_safetensors,
    read_card_json,
    write_json,
)
from extractor.model.ensemble import KVEnsemble
from training.base import BaseTrainer, TrainResult
from training.config import TrainConfig
from training.optim import param_groups, warmup_linear
from training.versions import new_version_dir, process_rank

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint-last"
CHECKPOINT_NEXT = "checkpoint-next"  # being written; renamed to CHECKPOINT when complete
STATE_FILE = "trainer_state.json"  # written last: a checkpoint without it is incomplete
TENSORS_FILE = "trainer_state.safetensors"
STATE_FORMAT = "kvloop.trainer-state/1"
# Config fields a resumed run may change: where it runs, not what it computes.
RESUME_IGNORES = ("out", "threads", "device")


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
    if device.type == "cuda" and device.index is not None and "LOCAL_RANK" not in os.environ:
        torch.cuda.set_device(device.index)  # one process: Accelerate uses the current GPU
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


@dataclass
class _Progress:
    """Where the loop is: what a checkpoint saves and a resumed run starts from."""

    epoch: int = 0  # last finished epoch
    step: int = 0
    stopped: str = ""
    best_epoch: int = 0
    best_score: float = -math.inf
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer(BaseTrainer):
    """Base of every trainer that runs the loop; subclasses set ``cfg`` and ``model``,
    implement the hooks and write their version in :meth:`save_version`."""

    name = "trainer"
    cfg: TrainConfig
    model: KVEnsemble
    parent_version: str | None = None
    final_out: str = ""  # ``cfg.out`` as given: while training, ``cfg.out`` is the new folder
    # Attributes (JSON values) that change while training and that a resumed run needs back,
    # besides the weights, the optimiser and the generators, which the loop saves itself.
    resume_attrs: tuple[str, ...] = ()

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

    def feedback_ref(self) -> FeedbackRef | None:
        """What feedback the run read, for its card (none by default)."""
        return None

    def record(self, result: LoopResult | None = None) -> TrainingRecord:
        """The lineage a card carries: trainer, config, parent, feedback, curves."""
        config = {**self.cfg.export(), "out": self.final_out}  # not the temporary folder
        return TrainingRecord(self.name, config, self.parent_version, self.feedback_ref(),
                              best_epoch=result.best_epoch if result else None,
                              history=list(result.history) if result else [])

    def save_version(self, work: Path, result: LoopResult) -> Any:
        """Write the trained model into ``work`` (the new version's folder, renamed into place
        after) and return its card, ``version`` set."""
        raise NotImplementedError

    def train(self) -> TrainResult:
        """Run the loop into a new version folder for ``cfg.out`` (``training.versions``:
        atomic, never over an existing folder; the same command run again resumes) and write
        it with :meth:`save_version`."""
        t0 = time.perf_counter()
        given = self.cfg.out
        out = Path(given)
        with new_version_dir(out) as work:
            self.cfg.out = str(work)  # the loop's curves and checkpoint go to the new folder
            try:
                result = self.fit()
                # the other processes' weights are the same; one saves
                card = self.save_version(work, result) if process_rank() == 0 else None
            finally:
                self.cfg.out = given
        version = card.version if card is not None else ""
        log.info("%s: wrote %s (%s, parent %s)", self.name, out, version,
                 getattr(self, "parent_version", None))
        return TrainResult(out, version, card, tuple(result.history), result.best_epoch,
                           result.best_score, time.perf_counter() - t0)

    def forward(self, **feats: Any) -> Any:
        """The model's forward (no wrapper: the loop averages gradients across processes)."""
        return self.model(**feats)

    def parameter_groups(self) -> list[dict[str, Any]]:
        c = self.cfg
        return param_groups(self.model, c.lr, c.head_lr, c.layout_lr, c.weight_decay)

    # -- resuming ----------------------------------------------------------------------------
    def resume_key(self) -> dict[str, Any]:
        """What makes a checkpoint this run's: the training record of ``checkpoint_card``
        (trainer, config, parent version, feedback read) without its results, and without
        the config fields in ``RESUME_IGNORES``."""
        record = getattr(self.checkpoint_card(0), "training", None)
        key = record.export() if record is not None else {"config": self.cfg.export()}
        key = {k: v for k, v in key.items() if k not in ("history", "best_epoch", "curves")}
        key["config"] = {k: v for k, v in key.get("config", {}).items()
                         if k not in RESUME_IGNORES}
        return json.loads(json.dumps(key))  # tuples -> lists, as read back

    def resume_state(self) -> dict[str, Any]:
        """This process's trainer state for a checkpoint: ``resume_attrs`` and generators."""
        gens = {k: _generator_state(v) for k, v in vars(self).items()
                if isinstance(v, (torch.Generator, random.Random))}
        return {"attrs": {k: getattr(self, k) for k in self.resume_attrs},
                "generators": gens}

    def load_resume_state(self, state: dict[str, Any]) -> None:
        for k, v in state.get("attrs", {}).items():
            setattr(self, k, v)
        for k, v in state.get("generators", {}).items():
            _set_generator_state(getattr(self, k), v)

    def load_weights(self, checkpoint: Path) -> None:
        """The weights of a checkpoint's model into ``self.model`` (through the model class's
        own ``from_pretrained``: safetensors and JSON, checked)."""
        loaded, _ = type(self.model).from_pretrained(checkpoint)
        self.model.load_state_dict(loaded.state_dict())

    # -- the loop ----------------------------------------------------------------------------
    def fit(self) -> LoopResult:
        """Train (or resume), keep the best epoch's weights in ``self.model``; the caller
        saves."""
        cfg = self.cfg
        acc = make_accelerator(cfg)
        main = acc.is_main_process
        # Every process reads the main process's checkpoints (the others write elsewhere).
        out = Path(_broadcast_json(str(cfg.out), acc))
        rng = random.Random(cfg.seed)
        total = self.steps_per_epoch() * cfg.epochs
        if cfg.max_steps is not None:
            total = min(total, cfg.max_steps)
        self.model.to(acc.device)  # before the optimiser takes the parameters
        opt = torch.optim.AdamW(self.parameter_groups())
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, warmup_linear(int(cfg.warmup_ratio * total), total))
        # Accelerate steps the schedule once per process per step, so it is sized for the
        # steps of one process on all batches, as here.
        opt, sched = acc.prepare(opt, sched)
        params = [p for g in opt.param_groups for p in g["params"]]
        curves = out / CURVES_FILE
        ckpt = find_checkpoint(out)
        if ckpt is not None:
            progress = self._resume(ckpt, opt, sched, rng, acc)
        else:
            progress = _Progress()
            if main:
                out.mkdir(parents=True, exist_ok=True)
                curves.write_text("", encoding="utf-8")
        acc.wait_for_everyone()
        finished = bool(progress.stopped) or progress.epoch >= cfg.epochs
        for epoch in range(progress.epoch + 1, cfg.epochs + 1) if not finished else ():
            t0, parts_seen = time.time(), []
            batches = _share(list(self.epoch_batches(epoch, rng)), acc)
            bar = tqdm(batches, desc=f"{self.name} epoch {epoch}", unit="step",
                       disable=not acc.is_local_main_process)
            for batch in bar:
                self.model.train()
                stop: StopTraining | None = None
                try:
                    with acc.autocast():
                        loss, parts = self.compute_loss(batch)
                except StopTraining as e:
                    stop = e
                if _any_process(stop is not None, acc):
                    progress.stopped = (str(stop) or "stopped by the trainer") if stop else \
                        "stopped by another process"
                    if main:
                        _append(curves, {"step": progress.step + 1, "epoch": epoch,
                                         "updated": False, "stopped": progress.stopped,
                                         **(stop.parts if stop else {})})
                    break
                opt.zero_grad(set_to_none=True)
                acc.backward(loss)
                if acc.num_processes > 1:
                    _average_gradients(params, acc)
                if cfg.grad_clip:
                    acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                opt.step()
                sched.step()
                progress.step += 1
                parts = {"loss": float(loss.detach()), **parts}
                parts_seen.append(parts)
                bar.set_postfix(loss=f"{parts['loss']:.3f}")
                if main:
                    _append(curves, {"step": progress.step, "epoch": epoch,
                                     "lr": sched.get_last_lr()[0], **parts})
                if cfg.max_steps is not None and progress.step >= cfg.max_steps:
                    break
            row: dict[str, Any] = {"epoch": epoch, "steps": progress.step,
                                   "train_seconds": round(time.time() - t0, 1)}
            for key in parts_seen[0] if parts_seen else ():
                row[f"train_{key}"] = sum(p[key] for p in parts_seen) / len(parts_seen)
            row.setdefault("train_loss", math.inf)
            row.update(self.evaluate(epoch))
            row = _broadcast_json(row, acc)  # one process's scores decide for all
            progress.history.append(row)
            if main:
                _append(curves, {"epoch_end": epoch, **row})
            log.info("%s epoch %d: %s", self.name, epoch, row)
            score = self.selection_score(row)
            if score > progress.best_score:
                progress.best_score, progress.best_epoch = score, epoch
                progress.best_state = copy.deepcopy(self.model.state_dict())
            progress.epoch = epoch
            if cfg.max_steps is not None and progress.step >= cfg.max_steps:
                progress.stopped = progress.stopped or "step cap"
            if not progress.stopped and epoch - progress.best_epoch >= cfg.patience:
                progress.stopped = f"no gain for {cfg.patience} epochs"
            self._checkpoint(out, progress, opt, sched, rng, acc)
            if progress.stopped:
                log.info("%s: stopping after epoch %d (%s)", self.name, epoch,
                         progress.stopped)
                break
        if progress.best_state is not None:
            self.model.load_state_dict(progress.best_state)
        acc.wait_for_everyone()
        return LoopResult(out, progress.best_epoch, progress.best_score, progress.step,
                          progress.history)

    # -- checkpoints -------------------------------------------------------------------------
    def _checkpoint(self, out: Path, progress: _Progress, opt: Any, sched: Any,
                    rng: random.Random, acc: Any) -> None:
        """Write ``checkpoint-next`` (every process its generators), then rename it to
        ``checkpoint-last`` with ``trainer_state.json`` written last (see module docstring)."""
        nxt, last = out / CHECKPOINT_NEXT, out / CHECKPOINT
        keep_best = progress.best_state is not None and progress.best_epoch != progress.epoch
        opt_state = opt.state_dict()
        if acc.is_main_process:
            tensors = {f"optimizer.{pid}.{name}": v.detach().cpu().contiguous()
                       for pid, st in opt_state["state"].items() for name, v in st.items()
                       if isinstance(v, torch.Tensor)}
            if keep_best:
                assert progress.best_state is not None
                tensors.update({f"best.{k}": v.detach().cpu().contiguous().clone()
                                for k, v in progress.best_state.items()})
            shutil.rmtree(nxt, ignore_errors=True)
            self.model.save_pretrained(nxt, self.checkpoint_card(progress.epoch))
            save_file(tensors, str(nxt / TENSORS_FILE), metadata={"format": STATE_FORMAT})
        acc.wait_for_everyone()
        write_json(nxt / f"rng-{acc.process_index}.json", _process_rng(self))
        acc.wait_for_everyone()
        if acc.is_main_process:
            curves = out / CURVES_FILE
            state = {
                "format": STATE_FORMAT, "epoch": progress.epoch, "step": progress.step,
                "stopped": progress.stopped, "best_epoch": progress.best_epoch,
                "best_score": progress.best_score, "best_saved": keep_best,
                "history": progress.history, "loop_rng": _generator_state(rng),
                "scheduler": sched.state_dict(),
                "optimizer": {"param_groups": opt_state["param_groups"], "state": {
                    str(pid): {k: v for k, v in st.items() if not isinstance(v, torch.Tensor)}
                    for pid, st in opt_state["state"].items()}},
                "num_processes": acc.num_processes, "key": self.resume_key(),
                "curves_bytes": curves.stat().st_size if curves.is_file() else 0}
            write_json(nxt / STATE_FILE, state)
            shutil.rmtree(last, ignore_errors=True)
            nxt.rename(last)
        acc.wait_for_everyone()

    def _resume(self, ckpt: Path, opt: Any, sched: Any, rng: random.Random,
                acc: Any) -> _Progress:
        """Weights, optimiser, schedule, generators and progress from ``ckpt``; the curves
        cut back to what it had seen. ``ValueError`` when it is not this run's or damaged."""
        state = read_card_json(ckpt / STATE_FILE, "checkpoint's state")
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"{ckpt / STATE_FILE}: unsupported format {state.get('format')!r}")
        diff = _differences(state.get("key", {}), self.resume_key())
        if diff:
            raise ValueError(f"{ckpt}: the checkpoint of another run ({'; '.join(diff[:6])}): "
                             f"run the command it was started with, or delete "
                             f"{ckpt.parent} to start afresh")
        tensors_path = ckpt / TENSORS_FILE
        check_safetensors(tensors_path)
        tensors = load_file(str(tensors_path))
        try:
            self.load_weights(ckpt)
            opt.load_state_dict({
                "param_groups": state["optimizer"]["param_groups"],
                "state": {int(pid): {**nums, **{name[len(f"optimizer.{pid}."):]: v
                                                for name, v in tensors.items()
                                                if name.startswith(f"optimizer.{pid}.")}}
                          for pid, nums in state["optimizer"]["state"].items()}})
            sched.load_state_dict(state["scheduler"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise ValueError(f"{ckpt}: cannot resume from this checkpoint ({e}); delete "
                             f"{ckpt.parent} to start afresh") from e
        _set_generator_state(rng, state["loop_rng"])
        rng_file = ckpt / f"rng-{acc.process_index}.json"
        if state.get("num_processes", 1) != acc.num_processes or not rng_file.is_file():
            log.warning("%s: saved by %s process(es), resumed by %d: the batches are split "
                        "otherwise, so the run will not replay exactly", ckpt,
                        state.get("num_processes"), acc.num_processes)
        if rng_file.is_file():
            _set_process_rng(self, read_card_json(rng_file, "checkpoint's generators"))
        if state["best_saved"]:
            best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
        else:  # the last epoch was the best
            best = copy.deepcopy(self.model.state_dict())
        curves = ckpt.parent / CURVES_FILE
        if acc.is_main_process and curves.is_file():
            with open(curves, "r+b") as fh:  # drop the rows of the epoch the kill cut short
                fh.truncate(int(state["curves_bytes"]))
        log.info("%s: resuming from %s (epoch %d, step %d)", self.name, ckpt, state["epoch"],
                 state["step"])
        return _Progress(int(state["epoch"]), int(state["step"]), str(state["stopped"]),
                         int(state["best_epoch"]), float(state["best_score"]), best,
                         list(state["history"]))


def find_checkpoint(out: str | Path) -> Path | None:
    """The complete checkpoint in ``out`` (``checkpoint-last``, or ``checkpoint-next`` when a
    kill fell between removing the old and renaming the new), or ``None``."""
    for name in (CHECKPOINT, CHECKPOINT_NEXT):
        if (Path(out) / name / STATE_FILE).is_file():
            return Path(out) / name
    return None


# -- helpers ------------------------------------------------------------------------------------

def _share(batches: list[Any], acc: Any) -> list[Any]:
    """This process's share of the epoch's batches; every process gets as many (the list is
    padded by wrapping round), or the gradient averaging would wait for a missing step."""
    n = acc.num_processes
    if n == 1 or not batches:
        return batches
    padded = [batches[i % len(batches)] for i in range(-(-len(batches) // n) * n)]
    return padded[acc.process_index::n]


def _any_process(flag: bool, acc: Any) -> bool:
    if acc.num_processes == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([int(flag)], device=acc.device)
    dist.all_reduce(t)  # sum
    return bool(t.item())


def _average_gradients(params: Sequence[torch.nn.Parameter], acc: Any) -> None:
    """Every parameter's gradient becomes its mean over the processes (DDP's rule); a
    parameter without a gradient in every process keeps none (AdamW then skips it)."""
    import torch.distributed as dist

    has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32,
                       device=acc.device)
    dist.all_reduce(has)
    live = [p for p, h in zip(params, has.tolist()) if h]
    for p in live:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    by_dtype: dict[torch.dtype, list[torch.nn.Parameter]] = {}
    for p in live:
        by_dtype.setdefault(p.grad.dtype, []).append(p)  # type: ignore[union-attr]
    for group in by_dtype.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group])  # type: ignore[union-attr]
        dist.all_reduce(flat)
        flat /= acc.num_processes
        offset = 0
        for p in group:
            n = p.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p))  # type: ignore[union-attr]
            offset += n


def _broadcast_json(obj: Any, acc: Any) -> Any:
    """The main process's ``obj`` in every process (as JSON bytes; nothing pickled)."""
    if acc.num_processes == 1:
        return obj
    import torch.distributed as dist

    data = json.dumps(obj).encode() if acc.is_main_process else b""
    size = torch.tensor([len(data)], device=acc.device)
    dist.broadcast(size, 0)
    buf = torch.zeros(int(size.item()), dtype=torch.uint8, device=acc.device)
    if acc.is_main_process:
        buf.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    dist.broadcast(buf, 0)
    return json.loads(bytes(buf.cpu().tolist()).decode())


def _generator_state(g: torch.Generator | random.Random) -> Any:
    if isinstance(g, random.Random):
        return _tuple_to_lists(g.getstate())
    return {"device": str(g.device), "state": g.get_state().tolist()}


def _set_generator_state(g: torch.Generator | random.Random, state: Any) -> None:
    if isinstance(g, random.Random):
        version, internal, gauss = state
        g.setstate((version, tuple(internal), gauss))
    else:
        g.set_state(torch.tensor(state["state"], dtype=torch.uint8))


def _tuple_to_lists(x: Any) -> Any:
    return [_tuple_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _process_rng(trainer: Trainer) -> dict[str, Any]:
    """This process's generators (Python, torch, CUDA) and the trainer's resume state."""
    return {"python": _tuple_to_lists(random.getstate()),
            "torch": torch.get_rng_state().tolist(),
            "cuda": ([s.tolist() for s in torch.cuda.get_rng_state_all()]
                     if torch.cuda.is_available() else []),
            "trainer": trainer.resume_state()}


def _set_process_rng(trainer: Trainer, state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8)
                                      for s in state["cuda"]])
    trainer.load_resume_state(state["trainer"])


def _differences(saved: dict[str, Any], now: dict[str, Any], where: str = "") -> list[str]:
    """``name: saved -> now`` for every leaf that differs (nested dicts by dotted name)."""
    out = []
    for k in sorted(set(saved) | set(now)):
        a, b = saved.get(k), now.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{where}{k}.")
        elif a != b:
            out.append(f"{where}{k}: {a!r} then, {b!r} now")
    return out


def _append(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
