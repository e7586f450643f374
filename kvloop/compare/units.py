"""The units of work of a comparison: train a start model, a reward model, one arm, and score.

Each unit is a module-level function of one JSON-able payload returning a JSON-able dict, so
the same code runs in this process (``kvloop.compare.executors.LocalExecutor``) or as a Ray
task on any machine that sees ``OUT`` (``RayExecutor``). Units read their documents from the
files ``kvloop.compare.data.prepare`` wrote and their feedback from the seed's store through
the trainers' own store API; the store of round r (its own SQLite file) holds exactly the
reviews of rounds 1..r.

Every trainer starts from the start model (not from the arm's model of the previous round),
so an arm's curve over rounds is a curve over feedback budget, each point one training run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from extractor.document import Document, ExtractionResult, Schema
from extractor.normalize import lenient_key

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


# -- helpers ----------------------------------------------------------------------------------

def _setup(payload: dict[str, Any]) -> None:
    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(int(payload.get("threads", 1)))


def _config(cls: type, values: dict[str, Any]) -> Any:
    """``cls(**values)`` keeping only the fields ``cls`` has (an arm's options may name fields
    of another trainer's config, e.g. ``pool_share`` given to every RL arm)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        log.info("%s: ignoring options it has no field for: %s", cls.__name__, unknown)
    return cls(**{k: v for k, v in values.items() if k in names})


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


def history(model_dir: Path) -> tuple[list[dict[str, Any]], int | None]:
    from extractor.model.card import CARD_FILE, ModelCard
    from extractor.model.reward import REWARD_CARD_FILE, RewardCard

    if (model_dir / REWARD_CARD_FILE).is_file():
        rec = RewardCard.load(model_dir).training
    elif (model_dir / CARD_FILE).is_file():
        rec = ModelCard.load(model_dir).training
    else:
        return [], None
    return (list(rec.history), rec.best_epoch) if rec else ([], None)


def curve_means(model_dir: Path, keys: Sequence[str]) -> dict[str, float]:
    """Means over the last epoch's step rows of ``curves.jsonl`` (e.g. RL's ``kl`` and
    ``reward``): what the policy ended at."""
    from extractor.model.card import CURVES_FILE

    p = model_dir / CURVES_FILE
    if not p.is_file():
        return {}
    rows = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line]
    steps = [r for r in rows if "step" in r]
    if not steps:
        return {}
    last = max(r.get("epoch", 0) for r in steps)
    tail = [r for r in steps if r.get("epoch", 0) == last]
    out = {}
    for k in keys:
        vals = [float(r[k]) for r in tail if isinstance(r.get(k), (int, float))]
        if vals:
            out[k] = sum(vals) / len(vals)
    return out


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


def score_model(payload: dict[str, Any], model_dir: Path, *, reward_dir: str | None = None,
                memory: Any = None) -> dict[str, dict[str, Any]]:
    """Extract every evaluation set with ``model_dir`` (reranked by ``reward_dir``, or with a
    vendor memory, when given) and score it: per set, ids, correct and counts."""
    from extractor.model.predictor import load_predictor
    from kvloop.compare.data import read_docs

    predictor = load_predictor(model_dir, payload["device"])
    reward = None
    if reward_dir:
        from extractor.model.reward import load_reward_model

        reward = load_reward_model(reward_dir, payload["device"])
    fields = predictor.schema.field_names
    k = int(payload["k"])
    out: dict[str, dict[str, Any]] = {}
    cache: dict[str, ExtractionResult] = {}  # unseen-vendor is a slice of dev: extract once
    for name, path in payload["eval_files"].items():
        docs = read_docs(path)
        todo = [d for d in docs if d.id not in cache]
        if todo:
            results = predictor.predict(todo, k=k)
            if reward is not None:
                from extractor.model.predictor import extractor_confidence

                results = reward.rerank(results, todo, k, extractor_confidence(predictor))
            if memory is not None:
                results = memory.apply_all(todo, results)
            cache.update({r.doc_id: r for r in results})
        correct, counts = field_scores(docs, [cache[d.id] for d in docs], fields)
        out[name] = {"doc_ids": [d.id for d in docs], "correct": correct, "counts": counts,
                     "fields": list(fields)}
    return out


# -- units ------------------------------------------------------------------------------------

