"""``kvloop compare``: the SFT-vs-RL experiment, end to end, resumable.

1. **Data** (``kvloop.compare.data``): start documents, the pool (gold hidden from learners),
   selection pages, evaluation sets (dev and its unseen-vendor slice).
2. **Start model**: base training from gold on the start documents (one shared by every
   seed, or one per seed with ``start_per_seed``); its k best on the pool are extracted once.
3. **Rounds**, per seed: the strategy picks the next ``docs_per_round`` pool documents from
   the start model's results (the documents a deployed model would send to review); the
   simulated operator reviews them through ``feedback_ui.service.ReviewService`` under the
   feedback regime, every second of effort counted. Each round's store is its own SQLite
   file (the previous round's copied, then this round's reviews added, renamed into place
   when complete), so an arm at round r reads exactly the reviews of rounds 1..r and an
   interrupted review is redone from a clean copy.
4. **Arms**: every arm learns from the same store of the same round, starting from the same
   start model; the round's reward model is trained once and shared by the arms that use it.
   Every arm is scored on every evaluation set; round 0 (no feedback) is the start model.
5. **Report** (``kvloop.compare.analysis``, ``kvloop.compare.report``): bootstrap CIs over
   documents, paired comparisons, McNemar, the answer in words, HTML with plots, JSON.

Why every arm learns from the start model's review stream (not each from its own model's):
the question is which learner gets more out of the *same* operator work; letting each arm
choose what the operator sees would confound the learner with the feedback it was given.

Feedback regimes share one folder: the data, the start model and its pool extractions do not
depend on the regime, so ``--regime choice-only`` into a finished ``full`` run's folder reuses
them and adds its own stores, arms and rows under ``OUT/<regime>/``; the report reads the rows
of every regime.

Every step is recorded when finished (``kvloop.compare.steps``); running the same command
again continues from the last finished step. Results go to ``OUT/results.jsonl`` as each
unit finishes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from kvloop.compare import units
from kvloop.compare.arms import ARMS, Arm, base_name, ceiling_arm, floor_arm, references
from kvloop.compare.config import CompareConfig
from kvloop.compare.data import CompareData, prepare, read_docs
from kvloop.compare.executors import LocalExecutor, RayExecutor
from kvloop.compare.operator import regime_label
from kvloop.compare.records import ArmResult, append_result, read_results
from kvloop.compare.specs import PoolUnit, RewardUnit, StartUnit, UnitContext
from kvloop.compare.steps import StepCache
from kvloop.compare.tuning import TuningConfig, gain_from_steps, tuned_arms, tuning_table
from kvloop.compare.units import ArmUnit

log = logging.getLogger(__name__)

OPERATOR = "simulated-operator"


def _sqlite_copy(src: Path, dst: Path) -> None:
    """A consistent copy of an SQLite database (the backup API, not a file copy)."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()


