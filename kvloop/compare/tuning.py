"""Equal tuning: every arm that trains gets the same number of trials of its own main
settings, and keeps the one that scores best on the selection split.

``tuning: {trials: N, seed: S}`` in a comparison's config turns it on (absent: every arm runs
its default settings, as before). An arm named ``X+tuned`` (``--arms sft sft+tuned``) is arm
``X`` tuned this way while ``X`` and the other arms keep their defaults: default and tuned in
one run, paired on the same start model, reviews and documents (its trials are ``X``'s draws;
``tuning:`` sets their number and seed, else the defaults). Each arm's settings and ranges are its trainer's space
(``kvloop.compare.arms.SEARCH_SPACES``: epochs and learning rate for SFT and the gold
ceiling; plus KL coefficient and samples per field for RL and SFT-then-RL; plus beta for
DPO). Trial 0 is the arm's default settings; trials 1..N-1 are seeded draws
(``kvloop.compare.search``).

A trial is the arm trained at one round from the same start model and store as the arm
itself, then scored on the **selection pages** only (lenient micro F1; the trainer already
picks its epoch and refits its decisions on them). Dev and its unseen-vendor slice are never
read, so they stay test sets. The best trial (a tie goes to the earlier trial, so the default
wins ties) gives the settings the arm runs at that round for every seed. Thirty selection
pages are a noisy judge: trials a page or two apart are noise. So the best trial's gain over
the default is also measured with its paired bootstrap CI over the selection pages (recorded
and shown in the report), and ``tuning: {rule: significant}`` runs the best trial only where
that CI lies above zero, keeping the default otherwise (``rule: best``, the default rule,
takes the highest score).

Where: on the store of the first seed of ``seeds``, at every round (the budget changes what is
best: more reviews can carry more epochs), and the choice is reused by every seed. Tuning on
every seed would cost N trials per arm, round *and* seed; and the other seeds' rows measure the
chosen settings rather than each seed's luckiest draw. The first seed's rows are trained with
the settings that won on its own selection pages: a best-of-N there, never on dev.

Trials are units like the arms' (``kvloop.compare.units.run_arm``, on the run's executor, so
Ray runs them too), each recorded as a step when finished (``kvloop.compare.steps``):
running again trains only the trials not yet finished. The rows of a tuned arm carry
``extras["tuning"]``; :func:`tuning_table` turns them into the report's table. An ``X+tuned``
arm whose trials chose the default takes ``X``'s rows (``same_as``) rather than training the
same model again (``Comparison.default_twin``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from kvloop.compare.arms import Arm, arm_order_key, base_name
from kvloop.compare.search import best_trial, draw_trials, tied_defaults

if TYPE_CHECKING:
    from kvloop.compare.config import CompareConfig
    from kvloop.compare.records import ArmResult
    from kvloop.compare.runner import Comparison
    from kvloop.compare.steps import StepCache

SELECT_SET = "select"


RULES = ("best", "significant")


@dataclass(frozen=True)
class TuningConfig:
    """``trials`` per arm (the default among them), the ``seed`` of the draws, and the
    ``rule`` that picks a trial: ``best`` (highest selection F1, the default wins ties) or
    ``significant`` (the best only where its paired bootstrap CI over the selection pages lies
    above the default's; else the default)."""

    trials: int = 4
    seed: int = 0
    rule: str = "best"

    def __post_init__(self) -> None:
        if self.trials < 2:
            raise ValueError(f"tuning.trials must be >= 2 (the default and a draw), got "
                             f"{self.trials}")
        if self.rule not in RULES:
            raise ValueError(f"tuning.rule must be one of {list(RULES)}, got {self.rule!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TuningConfig:
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"tuning: unknown key(s) {unknown}; valid: {names}")
        return cls(**d)


def default_settings(arm: Arm, cfg: CompareConfig) -> dict[str, Any]:
    """What the arm runs untuned for each setting of its space (and tied field): its own
    options, else the run's ``trainer_options``, else the run's ``epochs``, else its trainer
    config's default."""
    space = arm.search_space()
    cls = arm.config_class()
    assert cls is not None, f"arm {arm.name} tunes settings but trains nothing"
    given = {"epochs": cfg.epochs, **cfg.trainer_options, **arm.options}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for name in (*space, *tied_defaults(space)):
        if name in given:
            out[name] = given[name]
        elif fields[name].default is not dataclasses.MISSING:
            out[name] = fields[name].default
        else:
            raise ValueError(f"arm {arm.name}: {cls.__name__}.{name} has no plain default")
    return out


def trial_settings(arm: Arm, cfg: CompareConfig, tuning: TuningConfig) -> list[dict[str, Any]]:
    """The arm's trials: its defaults first, then seeded draws of its space."""
    return draw_trials(arm.search_space(), default_settings(arm, cfg), tuning.trials,
                       tuning.seed, base_name(arm.name))  # sft+tuned draws sft's trials


def tunable(arm: Arm, rnd: int, rounds: int, every_arm: bool = True) -> bool:
    """Whether ``arm`` is tuned at round ``rnd``: it has settings to tune, runs then, and the
    run tunes every arm or this one is an ``X+tuned`` arm."""
    return (every_arm or arm.tuned) and bool(arm.search_space()) and arm.runs_at(rnd, rounds)


def _select_f1(scores: Mapping[str, Any]) -> float:
    """Lenient micro F1 on the selection pages of a unit's scores."""
    import numpy as np

    from eval.bootstrap import f1_of_counts

    counts = np.asarray(scores[SELECT_SET]["counts"], dtype=float).reshape(-1, 3)
    return float(f1_of_counts(counts.sum(0)))


def selection_gain(default_counts: Sequence[Any], trial_counts: Sequence[Any], n_boot: int,
                   seed: int) -> dict[str, Any]:
    """A trial's lenient F1 minus the default's on the selection pages, with its paired
    bootstrap 95% CI over the pages (``eval.bootstrap.paired_bootstrap``)."""
    import numpy as np

    from eval.bootstrap import f1_of_counts, paired_bootstrap

    a = np.asarray(default_counts, dtype=float).reshape(-1, 3)
    b = np.asarray(trial_counts, dtype=float).reshape(-1, 3)
    return paired_bootstrap(a, b, f1_of_counts, n_boot=n_boot, seed=seed).export()


def choose_trial(trial_f1: Sequence[float], counts: Sequence[Sequence[Any] | None], rule: str,
                 n_boot: int, seed: int) -> tuple[int, int, dict[str, Any] | None]:
    """(chosen trial, best trial, the best's gain over the default) under ``rule``; the gain
    is ``None`` where the best is the default or a trial's per-page counts were not kept
    (steps recorded before they were)."""
    best = best_trial(trial_f1)
    gain = None
    default_counts, best_counts = counts[0], counts[best]
    if best != 0 and default_counts is not None and best_counts is not None:
        gain = selection_gain(default_counts, best_counts, n_boot, seed)
    if rule == "significant" and not (gain is not None and gain["low"] > 0):
        return 0, best, gain
    return best, best, gain


def tuned_arms(run: Comparison, rnd: int, rewards: Mapping[int, Mapping[str, Any]] | None = None
               ) -> tuple[list[Arm], dict[str, dict[str, Any]]]:
    """The arms of round ``rnd``, each tunable one with the settings of its best trial, and
    what each tuned arm's rows record (``extras["tuning"]``).

    With ``rewards`` (the round's reward models by seed) the trials not finished yet are run
    first; without, an arm with an unfinished trial is returned with its default settings
    (the runner asks before the round's reward models, to know which arms are pending).
    """
    from kvloop.compare import units

    cfg, tuning = run.cfg, run.tuning
    assert tuning is not None
    seed = cfg.seeds[0]
    ctx = run.round_context(seed, rnd)
    ctx = replace(ctx, eval_files={SELECT_SET: ctx.select_file})
    reward_dir = (rewards or {}).get(seed, {}).get("dir")
    plans: dict[str, tuple[list[dict[str, Any]], list[float | None], list[Any]]] = {}
    todo: list[tuple[str, int, str, dict[str, Any]]] = []
    payloads = []
    for arm in run.base_arms:
        if not tunable(arm, rnd, cfg.rounds, run.tune_every_arm):
            continue
        trials = trial_settings(arm, cfg, tuning)
        scores: list[float | None] = []
        counts: list[Any] = []
        for i, opts in enumerate(trials):
            trial = arm.with_options(opts)
            name = f"{run.regime}/seed-{seed}/round-{rnd}/tune-{arm.name}/trial-{i}"
            settings = {**run.unit_settings(seed, rnd, arm.name), "options": trial.settings(),
                        "eval": {SELECT_SET: run.data.select}, "trial": i}
            got = run.steps.get(name, settings)
            if got is not None and tuning.rule == "significant" and "select_counts" not in got:
                got = None  # recorded without its per-page counts: the rule needs them, rerun
            scores.append(None if got is None else got["select_f1"])
            counts.append(None if got is None else got.get("select_counts"))
            if got is None and rewards is not None:
                todo.append((arm.name, i, name, settings))
                payloads.append(units.ArmUnit(ctx, str(run.unit_dir(seed, rnd, f"tune-{arm.name}")
                                                       / f"trial-{i}"), trial, reward_dir))
        plans[arm.name] = (trials, scores, counts)
    for k, got in run.executor.run(units.run_arm, payloads):
        arm_name, i, name, settings = todo[k]
        f1 = _select_f1(got["scores"])
        select = got["scores"][SELECT_SET]
        # the per-page counts too: a rule that asks whether a trial beat the default beyond
        # the selection split's noise needs them paired by page
        run.steps.put(name, settings, {"select_f1": f1, "eval_sets": list(got["scores"]),
                                       "select_counts": select["counts"],
                                       "select_doc_ids": select["doc_ids"],
                                       "train_seconds": got["train_seconds"],
                                       "model_version": got["model_version"],
                                       "executor": run.executor.name,
                                       "threads": run.threads, "extras": got["extras"]})
        plans[arm_name][1][i] = f1
        plans[arm_name][2][i] = select["counts"]
        print(f"  seed {seed} round {rnd} tuning {arm_name} trial {i} "
              f"({settings_text(plans[arm_name][0][i])}): selection F1 {f1:.3f}, "
              f"{got['train_seconds']:.0f} s", flush=True)
    arms, extras = [], {}
    for arm in run.base_arms:
        plan = plans.get(arm.name)
        if plan is None or any(s is None for s in plan[1]):
            arms.append(arm)
            continue
        trials, trial_f1 = plan[0], [float(s) for s in plan[1] if s is not None]
        chosen, best, gain = choose_trial(trial_f1, plan[2], tuning.rule, cfg.n_boot,
                                          tuning.seed)
        arms.append(arm.with_options(trials[chosen]))
        extras[arm.name] = {"tuning": {
            "trials": len(trials), "on_seed": seed, "chosen_trial": chosen,
            "settings": list(arm.search_space()),
            "default": trials[0], "tuned": trials[chosen], "select_f1_trials": trial_f1,
            "select_f1_default": trial_f1[0], "select_f1_tuned": trial_f1[chosen],
            "rule": tuning.rule, "best_trial": best, "select_gain_best": gain}}
    return arms, extras


def settings_text(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in settings.items())


# -- the report's table -----------------------------------------------------------------------

GainLookup = Callable[[str, int, str, Mapping[str, Any]], "dict[str, Any] | None"]
"""(regime, round, arm, its ``extras["tuning"]``) -> the best trial's selection gain over the
default, for rows written before the gain was recorded in them (read from the trial steps)."""


def gain_from_steps(steps: StepCache, n_boot: int, seed: int) -> GainLookup:
    """A ``GainLookup`` reading the trial steps' per-page selection counts (``None`` where a
    step has none: recorded before they were kept)."""

    def gain_of(regime: str, rnd: int, arm: str, t: Mapping[str, Any]) -> dict[str, Any] | None:
        if t["chosen_trial"] == 0:
            return None
        default, chosen = ((steps.recorded(f"{regime}/seed-{t['on_seed']}/round-{rnd}/"
                                           f"tune-{arm}/trial-{i}") or {}).get("select_counts")
                           for i in (0, t["chosen_trial"]))
        if default is None or chosen is None:
            return None
        return selection_gain(default, chosen, n_boot, seed)

    return gain_of


def tuning_table(results: Sequence[ArmResult], gain_of: GainLookup | None = None
                 ) -> list[dict[str, Any]]:
    """One row per (regime, round, arm, setting) of the tuned arms' rows: default and tuned
    value, selection F1 of the default and of the chosen trial (from the tuning seed's rows),
    and the best trial's gain over the default on the selection pages with its 95% CI."""
    seen: dict[tuple[str, int, str], dict[str, Any]] = {}
    for r in results:
        t = r.extras.get("tuning")
        if t and r.seed == t["on_seed"]:
            seen.setdefault((r.regime, r.round, r.arm), t)
    rows = []
    for (regime, rnd, arm), t in sorted(seen.items(), key=lambda kv: (
            kv[0][0], kv[0][1], arm_order_key(kv[0][2]))):
        gain = t.get("select_gain_best")
        if gain is None and "best_trial" not in t and gain_of is not None:
            gain = gain_of(regime, rnd, arm, t)
        for setting in t.get("settings", t["default"]):  # tied fields (head_lr) move with it
            rows.append({"regime": regime, "round": rnd, "arm": arm, "setting": setting,
                         "default": t["default"][setting], "tuned": t["tuned"][setting],
                         "select_f1_default": t["select_f1_default"],
                         "select_f1_tuned": t["select_f1_tuned"], "trials": t["trials"],
                         "chosen_trial": t["chosen_trial"], "on_seed": t["on_seed"],
                         "rule": t.get("rule", "best"),
                         "best_trial": t.get("best_trial", t["chosen_trial"]),
                         "select_gain_best": gain})
    return rows


TABLE_HEAD = ["regime", "round", "arm", "setting", "default", "tuned",
              "selection F1 default", "selection F1 tuned", "best − default [95% CI]",
              "trials"]


def gain_text(row: Mapping[str, Any]) -> str:
    """The best trial's selection gain over the default as "+0.012 [-0.010, +0.035]"; "–"
    where the default was best (or the counts were not kept); "(kept default)" added where
    the rule ran the default instead."""
    g = row.get("select_gain_best")
    if row.get("best_trial", row["chosen_trial"]) == 0:
        return "– (default best)"
    if g is None:
        return "–"
    text = f"{g['diff']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]"
    return text + (" (kept default)" if row["chosen_trial"] != row["best_trial"] else "")


def table_cells(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    def v(x: Any) -> str:
        return f"{x:g}" if isinstance(x, float) else str(x)

    return [[r["regime"], str(r["round"]), r["arm"], r["setting"], v(r["default"]),
             v(r["tuned"]), f"{r['select_f1_default']:.3f}", f"{r['select_f1_tuned']:.3f}",
             gain_text(r), str(r["trials"])] for r in rows]


def table_note(rows: Sequence[Mapping[str, Any]]) -> str:
    """How the table's settings were chosen, in words."""
    if not rows:
        return ""
    n, seed = rows[0]["trials"], rows[0]["on_seed"]
    rule = ("the best at each round (a tie keeps the default)" if rows[0]["rule"] == "best"
            else "the best at each round where its gain over the default was significant on "
                 "the selection pages (its CI above zero), else the default")
    return (f"Equal tuning: every arm that trains had {n} trials of its own settings (its "
            f"default among them), each scored on the selection pages only; {rule} was "
            f"chosen on seed {seed}'s reviews and run by every seed. Dev and the unseen-vendor "
            "slice were never read for it. \"best − default\": the best trial's lenient F1 "
            "gain over the default on those pages, paired bootstrap 95% CI over them: an "
            "interval that holds zero is a choice within the selection split's noise.")


def table_markdown(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The table as Markdown lines (none when nothing was tuned)."""
    if not rows:
        return []
    return ["**Tuning (selection split)**", "", table_note(rows), "",
            "| " + " | ".join(TABLE_HEAD) + " |", "|---|---:|---|---|---:|---:|---:|---:|---|---:|",
            *["| " + " | ".join(c) + " |" for c in table_cells(rows)], ""]