def train_start(payload: dict[str, Any]) -> dict[str, Any]:
    """The start model: base training from gold on the start documents (epochs chosen and
    decisions fitted on the selection pages), written atomically to ``payload["out"]``."""
    _setup(payload)
    from extractor.model.card import model_version
    from extractor.model.zoo import ARCHS  # noqa: F401  (fails early on a bad install)
    from kvloop.compare.data import read_docs
    from training.supervised_config import SupervisedConfig
    from training.supervised_trainer import SupervisedTrainer
    from training.versions import new_version_dir

    out = Path(payload["out"])
    _fresh(out)
    t0 = time.perf_counter()
    select = read_docs(payload["select_file"])
    with new_version_dir(out) as work:
        cfg = _config(SupervisedConfig, {
            **payload.get("options", {}), "data": payload["start_file"], "out": str(work),
            "arch": payload["arch"], "epochs": payload["epochs"], "seed": payload["seed"],
            "threads": payload["threads"], "device": payload["device"],
            "tesseract_profile": False})
        result = SupervisedTrainer(cfg, train_docs=read_docs(payload["start_file"]),
                                   dev_docs=select, calib_docs=select,
                                   profile_docs=[]).train()
    return {"version": model_version(out), "seconds": round(time.perf_counter() - t0, 2),
            "best_epoch": result.best_epoch, "select_f1": result.best_score}


def common_values(payload: dict[str, Any], out: Path) -> dict[str, Any]:
    """Config fields every feedback trainer of a unit gets."""
    values = {"init": payload["start"], "store": payload["store"], "out": str(out), "seed": payload["seed"], "epochs": payload["epochs"],
              "threads": payload["threads"], "device": payload["device"],
              "dev_data": payload["select_file"], "dev_split": "all",
              **payload.get("trainer_options", {})}
    if payload["refit_decisions"]:
        values.update(calib_data=payload["select_file"], calib_split="all",
                      tesseract_profile=False)
    return values


def train_reward(payload: dict[str, Any]) -> dict[str, Any]:
    """The round's reward model, from the same feedback the arms learn from."""
    _setup(payload)
    from extractor.model.reward import reward_version
    from training.reward_config import RewardConfig
    from training.reward_trainer import RewardTrainer

    out = Path(payload["out"])
    _fresh(out)
    t0 = time.perf_counter()
    values = common_values(payload, out)
    values.pop("calib_data", None)  # a reward model has no decisions to refit
    values.update(payload.get("options", {}))
    RewardTrainer(_config(RewardConfig, values)).train()
    rows, best = history(out)
    row = next((r for r in rows if r.get("epoch") == best), rows[-1] if rows else {})
    return {"dir": str(out), "version": reward_version(out),
            "seconds": round(time.perf_counter() - t0, 2),
            "extras": {"reward_pair_acc": row.get("heldout_pair_acc"),
                       "reward_heldout_pairs": row.get("heldout_pairs"),
                       "reward_train_pair_acc": row.get("train_pair_acc"),
                       "reward_dev_f1_rerank": row.get("dev_f1_rerank")}}


def _with_gold(feedback: Any, pool_file: str) -> Any:
    """The feedback set with every document's gold put back (``rl-oracle`` only)."""
    from kvloop.compare.data import read_docs

    gold = {d.id: d.gold for d in read_docs(pool_file)}
    docs = [dataclasses.replace(d, gold=gold.get(d.id)) for d in feedback.documents]
    return dataclasses.replace(feedback, documents=docs)


