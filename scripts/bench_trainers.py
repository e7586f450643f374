"""Benchmark the feedback trainers on SROIE: speed, peak memory, reward-model figures, dev F1.

One run, every step seeded (``--seed``) and cached under ``--out`` (a step is finished when
its record ``OUT/steps/<step>.json`` exists; it is written last, after the step's output is
complete, so re-running skips finished steps and redoes interrupted ones):

1. ``start``: supervised base training (``SupervisedTrainer``) from gold on the first
   ``--start-docs`` receipts of ``fit``, early stopping and decisions fitted on
   ``calibration`` -> ``OUT/start``.
2. ``pool``: the next ``--pool-docs`` receipts of ``fit`` extracted by the start model, stored
   (without their gold) in a SQLite feedback store ``OUT/pool/feedback.db`` and reviewed by a
   simulated operator through ``feedback_ui.service.ReviewService`` (open, choose,
   save_correction: the UI's API) with ``kvloop.compare.operator.SimulatedOperator``.
   ``--regime full`` accepts right values, picks the right alternative or types the gold
   value; ``choice-only`` never types: it rejects a wrong shown value no alternative corrects,
   and skips a document with a field shown empty whose value no alternative has (nothing to
   reject, nothing to pick). ``operator_seconds``: what the reviews cost under its default
   ``EffortModel`` (Keystroke-Level Model).
3. trainers, each a child process running the real CLI (``kvloop train NAME``, through a
   wrapper that records ``ru_maxrss``), timed wall-clock -> ``OUT/models/<row>``: ``sft``,
   ``sft-ul`` (``--unlikelihood-weight``), ``reward`` (from the store), ``rl`` (rloo against
   that reward model), ``rl-ppo`` (``rl-ppo2``: 2 updates per batch, not 4), ``dpo``,
   ``dpo-dpop``, ``dpo-diff`` (differing words), ``sft-rl`` (SFT then RLOO); rows whose
   trainer this checkout lacks are skipped with a note. ``base-epoch``: one base-training
   epoch from the start model on the pool documents' gold (same dev evaluation and decision
   refit), the reference every row is compared with.
4. ``reward``: the reward model's held-out pairwise accuracy (its card's history, best epoch),
   its pairwise accuracy on fresh samples of the start policy on dev (``BatchedPolicy.sample``,
   each outcome right when ``training.rewards.same_value`` of its value and gold), the time
   ``RewardModel.score`` takes for every k-best candidate of the pool documents (scaled to
   100), and best-of-k dev F1 (the start model's dev k-best reranked) next to the start's own.
5. ``eval``: ``kvloop eval --model START --model ...`` on dev; the paired bootstrap 95% CI of
   each model against the start model is read from ``OUT/eval/report.json``.
6. a Markdown table on stdout and everything in ``OUT/bench-trainers.json``.

Targets (2-core machine): ``sft``/``reward``/``dpo`` at most 300 s per 100 reviewed documents
(the whole run: load, ``--epochs`` epochs, dev evaluation, decision refit); ``rl`` at most
600 s per pass over 300 documents (the loop's seconds per epoch: sampling, reward scoring and
updates, scaled to 300 documents); reward scoring of 100 documents' candidates under 30 s; the
peak RSS of every trainer under 12 GB.

    python scripts/bench_trainers.py --out runs/bench-trainers
    python scripts/bench_trainers.py --arch tiny --start-docs 3 --pool-docs 4 \\
        --max-dev-docs 3 --max-calib-docs 3 --epochs 1 --out /tmp/bench-tiny
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from extractor.document import Document
from kvloop.compare.steps import SettingsMismatch, StepCache

DATA = str(REPO.parent / "shared" / "data" / "sroie")
REGIMES = ("full", "choice-only")
OPERATOR = "bench-operator"
DATASET = "bench-trainers"
GB = 1024 ** 2  # ru_maxrss is in KiB on Linux
PER_100_TARGET_S = 300.0  # sft, reward, dpo: 5 minutes per 100 reviewed documents
RL_PASS_TARGET_S = 600.0  # rl: 10 minutes per pass over 300 documents
RL_PASS_DOCS = 300
SCORE_TARGET_S = 30.0  # reward model: every candidate of 100 documents
RSS_TARGET_GB = 12.0

TARGETS = {
    "per_100_docs_s": "wall seconds of the whole trainer process (load, --epochs epochs, dev "
                      "evaluation, decision refit) x 100 / reviewed documents (base-epoch: / "
                      f"pool documents); sft, reward, dpo: <= {PER_100_TARGET_S:.0f}",
    "per_pass_300_docs_s": "rl: the loop's seconds per epoch (sampling, reward scoring, "
                           f"updates) x {RL_PASS_DOCS} / reviewed documents; <= "
                           f"{RL_PASS_TARGET_S:.0f}",
    "peak_rss_gb": f"ru_maxrss of the trainer process itself; every trainer < {RSS_TARGET_GB:.0f}"
                   " (helpers_peak_rss_gb: the largest process it started, e.g. loader workers)",
    "reward_scoring": "RewardModel.score over every placed k-best candidate of the pool "
                      f"documents, scaled to 100 documents; < {SCORE_TARGET_S:.0f} s",
    "vs_base_epoch": "wall seconds / the base-epoch row's wall seconds",
    "other_s": "wall seconds outside the training loop's epochs (start-up, loading, dev "
               "evaluation, decision refit on the calibration receipts)",
}

# Runs ``module:function(argv)`` and writes its exit code, seconds and peak RSS (its own and
# its children's, KiB) to the file named by argv[1]: memory measured in the child itself.
CHILD = """\
import importlib, json, resource, sys, time
t0, rc = time.perf_counter(), 1
try:
    mod, fn = sys.argv[2].split(":")
    rc = getattr(importlib.import_module(mod), fn)(sys.argv[3:])
