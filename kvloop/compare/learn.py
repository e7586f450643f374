"""What the arms run when they learn: a trainer's history and curves, the vendor memory, the
oracle's feedback, the gold ceiling's training.

Trainers are imported inside the functions that run them: ``kvloop.compare.arms`` reads this
module and must list the arms without loading torch.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kvloop.compare.data import read_docs
from kvloop.compare.specs import UnitContext


def history(model_dir: Path) -> tuple[list[dict[str, Any]], int | None]:
    """The epochs a trainer logged in the card of ``model_dir`` (extractor or reward model)
    and the kept one."""
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


def trainer_extras(out: Path) -> dict[str, Any]:
    """What a trainer measured while learning, from the version it wrote in ``out``."""
    rows, best = history(out)
    extras: dict[str, Any] = {"best_epoch": best,
                              "select_f1_by_epoch": [r.get("dev_f1") for r in rows]}
    extras.update(curve_means(out, ("kl", "reward", "entropy", "clip_frac")))
    if "kl" in extras:
        extras["mean_kl"] = extras.pop("kl")
    if "reward" in extras:
        extras["mean_reward"] = extras.pop("reward")
    return extras


def vendor_memory(store_url: str) -> Any:
    """A vendor memory of every value the operator saved in the store (the round's store
    holds exactly the saves of rounds 1..r)."""
    from extractor.vendor_memory import VendorMemory
    from feedback_ui.store import FeedbackFilter, FeedbackStore

    memory = VendorMemory()
    with FeedbackStore(store_url) as store:
        for fb in store.iter_feedback(FeedbackFilter()):
            memory.add({n: f.final_value for n, f in fb.fields.items() if f.has_final})
    return memory


def gold_feedback(ctx: UnitContext, cfg: Any) -> Any:
    """The feedback ``cfg`` selects with every document's gold put back (the exact-match
    reward reads it)."""
    from extractor.model.card import ModelCard
    from training.feedback_data import read_store_feedback

    schema = ModelCard.load(ctx.start).schema
    fb = read_store_feedback(cfg.store, cfg.feedback_filter(), schema.field_names)
    gold = {d.id: d.gold for d in read_docs(ctx.pool_file)}
    docs = [dataclasses.replace(d, gold=gold.get(d.id)) for d in fb.documents]
    return dataclasses.replace(fb, documents=docs)


def train_gold(ctx: UnitContext, out: Path, options: Mapping[str, Any]) -> None:
    """Supervised training from the start model on the gold of the start and pool documents
    (epochs chosen, and decisions refitted, on the selection pages)."""
    from training.config import make_config
    from training.supervised_config import SupervisedConfig
    from training.supervised_trainer import SupervisedTrainer
    from training.versions import new_version_dir

    select = read_docs(ctx.select_file)
    train = read_docs(ctx.start_file) + read_docs(ctx.pool_file)
    with new_version_dir(out) as work:
        cfg = make_config(SupervisedConfig, {
            **ctx.trainer_options, **options, "data": ctx.pool_file, "out": str(work),
            "init": ctx.start, "epochs": options.get("epochs", ctx.epochs), "seed": ctx.seed,
            "threads": ctx.threads,
            "device": ctx.device, "tesseract_profile": False}, "the gold arm")
        SupervisedTrainer(cfg, train_docs=train, dev_docs=select,
                          calib_docs=select if ctx.refit_decisions else [],
                          profile_docs=[]).train()
