"""The units of work of a comparison: train a start model, a reward model, one arm, and score.

Each unit is a module-level function of one frozen unit (``kvloop.compare.specs``, and
:class:`ArmUnit` here) returning a JSON-able dict, so the same code runs in this process
(``kvloop.compare.executors.LocalExecutor``) or as a Ray task on any machine that sees ``OUT``
(``RayExecutor``). What an arm does is the arm's (``kvloop.compare.arms``). Units read their documents from the
files ``kvloop.compare.data.prepare`` wrote and their feedback from the seed's store through
the trainers' own store API; the store of round r (its own SQLite file) holds exactly the
reviews of rounds 1..r.

Every trainer starts from the start model (not from the arm's model of the previous round),
so an arm's curve over rounds is a curve over feedback budget, each point one training run.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extractor.document import Document, ExtractionResult, Schema
from extractor.normalize import lenient_key
from kvloop.compare.arms import Arm, Evaluation
from kvloop.compare.data import read_docs
from kvloop.compare.learn import history
from kvloop.compare.specs import PoolUnit, RewardUnit, StartUnit, Unit, UnitContext
from training.config import make_config

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


@dataclass(frozen=True)
class ArmUnit(Unit):
    """One arm at one (seed, round): ``out`` is where it trains (``""``: it does not),
    ``reward_dir`` the round's reward model (``None``: none was trained)."""

    arm: Arm
    reward_dir: str | None = None


# -- helpers ----------------------------------------------------------------------------------

def _setup(ctx: UnitContext) -> None:
    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(int(ctx.threads))


def has_weights(model_dir: Path) -> bool:
    """Whether any weight file is left under ``model_dir`` (``drop_weights`` undone)."""
    return model_dir.is_dir() and any(p.is_file() and p.suffix in WEIGHT_SUFFIXES
                                      for p in model_dir.rglob("*"))


def drop_weights(model_dir: Path) -> None:
    """Delete the weight files under ``model_dir`` (cards, curves and configs stay)."""
    for p in model_dir.rglob("*"):
        if p.is_file() and p.suffix in WEIGHT_SUFFIXES:
            p.unlink()
        if p.is_dir() and p.name.startswith("checkpoint"):
            shutil.rmtree(p, ignore_errors=True)


def _fresh(out: Path) -> None:
    """Remove what an interrupted unit left under ``out`` (it is redone from the start)."""
    shutil.rmtree(out, ignore_errors=True)
    for p in out.parent.glob(f".{out.name}.*"):  # training.versions' temporary folders
        shutil.rmtree(p, ignore_errors=True)
    sibling = out.with_name(out.name + ".sft")  # sft-rl's intermediate version
    shutil.rmtree(sibling, ignore_errors=True)


# -- scoring ----------------------------------------------------------------------------------

def field_scores(docs: Sequence[Document], results: Sequence[ExtractionResult],
                 fields: Sequence[str]) -> tuple[list[list[int]], list[list[int]]]:
    """Per document: 1/0 per field (right under SROIE's lenient key: no false positive and no
    false negative) and lenient ``[tp, fp, fn]`` (``eval.metrics.judge``)."""
    from eval.metrics import judge

    by_id = {r.doc_id: r for r in results}
    correct, counts = [], []
    for d in docs:
        res = by_id.get(d.id)
        gold = d.gold or {}
        row, tot = [], [0, 0, 0]
        for f in fields:
            fr = res.fields.get(f) if res else None
            tp, fp, fn = judge(gold.get(f), fr.value if fr else None, lenient_key)
            row.append(int(fp == 0 and fn == 0))
            tot = [tot[0] + tp, tot[1] + fp, tot[2] + fn]
        correct.append(row)
        counts.append(tot)
    return correct, counts


def score_model(ctx: UnitContext, model_dir: Path,
                extras: Evaluation | None = None) -> dict[str, dict[str, Any]]:
    """Extract every evaluation set with ``model_dir`` (reranked by ``extras.reward_dir``, or
    with ``extras.memory``, when given) and score it: per set, ids, correct and counts."""
    from extractor.model.predictor import extractor_confidence, load_predictor
    from extractor.model.reward import load_reward_model

    extras = extras or Evaluation()
    predictor = load_predictor(model_dir, ctx.device)
    reward = load_reward_model(extras.reward_dir, ctx.device) if extras.reward_dir else None
    fields = predictor.schema.field_names
    out: dict[str, dict[str, Any]] = {}
    cache: dict[str, ExtractionResult] = {}  # unseen-vendor is a slice of dev: extract once
    for name, path in ctx.eval_files.items():
        docs = read_docs(path)
        todo = [d for d in docs if d.id not in cache]
        if todo:
            results = predictor.predict(todo, k=ctx.k)
            if reward is not None:
                results = reward.rerank(results, todo, ctx.k, extractor_confidence(predictor))
            if extras.memory is not None:
                results = extras.memory.apply_all(todo, results)
            cache.update({r.doc_id: r for r in results})
        correct, counts = field_scores(docs, [cache[d.id] for d in docs], fields)
        out[name] = {"doc_ids": [d.id for d in docs], "correct": correct, "counts": counts,
                     "fields": list(fields)}
    return out