class Comparison:
    """One comparison run (see the module docstring)."""

    def __init__(self, cfg: CompareConfig, command: str = "kvloop compare") -> None:
        cfg.check_options()
        self.cfg, self.command = cfg, command
        self.arms = self.base_arms = cfg.arms_to_run
        # with X+tuned arms only they are tuned (``tuning:`` sets their trials and seed);
        # without, ``tuning:`` tunes every arm (kvloop.compare.tuning)
        tuned_only = any(a.tuned for a in self.base_arms)
        self.tuning = (TuningConfig.from_dict(cfg.tuning or {}) if cfg.tuning or tuned_only
                       else None)
        self.tune_every_arm = bool(cfg.tuning) and not tuned_only
        self.tuning_extras: dict[str, dict[str, Any]] = {}  # the round's tuned arms' rows
        self.out = Path(cfg.out).resolve()
        self.steps = StepCache(self.out / "steps")
        self.results_file = self.out / "results.jsonl"
        self.executor: LocalExecutor | RayExecutor = LocalExecutor()  # Ray starts in run()
        self.threads = cfg.cpus_per_task if cfg.ray else cfg.threads
        if not cfg.ray and (warning := thread_limit_warning(self.threads, os.environ)):
            log.warning(warning)
        self.use_operator(cfg.operators[0])

    def use_operator(self, operator: dict[str, Any]) -> None:
        """Run the next rounds under this simulated operator (its regime's stores and rows)."""
        self.operator, self.regime = operator, regime_label(operator)

    # -- paths --------------------------------------------------------------------------------
    def start_key(self, seed: int) -> str:
        return f"seed-{seed}" if self.cfg.start_per_seed else "shared"

    def start_dir(self, seed: int) -> Path:
        if self.cfg.start_model:
            return Path(self.cfg.start_model).resolve()
        return self.out / "start" / self.start_key(seed)

    def store_file(self, seed: int, rnd: int) -> Path:
        return self.out / self.regime / f"seed-{seed}" / f"feedback-round-{rnd}.db"

    def unit_dir(self, seed: int, rnd: int, name: str) -> Path:
        return self.out / self.regime / f"seed-{seed}" / f"round-{rnd}" / name

    def context(self, seed: int) -> UnitContext:
        """What every unit of ``seed`` shares (no store: before any review)."""
        d, cfg = self.data, self.cfg
        return UnitContext(
            seed=seed, threads=self.threads, device=cfg.device, k=cfg.k, epochs=cfg.epochs,
            refit_decisions=cfg.refit_decisions, keep_models=cfg.keep_models,
            start=str(self.start_dir(seed)), start_file=str(d.path("start")),
            pool_file=str(d.path("pool")), pool_nogold_file=str(d.path("pool-nogold")),
            select_file=str(d.path("select")),
            eval_files={n: str(d.path(f"eval-{n}")) for n in d.eval_sets},
            trainer_options=dict(cfg.trainer_options))

    # -- steps --------------------------------------------------------------------------------
    def prepare_data(self) -> CompareData:
        cfg = self.cfg
        settings = {k: getattr(cfg, k) for k in (
            "data", "demo_docs", "start_docs", "pool_docs", "select_split", "max_select_docs",
            "dev_split", "max_eval_docs", "unseen_vendor", "extra_eval", "start_model",
            "vendor_split", "vendor_seed")}
        got = self.steps.get("data", settings)
        if got is None:
            got = prepare(cfg, self.out).export()
            self.steps.put("data", settings, got)
        return CompareData.from_dict(got)

    def start_models(self) -> dict[str, dict[str, Any]]:
        cfg = self.cfg
        if cfg.start_model:
            from extractor.model.card import model_version

            version = model_version(self.start_dir(cfg.seeds[0]))
            print(f"  start model given: {cfg.start_model} ({version})", flush=True)
            return {"shared": {"version": version, "seconds": 0.0, "given": cfg.start_model}}
        keys = {self.start_key(s): s for s in cfg.seeds}  # "shared": the last seed
        if not cfg.start_per_seed and cfg.start_seed is not None:
            keys = {"shared": cfg.start_seed}
        settings = {"arch": cfg.arch, "epochs": cfg.start_epochs, "docs": self.data.start,
                    "select": self.data.select, "options": cfg.start_options}
        done: dict[str, dict[str, Any]] = {}
        todo = []
        for key, seed in keys.items():
            got = self.steps.get(f"start/{key}", {**settings, "seed": seed})
            if got is None:
                todo.append((key, seed))
            else:
                done[key] = got
        payloads = [StartUnit(self.context(seed), str(self.out / "start" / key), cfg.arch,
                              cfg.start_epochs, dict(cfg.start_options))
                    for key, seed in todo]
        for i, got in self.executor.run(units.train_start, payloads):
            key, seed = todo[i]
            self.steps.put(f"start/{key}", {**settings, "seed": seed}, got)
            done[key] = got
            print(f"  start model {key}: {got['version']} ({got['seconds']:.0f} s, select F1 "
                  f"{got['select_f1']:.3f})", flush=True)
        return done

    def pool_results(self, seed: int) -> Path:
        """The start model's k best on the pool (extracted once per start model)."""
        key = self.start_key(seed)
        out = self.out / "start" / f"{key}-pool.jsonl"
        settings = {"start": self.starts[key]["version"], "pool": self.data.pool,
                    "k": self.cfg.k}
        if self.steps.get(f"pool/{key}", settings) is None:
            unit = PoolUnit(self.context(seed), str(out))
            got = next(self.executor.run(units.extract_pool, [unit]))[1]
            self.steps.put(f"pool/{key}", settings, got)
        return out

    def round_zero_store(self, seed: int) -> None:
        """The seed's store before any review: the pool (no gold) and the start's results."""
        from extractor.document import ExtractionResult, read_jsonl
        from feedback_ui.service import ReviewService
        from feedback_ui.store import FeedbackStore

        settings = {"start": self.starts[self.start_key(seed)]["version"],
                    "pool": self.data.pool}
        if self.steps.get(f"{self.regime}/seed-{seed}/store-0", settings) is not None:
            return
        final = self.store_file(seed, 0)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        store = FeedbackStore(f"sqlite:///{tmp}")
        try:
            service = ReviewService(store, units.schema_of(self.start_dir(seed)),
                                    dataset=self.cfg.name, k=self.cfg.k)
            results = [ExtractionResult.from_dict(d)
                       for d in read_jsonl(str(self.pool_results(seed)))]
            service.add(read_docs(self.data.path("pool-nogold")), results)
        finally:
            store.close()
        tmp.rename(final)
        self.steps.put(f"{self.regime}/seed-{seed}/store-0", settings, {"store": str(final)})

    def review_round(self, seed: int, rnd: int) -> dict[str, Any]:
        """Round ``rnd``'s reviews of seed ``seed``, into its own store file."""
        from extractor.document import ExtractionResult, read_jsonl
        from feedback_ui.service import ReviewService
        from feedback_ui.store import FeedbackStore
        from kvloop.compare.operator import EffortModel, OperatorConfig, SimulatedOperator
        from kvloop.compare.selection import pick_next

        cfg = self.cfg
        settings = {"strategy": cfg.strategy, "operator": self.operator, "effort": cfg.effort,
                    "n": cfg.docs_per_round, "start": self.starts[self.start_key(seed)]["version"]}
        name = f"{self.regime}/seed-{seed}/round-{rnd}/review"
        got = self.steps.get(name, settings)
        if got is not None:
            return got
        prev: dict[str, Any] = (self.review_round(seed, rnd - 1) if rnd > 1
                                else {"shown": [], "seconds": 0.0, "reviewed": 0})
        results = [ExtractionResult.from_dict(d)
                   for d in read_jsonl(str(self.pool_results(seed)))]
        picked = pick_next(cfg.strategy, results, set(prev["shown"]), cfg.docs_per_round,
                           seed=seed * 1000 + rnd)
        gold = {d.id: d for d in read_docs(self.data.path("pool"))}
        final = self.store_file(seed, rnd)
        tmp = final.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        _sqlite_copy(self.store_file(seed, rnd - 1), tmp)
        store = FeedbackStore(f"sqlite:///{tmp}")
        try:
            service = ReviewService(store, units.schema_of(self.start_dir(seed)),
                                    dataset=cfg.name, k=cfg.k)
            operator = SimulatedOperator(
                OperatorConfig.from_dict({**self.operator, "seed": seed * 1000 + rnd}),
                EffortModel.from_dict(cfg.effort))
            review_log = operator.review(service, [gold[i] for i in picked], OPERATOR).export()
        finally:
            store.close()
        tmp.rename(final)
        got = {"picked": picked, "shown": prev["shown"] + picked, "log": review_log,
               "seconds": prev["seconds"] + float(review_log["seconds"]),
               "reviewed": prev["reviewed"] + len(picked),
               "saved": review_log["reviewed"], "store": str(final)}
        self.steps.put(name, settings, got)
        print(f"  seed {seed} round {rnd}: {len(picked)} documents reviewed "
              f"({review_log['reviewed']} saved, {review_log['seconds'] / 60:.1f} operator-min; "
              f"actions {review_log.get('actions')})", flush=True)
        return got

    def reward_models(self, rnd: int) -> dict[int, dict[str, Any]]:
        """The round's reward model of every seed (only when an arm needs one)."""
        cfg = self.cfg
        out: dict[int, dict[str, Any]] = {}
        if not cfg.needs_reward:
            return out
        todo, payloads = [], []
        for seed in cfg.seeds:
            settings = self.unit_settings(seed, rnd, "reward")
            name = f"{self.regime}/seed-{seed}/round-{rnd}/reward"
            got = self.steps.get(name, settings)
            # A finished round drops the reward model's weights (unless keep_models or
            # keep_reward_models); an arm added to the run later that reads them gets the model
            # trained again (same seed; the same model on the same threads) instead of a
            # missing file.
            if got is not None and (units.has_weights(Path(got["dir"]))
                                    or not any(a.needs_reward()
                                               for a in self.pending_arms(seed, rnd))):
                out[seed] = got
                continue
            todo.append(seed)
            payloads.append(RewardUnit(self.round_context(seed, rnd),
                                       str(self.unit_dir(seed, rnd, "reward")),
                                       dict(cfg.reward_options)))
        for i, got in self.executor.run(units.train_reward, payloads):
            seed = todo[i]
            got = {**got, "executor": self.executor.name, "threads": self.threads}
            self.steps.put(f"{self.regime}/seed-{seed}/round-{rnd}/reward",
                           self.unit_settings(seed, rnd, "reward"), got)
            out[seed] = got
            acc = got["extras"].get("reward_pair_acc")
            print(f"  seed {seed} round {rnd}: reward model ({got['seconds']:.0f} s, held-out "
                  f"pair accuracy {'—' if acc is None else f'{acc:.3f}'})", flush=True)
        return out

    def arm_step(self, seed: int, rnd: int, name: str) -> str:
        """The step name of arm ``name`` at (``seed``, ``rnd``) in the current regime."""
        return f"{self.regime}/seed-{seed}/round-{rnd}/arm-{name}"

    def pending_arms(self, seed: int, rnd: int) -> list[Arm]:
        """The arms that train or score at round ``rnd`` of ``seed`` (``Arm.runs_at``) and
        have not finished."""
        return [a for a in self.arms
                if a.runs_at(rnd, self.cfg.rounds)
                and self.steps.get(self.arm_step(seed, rnd, a.name),
                                   self.unit_settings(seed, rnd, a.name)) is None]

    def round_context(self, seed: int, rnd: int) -> UnitContext:
        return replace(self.context(seed), store=f"sqlite:///{self.store_file(seed, rnd)}",
                       round=rnd)

    def unit_settings(self, seed: int, rnd: int, name: str) -> dict[str, Any]:
        cfg = self.cfg
        arm = next((a for a in self.arms if a.name == name), None)
        return {"start": self.starts[self.start_key(seed)]["version"],
                "review": self.reviews[seed][rnd]["picked"],
                "epochs": cfg.epochs, "k": cfg.k, "refit": cfg.refit_decisions,
                "options": (arm.settings() if arm else dict(cfg.reward_options)),
                "trainer_options": cfg.trainer_options, "eval": self.data.eval_sets}

    def arm_rows(self, arm: Arm, seed: int, rnd: int, got: dict[str, Any],
                 review: dict[str, Any], extras: dict[str, Any]) -> list[ArmResult]:
        rows = []
        for set_name, s in got["scores"].items():
            rows.append(ArmResult(
                arm=arm.name, seed=seed, round=rnd, eval_set=set_name, fields=s["fields"],
                doc_ids=s["doc_ids"], correct=s["correct"], counts=s["counts"],
                reviewed_docs=review["reviewed"], operator_seconds=review["seconds"],
                train_seconds=got["train_seconds"], model_version=got["model_version"],
                extras={**extras, **got["extras"], "regime": self.regime,
                        "executor": self.executor.name, "threads": self.threads}))
        return rows

    def score_start(self) -> None:
        """The start model scored once per start model: round 0 of every arm, and the ``none``
        arm (the floor) at every round, since no feedback ever changes it."""
        cfg = self.cfg
        keys = sorted({self.start_key(s) for s in cfg.seeds})
        todo, payloads = [], []
        for key in keys:
            seed = next(s for s in cfg.seeds if self.start_key(s) == key)
            if self.steps.get(f"start/{key}-scores", self.start_settings(key)) is None:
                todo.append(key)
                payloads.append(ArmUnit(self.context(seed), "", ARMS[floor_arm()]))
        for i, scored in self.executor.run(units.run_arm, payloads):
            self.steps.put(f"start/{todo[i]}-scores", self.start_settings(todo[i]), scored)
        # Round 0 of each arm is written once per start model, and for an arm added to the
        # run later too (so every arm's curve starts at the start model): the results file says
        # which rows are there.
        written = {(r.key, r.model_version) for r in read_results(self.results_file)}
        for seed in cfg.seeds:
            got = self.steps.get(f"start/{self.start_key(seed)}-scores",
                                 self.start_settings(self.start_key(seed)))
            assert got is not None
            for arm in self.arms:
                for row in self.arm_rows(arm, seed, 0, got, {"reviewed": 0, "seconds": 0.0},
                                         {}):
                    if (row.key, row.model_version) not in written:
                        append_result(self.results_file, row)

    def start_settings(self, key: str) -> dict[str, Any]:
        return {"start": self.starts[key]["version"], "k": self.cfg.k,
                "eval": self.data.eval_sets}

    def floor_rows(self, rnd: int) -> None:
        """The arms whose rows are the start model's scores (the floor) at round ``rnd``, at
        this budget."""
        for arm in (a for a in self.arms if a.from_start_model()):
            self.start_model_rows(arm, rnd)

    def start_model_rows(self, arm: Arm, rnd: int) -> None:
        for seed in self.cfg.seeds:
            got = self.steps.get(f"start/{self.start_key(seed)}-scores",
                                 self.start_settings(self.start_key(seed)))
            assert got is not None  # score_start ran first
            name = self.arm_step(seed, rnd, arm.name)
            settings = {"version": got["model_version"], "review": self.reviews[seed][rnd]["picked"]}
            if self.steps.get(name, settings) is not None:
                continue
            for row in self.arm_rows(arm, seed, rnd, got, self.reviews[seed][rnd], {}):
                append_result(self.results_file, row)
            self.steps.put(name, settings, {})

    def default_twin(self, arm: Arm) -> Arm | None:
        """The run's default arm that tuned ``arm`` is this round: its trials chose the default
        (trial 0), so it would train exactly what ``X`` trains (the same start, reviews, seed
        and settings; ``rl+tuned`` and ``rl`` scored the same to the document when both ran).
        ``None`` when it chose other settings or ``X`` is not in the run."""
        tuning = self.tuning_extras.get(arm.name, {}).get("tuning")
        if not arm.tuned or tuning is None or tuning["chosen_trial"] != 0:
            return None
        untuned = next(a for a in self.base_arms if a.name == arm.name)
        return next((a for a in self.arms if a.name == base_name(arm.name) and not a.tuned
                     and a.trainer == arm.trainer and dict(a.options) == dict(untuned.options)),
                    None)

    def arms_round(self, rnd: int, rewards: dict[int, dict[str, Any]]) -> None:
        cfg = self.cfg
        self.floor_rows(rnd)
        todo: list[tuple[Arm, int]] = []
        twins: list[tuple[Arm, Arm, int]] = []
        for seed in cfg.seeds:
            for arm in self.pending_arms(seed, rnd):
                twin = self.default_twin(arm)
                if twin is None:
                    todo.append((arm, seed))
                else:
                    twins.append((arm, twin, seed))
        self.run_arms(rnd, rewards, todo)
        # a tuned arm that chose its defaults takes its default arm's rows (trained above or
        # before) instead of training the same model again; without them it trains
        recorded = read_results(self.results_file) if twins else []
        self.run_arms(rnd, rewards, [(arm, seed) for arm, twin, seed in twins
                                     if not self.copy_twin(arm, twin, seed, rnd, recorded)])
        if not (cfg.keep_models or cfg.keep_reward_models):
            for seed, rm in rewards.items():
                units.drop_weights(Path(rm["dir"]))

    def copy_twin(self, arm: Arm, twin: Arm, seed: int, rnd: int,
                  recorded: list[ArmResult]) -> bool:
        """``arm``'s rows and step at (``seed``, ``rnd``) from its default twin's among
        ``recorded`` (relabelled, its tuning record added, ``same_as`` naming the twin); False
        if the twin has none."""
        step = self.steps.get(self.arm_step(seed, rnd, twin.name),
                              self.unit_settings(seed, rnd, twin.name))
        rows = [r for r in recorded
                if (r.regime, r.arm, r.seed, r.round) == (self.regime, twin.name, seed, rnd)]
        if step is None or not rows:
            return False
        extras = {**self.tuning_extras.get(arm.name, {}), "same_as": twin.name}
        for row in rows:
            append_result(self.results_file,
                          replace(row, arm=arm.name, extras={**row.extras, **extras}))
        self.steps.put(self.arm_step(seed, rnd, arm.name),
                       self.unit_settings(seed, rnd, arm.name),
                       {**step, "same_as": twin.name})
        print(f"  seed {seed} round {rnd} {arm.name}: its trials chose the default, so it is "
              f"{twin.name} (F1 {rows[0].f1:.3f} on {rows[0].eval_set})", flush=True)
        return True

    def run_arms(self, rnd: int, rewards: dict[int, dict[str, Any]],
                 todo: list[tuple[Arm, int]]) -> None:
        """Train and score each (arm, seed) of ``todo`` at round ``rnd``; rows and steps
        recorded as each finishes."""
        payloads = [ArmUnit(self.round_context(seed, rnd), str(self.unit_dir(seed, rnd, arm.name)),
                            arm, rewards.get(seed, {}).get("dir")) for arm, seed in todo]
        for i, got in self.executor.run(units.run_arm, payloads):
            arm, seed = todo[i]
            review = arm.budget(self.reviews[seed][rnd], len(self.data.pool))
            extras = {**arm.row_extras(rewards.get(seed, {}).get("extras", {})),
                      **self.tuning_extras.get(arm.name, {})}
            for row in self.arm_rows(arm, seed, rnd, got, review, extras):
                append_result(self.results_file, row)
            self.steps.put(self.arm_step(seed, rnd, arm.name),
                           self.unit_settings(seed, rnd, arm.name),
                           {"train_seconds": got["train_seconds"],
                            "model_version": got["model_version"], "extras": got["extras"]})
            dev = next(iter(got["scores"].values()))
            f1 = ArmResult("", 0, 0, "", dev["fields"], dev["doc_ids"], dev["correct"],
                           dev["counts"], 0, 0.0).f1
            print(f"  seed {seed} round {rnd} {arm.name}: {got['train_seconds']:.0f} s, "
                  f"F1 {f1:.3f} on {next(iter(got['scores']))}", flush=True)

    # -- the whole run ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        t0 = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.ray:
            self.executor = RayExecutor(cfg.ray_address, cfg.cpus_per_task)
        (self.out / "config.json").write_text(json.dumps(cfg.export(), indent=1),
                                              encoding="utf-8")
        try:
            print(f"[1/4] data: {cfg.data}", flush=True)
            self.data = self.prepare_data()
            (self.out / "start").mkdir(parents=True, exist_ok=True)
            d = self.data
            print(f"      {len(d.start)} start, {len(d.pool)} pool, {len(d.select)} selection "
                  f"documents; evaluation sets "
                  f"{ {k: len(v) for k, v in d.eval_sets.items()} }", flush=True)
            print(f"[2/4] start model ({cfg.arch}, {cfg.start_epochs} epochs at most)",
                  flush=True)
            self.starts = self.start_models()
            for operator in cfg.operators:
                self.use_operator(operator)
                self.reviews: dict[int, dict[int, dict[str, Any]]] = {s: {} for s in cfg.seeds}
                for seed in cfg.seeds:
                    self.round_zero_store(seed)
                print(f"[3/4] {self.regime} regime: {cfg.rounds} rounds x "
                      f"{cfg.docs_per_round} documents, {len(cfg.seeds)} seeds, arms {cfg.arms} "
                      f"({self.executor.name})", flush=True)
                self.score_start()
                for rnd in range(1, cfg.rounds + 1):
                    for seed in cfg.seeds:
                        self.reviews[seed][rnd] = self.review_round(seed, rnd)
                    self.tune(rnd)  # the choices already made: which arms are pending
                    rewards = self.reward_models(rnd)
                    self.tune(rnd, rewards)
                    self.arms_round(rnd, rewards)
        finally:
            self.executor.close()
        print("[4/4] report", flush=True)
        paths = self.report()
        return {"paths": paths, "seconds": round(time.perf_counter() - t0, 1)}

    def tune(self, rnd: int, rewards: dict[int, dict[str, Any]] | None = None) -> None:
        """With ``tuning`` or ``X+tuned`` arms: the round's arms with their chosen settings
        (``kvloop.compare.tuning``), the trials not yet run run first when ``rewards`` is
        given."""
        if self.tuning is not None:
            self.arms, self.tuning_extras = tuned_arms(self, rnd, rewards)

    def report(self) -> dict[str, Any]:
        from kvloop.compare.analysis import analyse
        from kvloop.compare.report import write_report

        results = read_results(self.results_file)
        if not results:
            raise FileNotFoundError(f"{self.results_file}: no results yet; run the comparison "
                                    "(without --report-only) first")
        analysis = analyse(results, baseline=self.cfg.baseline, floor=floor_arm(),
                           n_boot=self.cfg.n_boot, seed=self.cfg.seeds[0],
                           references=references(self.cfg.arms), ceiling=ceiling_arm(),
                           resample_seeds=self.cfg.start_per_seed)
        analysis["command"] = self.command
        if self.tuning is not None:
            analysis["tuning"] = tuning_table(
                results, gain_from_steps(self.steps, self.cfg.n_boot, self.tuning.seed))
        return write_report(analysis, results, self.cfg.export(), self.out)


def thread_limit_warning(threads: int, env: Mapping[str, str]) -> str | None:
    """What to tell when ``OMP_THREAD_LIMIT`` (set for tesseract) caps torch below the threads
    a local unit is given: the units then run on fewer cores than their rows record, so their
    core-minutes (wall time x threads) overstate the cost; ``None`` when it does not."""
    limit = env.get("OMP_THREAD_LIMIT", "")
    if not limit.isdigit() or int(limit) >= threads:
        return None
    return (f"OMP_THREAD_LIMIT={limit} caps torch at {limit} thread(s) of the {threads} each "
            f"unit is given: units run slower and the core-minutes recorded (wall time x "
            f"{threads}) overstate their cost; unset it for a comparison (tesseract sets its "
            f"own)")


def remove_run(out: Path) -> None:
    """Delete a comparison's folder (``kvloop compare --fresh``)."""
    shutil.rmtree(out, ignore_errors=True)