finally:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(sys.argv[1], "w") as fh:
        json.dump({"rc": rc, "seconds": time.perf_counter() - t0, "maxrss_kb": me,
                   "children_maxrss_kb": kids}, fh)
sys.exit(rc)
"""


# -- what to run -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One benchmarked trainer run: a ``kvloop train`` trainer and its options."""

    name: str
    trainer: str  # ``kvloop train`` name; "" = the in-script base epoch
    options: dict[str, Any] = field(default_factory=dict)  # config fields ({models}: folder)
    needs: tuple[str, ...] = ()  # rows whose output this one reads
    target: str = "per_100"  # "per_100", "rl_pass", "chain" (no target) or "" (the reference)


ROWS: tuple[Row, ...] = (
    Row("base-epoch", "", target=""),
    Row("sft", "sft"),
    Row("sft-ul", "sft", {"unlikelihood_weight": "{unlikelihood_weight}"}),
    Row("reward", "reward"),
    Row("rl", "rl", {"reward": "{models}/reward", "algorithm": "rloo"}, ("reward",), "rl_pass"),
    # PPO's cost is ppo_epochs updates per batch of samples: 4 (the common choice) and 2 (the
    # default), each given, so that a row keeps its meaning if the default changes
    Row("rl-ppo", "rl", {"reward": "{models}/reward", "algorithm": "ppo", "ppo_epochs": 4},
        ("reward",), "rl_pass"),
    Row("rl-ppo2", "rl", {"reward": "{models}/reward", "algorithm": "ppo", "ppo_epochs": 2},
        ("reward",), "rl_pass"),
    Row("dpo", "dpo"),
    Row("dpo-dpop", "dpo", {"loss_type": "dpop"}),
    Row("dpo-diff", "dpo", {"loss_type": "diff_words"}),
    # SFT then RLOO as one command: both stages --epochs each; it has no target of its own
    # (its parts have theirs), so the row reports its times against sft's and rl's
    Row("sft-rl", "sft-rl", {"reward": "{models}/reward", "algorithm": "rloo",
                             "sft_epochs": "{epochs}"}, ("reward",), "chain"),
)
ROW_NAMES = tuple(r.name for r in ROWS)


def make_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DATA, help="SROIE folder (default: the shared copy)")
    ap.add_argument("--out", default="runs/bench-trainers", help="output and cache folder")
    ap.add_argument("--arch", default="minilm", help="start model architecture (zoo name)")
    ap.add_argument("--start-docs", type=int, default=25,
                    help="fit receipts the start model is trained on (the first ones)")
    ap.add_argument("--pool-docs", type=int, default=100,
                    help="the next fit receipts, extracted and reviewed by the operator")
    ap.add_argument("--regime", choices=REGIMES, default="full",
                    help="simulated operator: 'full' (types gold when needed) or "
                         "'choice-only' (never types: rejects instead)")
    ap.add_argument("--seed", type=int, default=13, help="seed of every step")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of each feedback trainer")
    # 25 receipts are 4 steps an epoch: the base recipe's patience of 3 stopped a 10-epoch
    # start at epoch 4 still predicting "absent" almost everywhere (dev F1 0.174, BENCHMARKS),
    # so the start gets kvloop compare's quick recipe: 16 epochs, no early stop before them.
    ap.add_argument("--start-epochs", type=int, default=16,
                    help="epochs of the start model (the best on calibration is kept)")
    ap.add_argument("--start-patience", type=int, default=None,
                    help="early-stopping patience of the start model (default: "
                         "--start-epochs, i.e. no early stop)")
    ap.add_argument("--start-model", default=None,
                    help="use this saved extractor as the start model instead of training "
                         "one (it must have been trained on the first --start-docs fit "
                         "receipts, e.g. kvloop compare's OUT/start/shared)")
    ap.add_argument("--max-dev-docs", type=int, default=None,
                    help="cap the dev receipts (the evaluation; tiny runs)")
    ap.add_argument("--max-calib-docs", type=int, default=None,
                    help="cap the calibration receipts the decisions are fitted on (tiny "
                         "runs; the trainers then read them from OUT/calib.jsonl)")
    ap.add_argument("--ocr-mix", type=float, default=0.0,
                    help="start model / base epoch: share of pages read from a tesseract pass")
    ap.add_argument("--tesseract-profile", action="store_true",
                    help="also fit the image-input decision profile (runs tesseract)")
    ap.add_argument("--unlikelihood-weight", type=float, default=1.0,
                    help="sft-ul: weight of the unlikelihood term on rejected values")
    ap.add_argument("--k", type=int, default=5, help="k-best candidates per field")
    ap.add_argument("--samples", type=int, default=8,
                    help="fresh outcomes sampled per dev field for the reward's pair accuracy")
    ap.add_argument("--trainers", default=",".join(ROW_NAMES),
                    help=f"comma list of rows to run (default all: {','.join(ROW_NAMES)})")
    return ap