# -- units ------------------------------------------------------------------------------------

def train_start(unit: StartUnit) -> dict[str, Any]:
    """The start model: base training from gold on the start documents (epochs chosen and
    decisions fitted on the selection pages), written atomically to ``unit.out``."""
    ctx = unit.ctx
    _setup(ctx)
    from extractor.model.card import model_version
    from training.supervised_config import SupervisedConfig
    from training.supervised_trainer import SupervisedTrainer
    from training.versions import new_version_dir

    out = Path(unit.out)
    _fresh(out)
    t0 = time.perf_counter()
    select = read_docs(ctx.select_file)
    with new_version_dir(out) as work:
        cfg = make_config(SupervisedConfig, {
            **unit.options, "data": ctx.start_file, "out": str(work), "arch": unit.arch,
            "epochs": unit.epochs, "seed": ctx.seed, "threads": ctx.threads,
            "device": ctx.device, "tesseract_profile": False,
            # the card's record of what it learned: every document of the start file
            "train_split": "all"}, "start_options")
        result = SupervisedTrainer(cfg, train_docs=read_docs(ctx.start_file),
                                   dev_docs=select, calib_docs=select,
                                   profile_docs=[]).train()
    return {"version": model_version(out), "seconds": round(time.perf_counter() - t0, 2),
            "best_epoch": result.best_epoch, "select_f1": result.best_score}


def train_reward(unit: RewardUnit) -> dict[str, Any]:
    """The round's reward model, from the same feedback the arms learn from."""
    ctx = unit.ctx
    _setup(ctx)
    from extractor.model.reward import reward_version
    from training.reward_config import RewardConfig
    from training.reward_trainer import RewardTrainer

    out = Path(unit.out)
    _fresh(out)
    t0 = time.perf_counter()
    values = ctx.trainer_values(out)
    values.pop("calib_data", None)  # a reward model has no decisions to refit
    values.update(unit.options)
    RewardTrainer(make_config(RewardConfig, values, "reward_options")).train()
    rows, best = history(out)
    row = next((r for r in rows if r.get("epoch") == best), rows[-1] if rows else {})
    return {"dir": str(out), "version": reward_version(out),
            "seconds": round(time.perf_counter() - t0, 2),
            "extras": {"reward_pair_acc": row.get("heldout_pair_acc"),
                       "reward_heldout_pairs": row.get("heldout_pairs"),
                       "reward_train_pair_acc": row.get("train_pair_acc"),
                       "reward_dev_f1_rerank": row.get("dev_f1_rerank")}}


def run_arm(unit: ArmUnit) -> dict[str, Any]:
    """One arm at one (seed, round): train (if it trains), score every evaluation set, drop
    the weights unless asked to keep them. Returns the scores and what it measured."""
    ctx, arm = unit.ctx, unit.arm
    _setup(ctx)
    from extractor.model.card import model_version

    out = Path(unit.out)
    t0 = time.perf_counter()
    extras: dict[str, Any] = {}
    if arm.trainer:
        _fresh(out)
        extras = arm.train(ctx, out, unit.reward_dir)
        model_dir = out
    else:
        model_dir = Path(ctx.start)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    evaluation = arm.evaluation(ctx, unit.reward_dir)
    scores = score_model(ctx, model_dir, evaluation)
    if evaluation.memory is not None:
        extras["vendors_remembered"] = len(evaluation.memory.vendors)
    extras["eval_seconds"] = round(time.perf_counter() - t1, 2)
    version = model_version(model_dir)
    if arm.trainer and not ctx.keep_models:
        for folder in (out, out.with_name(out.name + ".sft")):  # sft-rl's intermediate too
            if folder.is_dir():
                drop_weights(folder)
    return {"scores": scores, "train_seconds": round(train_s, 2), "model_version": version,
            "extras": extras}


def extract_pool(unit: PoolUnit) -> dict[str, Any]:
    """The start model's k best on the pool (what the operator reviews), to a JSONL."""
    ctx = unit.ctx
    _setup(ctx)
    from extractor.document import write_jsonl
    from extractor.model.predictor import load_predictor

    predictor = load_predictor(ctx.start, ctx.device)
    t0 = time.perf_counter()
    results = predictor.predict(read_docs(ctx.pool_file), k=int(ctx.k))
    out = Path(unit.out)
    tmp = out.with_suffix(".tmp")
    write_jsonl(str(tmp), results)
    tmp.rename(out)
    return {"file": str(out), "seconds": round(time.perf_counter() - t0, 2),
            "docs": len(results)}


def schema_of(model_dir: str | Path) -> Schema:
    from extractor.model.card import ModelCard

    return ModelCard.load(model_dir).schema