def train_arm(payload: dict[str, Any], out: Path) -> dict[str, Any]:
    """Run the arm's trainer; its extras (what it measured while learning)."""
    from training.registry import get_trainer

    arm = payload["arm"]
    trainer = arm["trainer"]
    values = common_values(payload, out)
    if arm["needs_reward"] and arm["options"].get("reward") != "oracle":
        values["reward"] = payload["reward_dir"]
    if arm["pool"]:
        values.update(pool_data=payload["pool_nogold_file"], pool_split="all")
    values.update(arm["options"])
    if trainer == "base":  # the ceiling: gold of every pool document, from the start model
        from kvloop.compare.data import read_docs
        from training.supervised_config import SupervisedConfig
        from training.supervised_trainer import SupervisedTrainer
        from training.versions import new_version_dir

        select = read_docs(payload["select_file"])
        train = read_docs(payload["start_file"]) + read_docs(payload["pool_file"])
        with new_version_dir(out) as work:
            cfg = _config(SupervisedConfig, {
                **payload.get("trainer_options", {}), **arm["options"],
                "data": payload["pool_file"], "out": str(work), "init": payload["start"],
                "epochs": payload["epochs"], "seed": payload["seed"],
                "threads": payload["threads"], "device": payload["device"],
                "tesseract_profile": False})
            SupervisedTrainer(cfg, train_docs=train, dev_docs=select,
                              calib_docs=select if payload["refit_decisions"] else [],
                              profile_docs=[]).train()
    else:
        spec = get_trainer(trainer)
        cfg_cls, trainer_cls = spec.config_class(), spec.trainer_class()
        cfg = _config(cfg_cls, values)
        if values.get("reward") == "oracle":
            from extractor.model.card import ModelCard
            from feedback_ui.store import FeedbackStore
            from training.feedback_data import read_feedback

            schema = ModelCard.load(payload["start"]).schema
            store = FeedbackStore(payload["store"])
            try:
                fb = read_feedback(store, cfg.feedback_filter(), schema.field_names)
            finally:
                store.close()
            trainer_cls(cfg, _with_gold(fb, payload["pool_file"])).train()
        else:
            trainer_cls(cfg).train()
    rows, best = history(out)
    extras: dict[str, Any] = {"best_epoch": best,
                              "select_f1_by_epoch": [r.get("dev_f1") for r in rows]}
    extras.update(curve_means(out, ("kl", "reward", "entropy", "clip_frac")))
    if "kl" in extras:
        extras["mean_kl"] = extras.pop("kl")
    if "reward" in extras:
        extras["mean_reward"] = extras.pop("reward")
    return extras


def vendor_memory(payload: dict[str, Any]) -> Any:
    """A vendor memory of every value the operator saved up to the unit's round (the round's
    store holds exactly those saves)."""
    from extractor.vendor_memory import VendorMemory
    from feedback_ui.store import FeedbackFilter, FeedbackStore

    store = FeedbackStore(payload["store"])
    try:
        memory = VendorMemory()
        for fb in store.iter_feedback(FeedbackFilter()):
            memory.add({n: f.final_value for n, f in fb.fields.items() if f.has_final})
    finally:
        store.close()
    return memory


def run_arm(payload: dict[str, Any]) -> dict[str, Any]:
    """One arm at one (seed, round): train (if it trains), score every evaluation set, drop
    the weights unless asked to keep them. Returns the scores and what it measured."""
    _setup(payload)
    from extractor.model.card import model_version

    arm = payload["arm"]
    out = Path(payload["out"])
    t0 = time.perf_counter()
    extras: dict[str, Any] = {}
    if arm["trainer"]:
        _fresh(out)
        extras = train_arm(payload, out)
        model_dir = out
    else:
        model_dir = Path(payload["start"])
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    memory = vendor_memory(payload) if arm["vendor_memory"] else None
    scores = score_model(payload, model_dir,
                         reward_dir=payload["reward_dir"] if arm["rerank"] else None,
                         memory=memory)
    if memory is not None:
        extras["vendors_remembered"] = len(memory.vendors)
    extras["eval_seconds"] = round(time.perf_counter() - t1, 2)
    version = model_version(model_dir)
    if arm["trainer"] and not payload["keep_models"]:
        for folder in (out, out.with_name(out.name + ".sft")):  # sft-rl's intermediate too
            if folder.is_dir():
                drop_weights(folder)
    return {"scores": scores, "train_seconds": round(train_s, 2), "model_version": version,
            "extras": extras}


def extract_pool(payload: dict[str, Any]) -> dict[str, Any]:
    """The start model's k best on the pool (what the operator reviews), to a JSONL."""
    _setup(payload)
    from extractor.document import write_jsonl
    from extractor.model.predictor import load_predictor
    from kvloop.compare.data import read_docs

    predictor = load_predictor(payload["start"], payload["device"])
    t0 = time.perf_counter()
    results = predictor.predict(read_docs(payload["pool_file"]), k=int(payload["k"]))
    out = Path(payload["out"])
    tmp = out.with_suffix(".tmp")
    write_jsonl(str(tmp), results)
    tmp.rename(out)
    return {"file": str(out), "seconds": round(time.perf_counter() - t0, 2),
            "docs": len(results)}


def schema_of(model_dir: str | Path) -> Schema:
    from extractor.model.card import ModelCard

    return ModelCard.load(model_dir).schema