# -- step records (the cache): kvloop.compare.steps, one copy for every experiment -------------

def steps(out: Path) -> StepCache:
    return StepCache(out / "steps")


def cached(out: Path, step: str, settings: dict[str, Any]) -> dict[str, Any] | None:
    return steps(out).get(step, settings)


def finish(out: Path, step: str, settings: dict[str, Any], result: dict[str, Any]) -> None:
    steps(out).put(step, settings, result)


# -- children ----------------------------------------------------------------------------------

def run_child(target: str, argv: Sequence[str], log: Path) -> dict[str, Any]:
    """Run ``module:function(argv)`` in a fresh process; wall seconds, peak RSS, exit code."""
    log.parent.mkdir(parents=True, exist_ok=True)
    usage = log.with_suffix(".rusage.json")
    usage.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), str(REPO / "scripts"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-c", CHILD, str(usage), target, *argv]
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                            check=False).returncode
    wall = time.perf_counter() - t0
    u = json.loads(usage.read_text()) if usage.is_file() else {}
    peak, helpers = u.get("maxrss_kb", 0), u.get("children_maxrss_kb", 0)
    return {"rc": rc, "wall_s": round(wall, 2), "child_s": round(u.get("seconds", 0.0), 2),
            "peak_rss_kb": peak, "peak_rss_gb": round(peak / GB, 3),
            "helpers_peak_rss_gb": round(helpers / GB, 3), "log": str(log)}


def tail(path: Path, n: int = 15) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-n:])


def base_child(argv: Sequence[str]) -> int:
    """Child entry: supervised training from the JSON spec in ``argv[0]`` (see ``base_spec``)."""
    from training.data import load_split, with_image_variants
    from training.supervised_config import SupervisedConfig
    from training.supervised_trainer import SupervisedTrainer

    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    data = spec["data"]
    a, b = spec["train"]
    train = load_split(data, "fit")[a:b]
    if spec["ocr_mix"] > 0:
        train = with_image_variants(train, data, "fit", ocr="tesseract")
    calib = load_split(data, "calibration", max_docs=spec["max_calib_docs"])
    profile = (load_split(data, "calibration", "tesseract", spec["max_calib_docs"])
               if spec["tesseract_profile"] else [])
    cfg = SupervisedConfig(data=data, out=spec["out"], arch=spec["arch"], init=spec["init"],
                           epochs=spec["epochs"], seed=spec["seed"], ocr_mix=spec["ocr_mix"],
                           tesseract_profile=spec["tesseract_profile"],
                           patience=spec["patience"] or spec["epochs"])  # None: no early stop
    # Epochs are chosen on calibration, never on dev: dev is where the rows are compared.
    result = SupervisedTrainer(cfg, train_docs=train, dev_docs=calib, calib_docs=calib,
                               profile_docs=profile).train()
    shutil.rmtree(Path(spec["out"]) / "checkpoint-last", ignore_errors=True)
    print(f"saved {result.out} (best epoch {result.best_epoch}, calibration lenient F1 "
          f"{result.best_score:.4f})")
    return 0


def base_spec(args: argparse.Namespace, out: Path, init: str | None, train: tuple[int, int],
              epochs: int, patience: int | None = None) -> dict[str, Any]:
    return {"data": args.data, "out": str(out), "arch": args.arch, "init": init,
            "train": list(train), "epochs": epochs, "patience": patience, "seed": args.seed,
            "ocr_mix": args.ocr_mix, "tesseract_profile": args.tesseract_profile,
            "max_dev_docs": args.max_dev_docs, "max_calib_docs": args.max_calib_docs}


def run_base(out: Path, name: str, final: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """A base-training child writing ``final`` atomically (a temporary folder renamed)."""
    tmp = final.parent / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(final, ignore_errors=True)  # an unfinished step's leftovers
    spec_path = out / "logs" / f"{name}.spec.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps({**spec, "out": str(tmp)}, indent=1), encoding="utf-8")
    got = run_child("bench_trainers:base_child", [str(spec_path)], out / "logs" / f"{name}.log")
    if got["rc"] != 0:
        raise RuntimeError(f"{name} failed (exit {got['rc']}):\n{tail(Path(got['log']))}")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(final)
    return got


# -- step 1: the start model -------------------------------------------------------------------

def start_step(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from extractor.model.card import model_version

    if args.start_model:
        return reused_start(args, out)
    spec = base_spec(args, out / "start", None, (0, args.start_docs), args.start_epochs,
                     args.start_patience)
    settings = {k: v for k, v in spec.items() if k != "out"}
    got = cached(out, "start", settings)
    if got is None:
        got = run_base(out, "start", out / "start", spec)
        got.update(history_of(out / "start"))
        got["version"] = model_version(out / "start")
        finish(out, "start", settings, got)
    return got


def reused_start(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """``--start-model``: copy a saved extractor to ``OUT/start`` (every later step reads it
    there); no training is timed, so the start row has no wall time of its own."""
    from extractor.model.card import model_version

    source = Path(args.start_model).resolve()
    settings = {"start_model": model_version(source), "start_docs": args.start_docs}
    got = cached(out, "start", settings)
    if got is None:
        tmp = out / ".start.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("checkpoint-last"))
        shutil.rmtree(out / "start", ignore_errors=True)
        tmp.rename(out / "start")
        got = {"reused": str(source), "wall_s": None, "peak_rss_gb": None,
               **history_of(out / "start"), "version": model_version(out / "start")}
        finish(out, "start", settings, got)
    return got


# -- step 2: the pool and the simulated operator -----------------------------------------------

def pool_step(args: argparse.Namespace, out: Path, start: dict[str, Any],
              pool: Sequence[Document]) -> dict[str, Any]:
    settings = {"start": start["version"], "docs": [d.id for d in pool],
                "regime": args.regime, "k": args.k}
    got = cached(out, "pool", settings)
    if got is not None:
        return got
    from extractor.model.predictor import load_predictor
    from feedback_ui.service import ReviewService
    from feedback_ui.store import FeedbackStore
    from kvloop.compare.operator import OperatorConfig, SimulatedOperator

    folder = out / "pool"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    predictor = load_predictor(out / "start")
    results = predictor.predict(list(pool), k=args.k)
    t_extract = time.perf_counter() - t0
    store = FeedbackStore(store_url(out))
    try:
        service = ReviewService(store, predictor.schema, dataset=DATASET, k=args.k)
        service.add([dataclasses.replace(d, gold=None) for d in pool], results)  # no gold
        t1 = time.perf_counter()
        log = SimulatedOperator(OperatorConfig(args.regime, seed=args.seed)).review(
            service, pool, OPERATOR)
        got = {k: v for k, v in log.summary().items() if k != "seconds"}
        got.update(operator_seconds=round(log.seconds, 1), docs=len(pool), regime=args.regime,
                   operator=OPERATOR,
                   extract_s=round(t_extract, 2), review_s=round(time.perf_counter() - t1, 2),
                   saves=len(store.saves()))
    finally:
        store.close()
    finish(out, "pool", settings, got)
    return got


def store_url(out: Path) -> str:
    return f"sqlite:///{(out / 'pool' / 'feedback.db').resolve()}"


# -- step 3: the trainers ----------------------------------------------------------------------

def trainer_config(trainer: str) -> type | None:
    """The config dataclass of ``kvloop train TRAINER``; ``None`` when this checkout lacks it
    (its config does not import, or its trainer module is missing)."""
    from training.registry import TRAINERS

    if trainer not in TRAINERS:
        return None
    spec = TRAINERS[trainer]
    try:
        if importlib.util.find_spec(spec.trainer.split(":")[0]) is None:
            return None
        return spec.config_class()
    except Exception:  # noqa: BLE001  a missing or half-written module: the row is skipped
        return None


def config_flags(cls: type, values: dict[Any, Any]) -> tuple[list[str], list[str]]:
    """Flags of ``cls``'s fields for ``values`` (a key is a field name, or a tuple of
    alternative names: the first one ``cls`` has); also the keys ``cls`` has no field for.
    ``None`` values are left at the config's default."""
    names = {f.name for f in dataclasses.fields(cls)}
    flags: list[str] = []
    missing: list[str] = []
    for key, value in values.items():
        options = key if isinstance(key, tuple) else (key,)
        name = next((n for n in options if n in names), None)
        if name is None:
            missing.append("/".join(options))
            continue
        if value is None:
            continue
        flag = name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(f"--{flag}" if value else f"--no-{flag}")
        elif isinstance(value, (list, tuple)):
            flags += [f"--{flag}", *(str(v) for v in value)]
        else:
            flags += [f"--{flag}", str(value)]
    return flags, missing


def calib_spec(args: argparse.Namespace, out: Path,
               calib: Sequence[Document]) -> tuple[str, str]:
    """(``--calib-data``, ``--calib-split``): SROIE's calibration split, or with
    ``--max-calib-docs`` a JSONL of those receipts under ``OUT`` (split ``all``)."""
    if args.max_calib_docs is None:
        return args.data, "calibration"
    from extractor.document import write_jsonl

    path = out / "calib.jsonl"
    if not path.is_file():
        tmp = path.with_suffix(".tmp")
        write_jsonl(str(tmp), calib)
        tmp.rename(path)
    return str(path), "all"


def row_values(row: Row, args: argparse.Namespace, out: Path,
               calib: tuple[str, str]) -> dict[Any, Any]:
    """The config fields a row's trainer is run with (``config_flags`` keeps those it has)."""
    values: dict[Any, Any] = {
        "init": str(out / "start"), "store": store_url(out), "out": str(out / "models" / row.name),
        "seed": args.seed, "epochs": args.epochs,
        # each trainer picks its epoch on calibration (also where decisions are refitted):
        # dev stays the test set every row is compared on
        "dev_data": calib[0], "dev_split": calib[1],
    }
    if row.trainer != "reward":  # a reward model has no decisions to refit
        values.update(calib_data=calib[0], calib_split=calib[1],
                      tesseract_profile=args.tesseract_profile)
    fmt = {"models": str(out / "models"), "unlikelihood_weight": args.unlikelihood_weight,
           "epochs": args.epochs}
    for k, v in row.options.items():
        values[k] = v.format(**fmt) if isinstance(v, str) else v
    return values


def trainer_step(row: Row, args: argparse.Namespace, out: Path, pool_docs: int,
                 calib: tuple[str, str]) -> dict[str, Any]:
    """Run (or read from the cache) one row; its result, or ``{"skipped": reason}``."""
    final = out / "models" / row.name
    final.parent.mkdir(parents=True, exist_ok=True)  # feedback trainers write beside ``out``
    spec: dict[str, Any] = {}
    flags: list[str] = []
    missing: list[str] = []
    if row.trainer == "":
        spec = base_spec(args, final, str(out / "start"),
                         (args.start_docs, args.start_docs + pool_docs), 1)
        settings = {k: v for k, v in spec.items() if k != "out"}
        command = ["bench_trainers.base_child", str(out / "logs" / f"{row.name}.spec.json")]
    else:
        cls = trainer_config(row.trainer)
        if cls is None:
            return {"skipped": f"kvloop train {row.trainer} is not in this checkout"}
        flags, missing = config_flags(cls, row_values(row, args, out, calib))
        settings = {"argv": flags}
        command = ["python", "-m", "kvloop.cli", "train", row.trainer, *flags]
    got = cached(out, f"trainer-{row.name}", settings)
    if got is not None:
        return got
    if row.trainer == "":
        try:
            got = run_base(out, row.name, final, spec)
        except RuntimeError as e:
            print(f"  {e}")
            return {"failed": str(e).splitlines()[0]}
    else:
        shutil.rmtree(final, ignore_errors=True)  # an unfinished step's leftovers
        got = run_child("kvloop.cli:main", ["train", row.trainer, *flags],
                        out / "logs" / f"{row.name}.log")
        if got["rc"] != 0 or not final.is_dir():
            print(f"  {row.name} failed (exit {got['rc']}); last lines of {got['log']}:\n"
                  f"{tail(Path(got['log']))}")
            return {"failed": f"exit {got['rc']}", **got}
        got["ignored_options"] = missing
    got.update(history_of(final), command=" ".join(shlex.quote(c) for c in command))
    finish(out, f"trainer-{row.name}", settings, got)
    return got


def history_of(model_dir: Path) -> dict[str, Any]:
    """The training record of a saved extractor or reward model: epochs, loop seconds."""
    from kvloop.compare.units import history

    hist, best = history(model_dir)
    return {"epochs_run": len(hist), "best_epoch": best,
            "train_s": round(sum(float(h.get("train_seconds", 0.0)) for h in hist), 2),
            "history": hist}


# -- step 4: the reward model ------------------------------------------------------------------

def heldout_figures(reward_dir: Path) -> dict[str, Any]:
    """Pairwise accuracy on the trainer's held-out pairs (and train pairs, dev rerank F1) at
    the kept epoch (``RewardTrainer.evaluate``'s keys)."""
    h = history_of(reward_dir)
    rows = {r["epoch"]: r for r in h["history"]}
    row = rows.get(h["best_epoch"]) or (h["history"][-1] if h["history"] else {})
    keys = ("heldout_pair_acc", "heldout_pairs", "train_pair_acc", "train_pairs",
            "dev_f1_rerank", "dev_f1_parent")
    return {"epoch": row.get("epoch"), **{k: row.get(k) for k in keys}}


def fresh_pair_accuracy(reward: Any, policy: Any, docs: Sequence[Document], samples: int,
                        seed: int, chunk: int = 8) -> dict[str, Any]:
    """Reward-model pairwise accuracy on fresh samples of ``policy`` (a ``BatchedPolicy``):
    ``samples`` outcomes per (document, field), distinct ones labelled right or wrong against
    gold; every (right, wrong) pair of one field counts once (ties half)."""
    import torch

    from extractor.model.policy import FieldOutcomes
    from training.reward_trainer import pair_accuracy
    from training.rewards import outcome_value, same_value

    schema = policy.model.schema
    gen = torch.Generator().manual_seed(seed)
    chosen, rejected = [], []
    n_fields = n_mixed = 0
    for a in range(0, len(docs), chunk):
        part = list(docs[a:a + chunk])
        keys = [(i, f) for i in range(len(part)) for f in schema.field_names]
        queries, labels = [], []
        for s in policy.sample(part, keys, samples, gen):
            doc = part[s.doc]
            outs = list(dict.fromkeys(tuple(o) for o in s.outcomes))  # distinct, drawn order
            right = [same_value(outcome_value(doc, schema[s.field], o),
                                (doc.gold or {}).get(s.field)) for o in outs]
            n_fields += 1
            if any(right) and not all(right):
                n_mixed += 1
                queries.append(FieldOutcomes(s.doc, s.field, outs))
                labels.append(right)
        if not queries:
            continue
        with torch.inference_mode():
            scores = reward.score(part, queries)
        for r, lab in zip(scores, labels):
            good = [j for j, ok in enumerate(lab) if ok]
            bad = [j for j, ok in enumerate(lab) if not ok]
            chosen += [r[g] for g in good for _ in bad]
            rejected += [r[b] for _ in good for b in bad]
    acc = (pair_accuracy(torch.stack(chosen).float(), torch.stack(rejected).float())
           if chosen else math.nan)
    return {"pair_acc": acc, "pairs": len(chosen), "fields": n_fields,
            "fields_with_right_and_wrong": n_mixed, "samples_per_field": samples,
            "docs": len(docs)}


def scoring_time(reward: Any, docs: Sequence[Document], results: Sequence[Any],
                 k: int) -> dict[str, Any]:
    """Seconds ``RewardModel.score`` takes for every placed k-best candidate of ``docs``
    (one call, after a one-document warm-up), and that scaled to 100 documents."""
    import torch

    from extractor.model.policy import FieldOutcomes
    from extractor.model.reward import is_span

    queries = []
    for i, (doc, res) in enumerate(zip(docs, results)):
        for name, fr in res.fields.items():
            outs = [c.word_indices for c in fr.candidates[:k]
                    if is_span(c.word_indices, len(doc.words))]
            if outs:
                queries.append(FieldOutcomes(i, name, outs))
    with torch.inference_mode():
        warm = [q for q in queries if q.doc == 0]
        if warm:
            reward.score(docs[:1], warm)
        t0 = time.perf_counter()
        reward.score(list(docs), queries)
        dt = time.perf_counter() - t0
    per_100 = dt * 100 / max(len(docs), 1)
    return {"seconds": round(dt, 3), "docs": len(docs), "queries": len(queries),
            "candidates": sum(len(q.outcomes) for q in queries),
            "per_100_docs_s": round(per_100, 3), "target_s": SCORE_TARGET_S,
            "target_met": per_100 < SCORE_TARGET_S}


def best_of_k(reward: Any, predictor: Any, docs: Sequence[Document], k: int) -> dict[str, Any]:
    """Dev lenient F1 of the start model's k-best reranked by the reward model, and its own."""
    from eval.field_scores import score_results
    from extractor.model.predictor import extractor_confidence

    results = predictor.predict(list(docs), k=k)
    reranked = reward.rerank(results, list(docs), k, extractor_confidence(predictor))
    golds = [d.gold or {} for d in docs]

    def f1(res: Sequence[Any]) -> float:
        return score_results(golds, res, k_max=k).summary()["lenient"]["f1"]

    return {"k": k, "docs": len(docs), "start_f1": f1(results), "reranked_f1": f1(reranked)}


def reward_step(args: argparse.Namespace, out: Path, reward_row: dict[str, Any],
                pool: Sequence[Document], dev: Sequence[Document]) -> dict[str, Any] | None:
    reward_dir = out / "models" / "reward"
    if not (reward_dir.is_dir() and "wall_s" in reward_row and "failed" not in reward_row):
        return None
    import torch

    from extractor.model.ensemble import KVEnsemble
    from extractor.model.policy import BatchedPolicy
    from extractor.model.predictor import load_predictor
    from extractor.model.reward import load_reward_model, reward_version
    from feedback_ui.store import FeedbackStore

    settings = {"reward": reward_version(reward_dir), "dev": [d.id for d in dev],
                "samples": args.samples, "k": args.k, "seed": args.seed}
    got = cached(out, "reward-figures", settings)
    if got is not None:
        return got
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)  # as the trainers (``--threads`` default)
    reward = load_reward_model(reward_dir, "cpu")
    store = FeedbackStore(store_url(out))
    try:
        results = [store.latest_result(d.id)[1] for d in pool]  # type: ignore[index]
    finally:
        store.close()
    policy = BatchedPolicy(KVEnsemble.from_pretrained(out / "start")[0])
    got = {"version": settings["reward"], "heldout": heldout_figures(reward_dir),
           "fresh": fresh_pair_accuracy(reward, policy, dev, args.samples, args.seed),
           "scoring": scoring_time(reward, pool, results, args.k),
           "best_of_k": best_of_k(reward, load_predictor(out / "start", "cpu"), dev, args.k)}
    finish(out, "reward-figures", settings, got)
    return got


# -- step 5: evaluation ------------------------------------------------------------------------

def eval_step(args: argparse.Namespace, out: Path, models: dict[str, Path]) -> dict[str, Any]:
    """``kvloop eval`` with every model (the start first); per row: dev lenient F1 and the
    paired bootstrap CI of its lenient F1 minus the start's. Re-run when the models changed."""
    from extractor.model.card import model_version

    names = list(models)
    settings = {"models": {n: model_version(models[n]) for n in names},
                "limit": args.max_dev_docs, "seed": args.seed, "k": args.k}
    try:
        got = cached(out, "eval", settings)
    except SettingsMismatch:
        got = None  # another set of rows: evaluate them
    if got is not None:
        return got
    argv = ["eval", *[a for n in names for a in ("--model", str(models[n]))],
            "--data", args.data, "--split", "dev", "--out", str(out / "eval"),
            "--seed", str(args.seed), "--k", str(args.k)]
    if args.max_dev_docs:
        argv += ["--limit", str(args.max_dev_docs)]
    ran = run_child("kvloop.cli:main", argv, out / "logs" / "eval.log")
    if ran["rc"] != 0:
        raise RuntimeError(f"kvloop eval failed (exit {ran['rc']}):\n{tail(Path(ran['log']))}")
    got = read_eval(out / "eval" / "report.json", names)
    got["command"] = " ".join(shlex.quote(a) for a in ["python", "-m", "kvloop.cli", *argv])
    steps(out).drop("eval")
    finish(out, "eval", settings, got)
    return got


def read_eval(report: Path, names: Sequence[str]) -> dict[str, Any]:
    """Per row name (the order models were given): dev F1 and the CI against the first."""
    rep = json.loads(report.read_text(encoding="utf-8"))
    runs = rep["runs"]  # one OCR pass: runs[i] is models[i]
    start = runs[0]["model"]
    rows: dict[str, Any] = {}
    for name, run in zip(names, runs):
        ci = next((c["metrics"]["lenient_f1"] for c in rep["comparisons"]
                   if c["a"] == start and c["b"] == run["model"]), None)
        rows[name] = {"version": run["model"], "dev_lenient_f1": run["headline"]["lenient F1"],
                      "dev_strict_f1": run["headline"]["strict F1"],
                      "n_docs": run["metrics"]["n_docs"], "vs_start": ci}
    return {"report": str(report), "rows": rows}


# -- step 6: the report ------------------------------------------------------------------------

def judge(row: Row, got: dict[str, Any], reviewed: int, pool_docs: int,
          base_wall: float | None) -> dict[str, Any]:
    """Normalised times and whether the row meets its targets."""
    n = pool_docs if row.trainer == "" else reviewed
    out: dict[str, Any] = {"docs": n, "per_100_docs_s": round(got["wall_s"] * 100 / max(n, 1), 2)}
    epochs = max(got.get("epochs_run", 0), 1)
    out["train_per_epoch_per_100_docs_s"] = round(got.get("train_s", 0.0) / epochs * 100
                                                  / max(n, 1), 2)
    out["other_s"] = round(got["wall_s"] - got.get("train_s", 0.0), 2)  # load, dev, decisions
    out["vs_base_epoch"] = round(got["wall_s"] / base_wall, 2) if base_wall else None
    rss_ok = got["peak_rss_gb"] < RSS_TARGET_GB
    if row.target == "per_100":
        out["target"] = f"<= {PER_100_TARGET_S:.0f} s/100 docs, < {RSS_TARGET_GB:.0f} GB"
        out["target_met"] = out["per_100_docs_s"] <= PER_100_TARGET_S and rss_ok
    elif row.target == "rl_pass":
        per_pass = got.get("train_s", 0.0) / epochs * RL_PASS_DOCS / max(n, 1)
        out["per_pass_300_docs_s"] = round(per_pass, 2)
        out["target"] = (f"<= {RL_PASS_TARGET_S:.0f} s/pass over {RL_PASS_DOCS} docs, "
                         f"< {RSS_TARGET_GB:.0f} GB")
        out["target_met"] = per_pass <= RL_PASS_TARGET_S and rss_ok
    elif row.target == "chain":
        out["target"], out["target_met"] = "none of its own (its stages: sft, rl)", None
    else:
        out["target"], out["target_met"] = "reference", None
    return out


def fmt_ci(ci: dict[str, Any] | None) -> str:
    if not ci:
        return "—"
    return f"{ci['diff']:+.3f} [{ci['low']:+.3f}, {ci['high']:+.3f}]"


def markdown(report: dict[str, Any]) -> str:
    lines = [("| trainer | wall s | per 100 reviewed docs (s) | peak RSS GB | target | "
              "dev lenient F1 | Δ vs start [95% CI] | × base epoch |"),
             "|---|---:|---:|---:|---|---:|---|---:|"]
    for r in report["rows"]:
        f1 = r.get("dev_lenient_f1")
        met = {True: "met", False: "MISSED", None: ""}[r.get("target_met")]
        per = "—" if r["per_100_docs_s"] is None else f"{r['per_100_docs_s']:.1f}"
        if "per_pass_300_docs_s" in r:
            per += f" ({r['per_pass_300_docs_s']:.1f} s/pass over {RL_PASS_DOCS})"
        wall = "—" if r["wall_s"] is None else f"{r['wall_s']:.1f}"
        peak = "—" if r["peak_rss_gb"] is None else f"{r['peak_rss_gb']:.2f}"
        lines.append(f"| {r['trainer']} | {wall} | {per} | {peak} | "
                     f"{r['target']} {met} | {'—' if f1 is None else f'{f1:.3f}'} | "
                     f"{fmt_ci(r.get('vs_start'))} | {r.get('vs_base_epoch') or '—'} |")
    lines += [f"\nskipped {s['trainer']}: {s['reason']}" for s in report["skipped"]]
    rm = report.get("reward_model")
    if rm:
        lines += ["", "Reward model:", *reward_lines(rm)]
    return "\n".join(lines)


def reward_lines(rm: dict[str, Any]) -> list[str]:
    h, fr, sc, bk = rm["heldout"], rm["fresh"], rm["scoring"], rm["best_of_k"]
    met = "met" if sc["target_met"] else "MISSED"
    return [
        (f"- held-out pairwise accuracy {_num(h['heldout_pair_acc'])} on {h['heldout_pairs']} "
         f"pairs (train {_num(h['train_pair_acc'])}, epoch {h['epoch']})"),
        (f"- fresh samples of the start policy on dev: pairwise accuracy "
         f"{_num(fr['pair_acc'])} on {fr['pairs']} pairs ({fr['fields_with_right_and_wrong']} "
         f"of {fr['fields']} fields have right and wrong samples, "
         f"{fr['samples_per_field']} samples each)"),
        (f"- scoring every k-best candidate of {sc['docs']} documents ({sc['candidates']} "
         f"candidates): {sc['seconds']:.2f} s = {sc['per_100_docs_s']:.2f} s per 100 docs "
         f"(target < {SCORE_TARGET_S:.0f} s: {met})"),
        (f"- best-of-{bk['k']} dev lenient F1 {bk['reranked_f1']:.3f} vs the start model's "
         f"own {bk['start_f1']:.3f} ({bk['docs']} docs)"),
    ]


def _num(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def machine() -> dict[str, Any]:
    import torch

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
    return {"platform": platform.platform(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "memory_gb": round(mem, 1),
            "python": platform.python_version(), "torch": torch.__version__}


# -- main --------------------------------------------------------------------------------------

def selected(spec: str) -> list[Row]:
    """The rows asked for, in run order, with the rows they need."""
    names = {s.strip() for s in spec.split(",") if s.strip()}
    unknown = names - set(ROW_NAMES)
    if unknown:
        raise SystemExit(f"--trainers: unknown {sorted(unknown)}; choose from {ROW_NAMES}")
    for r in ROWS:
        if r.name in names:
            names |= set(r.needs)
    return [r for r in ROWS if r.name in names]


def load_docs(args: argparse.Namespace) -> tuple[list[Document], list[Document],
                                                 list[Document], list[Document]]:
    """(start docs, pool docs, dev docs, calibration docs) from the SROIE splits."""
    from training.data import load_split

    fit = load_split(args.data, "fit")
    if args.start_docs + args.pool_docs > len(fit):
        raise SystemExit(f"--start-docs + --pool-docs = {args.start_docs + args.pool_docs} "
                         f"but the fit split has {len(fit)} receipts")
    dev = load_split(args.data, "dev", max_docs=args.max_dev_docs)
    calib = load_split(args.data, "calibration", max_docs=args.max_calib_docs)
    a, b = args.start_docs, args.start_docs + args.pool_docs
    return fit[:a], fit[a:b], dev, calib


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.start_docs < 1 or args.pool_docs < 1 or args.epochs < 1:
        raise SystemExit("--start-docs, --pool-docs and --epochs must be >= 1")
    args.data = str(Path(args.data).resolve())
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows = selected(args.trainers)
    t0 = time.perf_counter()
    _, pool, dev, calib = load_docs(args)

    print(f"[1/6] start model: base training on {args.start_docs} fit receipts ({args.arch})")
    start = start_step(args, out)
    took = (f"reused from {start['reused']}" if start.get("reused")
            else f"{start['wall_s']:.1f} s")
    print(f"      {start['version']} ({took}, {start['epochs_run']} epochs)")
    print(f"[2/6] pool: {len(pool)} receipts extracted, reviewed by the '{args.regime}' operator")
    pooled = pool_step(args, out, start, pool)
    print(f"      {pooled['reviewed']} reviewed, {pooled['skipped_unexpressible']} skipped "
          f"(unexpressible), actions {pooled['actions']}")
    if pooled["reviewed"] == 0:
        raise SystemExit("the operator reviewed no document: nothing to train on")

    print("[3/6] trainers")
    calib_args = calib_spec(args, out, calib)
    results: dict[str, dict[str, Any]] = {}
    for row in rows:
        missing = [n for n in row.needs if "wall_s" not in results.get(n, {})
                   or "failed" in results[n]]
        if missing:
            results[row.name] = {"skipped": f"needs {missing}, which did not run"}
        else:
            results[row.name] = trainer_step(row, args, out, len(pool), calib_args)
        r = results[row.name]
        print(f"      {row.name}: " + (r.get("skipped") or r.get("failed")
                                       or f"{r['wall_s']:.1f} s, {r['peak_rss_gb']:.2f} GB"))

    print("[4/6] reward model figures")
    rm = reward_step(args, out, results.get("reward", {}), pool, dev)
    print(f"[5/6] kvloop eval on {len(dev)} dev receipts")
    models = {"start": out / "start"}
    models.update({r.name: out / "models" / r.name for r in rows
                   if r.trainer != "reward" and "wall_s" in results[r.name]
                   and "failed" not in results[r.name]})
    ev = eval_step(args, out, models)

    base = results.get("base-epoch", {})
    base_wall = base.get("wall_s") if "failed" not in base else None
    start_row = {"trainer": f"start (base, {args.start_docs} docs)", "wall_s": start["wall_s"],
                 "peak_rss_gb": start["peak_rss_gb"], "per_100_docs_s": None, "target": "",
                 "target_met": None, **ev["rows"]["start"]}
    start_row["vs_start"] = None
    table, skipped = [start_row], []
    for row in rows:
        r = results[row.name]
        if "skipped" in r or "failed" in r:
            skipped.append({"trainer": row.name, "reason": r.get("skipped") or r["failed"]})
            continue
        table.append({"trainer": row.name, **{k: v for k, v in r.items() if k != "history"},
                      **judge(row, r, pooled["reviewed"], len(pool), base_wall),
                      **ev["rows"].get(row.name, {})})
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(),
              "command": " ".join(shlex.quote(a) for a in
                                  [Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None
                                                             else argv)]),
              "settings": {k: v for k, v in vars(args).items()},
              "start": {k: v for k, v in start.items() if k != "history"},
              "targets": TARGETS, "pool": pooled, "rows": table, "skipped": skipped, "reward_model": rm,
              "eval": {"report": ev["report"], "command": ev.get("command")},
              "seconds": round(time.perf_counter() - t0, 1)}
    path = out / "bench-trainers.json"
    path.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    print("[6/6] figures\n")
    print(markdown(report))
    print(f"\nwrote {path} ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
