"""The answer across conditions: one line per measured cell of comparisons run apart.

A *cell* is one comparison folder (a dataset and a start model: "SROIE, weak start") under
one feedback regime, scored on one evaluation set, at its last round. Folders are named on
the command line with a label (``"CORD deployed=runs/compare-cord-deployed-quick"``); each
one's regimes and evaluation sets become cells. For each cell, from the folder's
``results.jsonl`` alone (the same statistics as the folder's own report,
``kvloop.compare.analysis``):

* every arm's F1 pooled over seeds;
* the **winner**: the best arm the operators' reviews alone could ship (references such as
  the gold ceiling are shown, never named the winner), and its margin over the runner-up,
  paired by (seed, document), with a bootstrap interval over documents and McNemar's test;
* **what the RL stage adds**: ``sft-rl`` minus ``sft-long`` (SFT alone for as many epochs as
  ``sft-rl``'s SFT stage), the contrast that isolates the reward model and the policy update;
  in a comparison whose arms were tuned alike (``tuning:``), ``sft-rl`` minus the tuned
  ``sft``, whose search over epochs takes ``sft-long``'s place: "given the same tuning budget,
  does adding the RL stage beat the best SFT?";
* **training core-minutes per seed** of each arm over all rounds (median over seeds of its
  training wall time times the threads it ran on, plus the round's reward model for the arms
  that need one; scoring excluded).

A cell of a comparison still running (an arm short of the seeds its ``config.json`` plans, or
a last round short of its rounds) is marked ``complete: False``; ``scripts/compare_grid.py``
leaves such cells out unless asked (``--unfinished``), saying which.

A comparison with a start model per seed (``start_per_seed``) draws seeds as well as documents
in its intervals (the crossed bootstrap its own report uses), so they include the start
model's variance; the table's seeds column says "(a start each)".

A cell's distinct contrasts (the winner's runner-up is often ``sft-long`` itself) are
Holm-adjusted together; "significant" needs the adjusted McNemar p below ``alpha`` and the
interval on the same side of 0, as in the reports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eval.bootstrap import f1_of_counts
from eval.significance import holm
from kvloop.compare.analysis import (
    _judge,
    arm_order,
    ci_variance,
    compare,
    group_cells,
    last_rounds,
    pooled_doc_counts,
)
from kvloop.compare.arms import TUNED, arm_named, base_name, is_arm
from kvloop.compare.records import ArmResult, read_results
from kvloop.compare.steps import StepCache

SFT_CONTROL = "sft-long"
TUNED_SFT = "sft"
RL_AFTER_SFT = "sft-rl"


def rl_stage_control(arms: dict[str, dict[int, ArmResult]]) -> str | None:
    """The arm ``sft-rl`` is paired with to isolate its RL stage: ``sft-long`` (SFT alone for
    as many epochs as ``sft-rl``'s SFT stage), else a tuned ``sft`` (its trials search the
    epochs), else none: an untuned 2-epoch ``sft`` would credit the RL stage with SFT's
    extra epoch (BENCHMARKS, session 10)."""
    if SFT_CONTROL in arms:
        return SFT_CONTROL
    if TUNED_SFT in arms and all("tuning" in r.extras for r in arms[TUNED_SFT].values()):
        return TUNED_SFT
    return None


@dataclass(frozen=True)
class GridSource:
    """A labelled comparison folder."""

    label: str
    folder: Path

    @classmethod
    def parse(cls, spec: str) -> GridSource:
        """``LABEL=FOLDER``; ``ValueError`` naming what is wrong."""
        label, sep, folder = spec.partition("=")
        if not sep or not label.strip() or not folder.strip():
            raise ValueError(f"{spec!r}: expected LABEL=FOLDER (a comparison's output folder)")
        path = Path(folder.strip())
        if not (path / "results.jsonl").is_file():
            raise ValueError(f"{path}: no results.jsonl (not a kvloop compare output folder)")
        return cls(label.strip(), path)


def run_config(folder: Path) -> dict[str, Any]:
    """The folder's ``config.json`` (what its last command asked for; empty if absent): read
    once per folder for its seeds, rounds, threads and start model per seed."""
    cfg = folder / "config.json"
    return json.loads(cfg.read_text(encoding="utf-8")) if cfg.is_file() else {}


def _step_results(folder: Path, pattern: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Each recorded step under the folder's ``steps/`` matching ``pattern``, with its result
    (read without their settings)."""
    return StepCache(folder / "steps").recorded_matching(pattern)


def unit_threads(result: dict[str, Any], run_cfg: dict[str, Any]) -> float:
    """The CPU threads a recorded step ran on: its own record, else what the folder's config
    gave a unit on its executor (a Ray task ``cpus_per_task``, a local unit ``threads``); steps
    recorded before units kept their threads."""
    if result.get("threads"):
        return float(result["threads"])
    if result.get("executor") == "ray":
        return float(run_cfg.get("cpus_per_task") or 1)
    return float(run_cfg.get("threads") or 1)


def _reward_core_seconds(folder: Path, run_cfg: dict[str, Any]
                         ) -> dict[tuple[str, int, int], float]:
    """(regime, seed, round) -> core-seconds of that round's reward model, from the run's
    steps (its wall time times the threads it ran on, which may differ from the arms' that
    reuse it: a tuned arm added on Ray to a folder run locally)."""
    out: dict[tuple[str, int, int], float] = {}
    for f, result in _step_results(folder, "*/seed-*/round-*/reward.json"):
        regime, seed, rnd = f.parts[-4], int(f.parts[-3][5:]), int(f.parts[-2][6:])
        out[(regime, seed, rnd)] = (float(result.get("seconds") or 0.0)
                                    * unit_threads(result, run_cfg))
    return out


def tuning_core_minutes(folder: Path, run_cfg: dict[str, Any]) -> dict[tuple[str, str], float]:
    """(regime, arm) -> core-minutes of the arm's tuning trials over all rounds (run once, on
    the first seed, for every seed: a cost on top of the arm's own per-seed training)."""
    out: dict[tuple[str, str], float] = {}
    for f, result in _step_results(folder, "*/seed-*/round-*/tune-*/trial-*.json"):
        regime, arm = f.parts[-5], f.parts[-2].removeprefix("tune-")
        out[(regime, arm)] = out.get((regime, arm), 0.0) + float(
            result.get("train_seconds") or 0.0) * unit_threads(result, run_cfg) / 60
    return out


def core_minutes(rows: Sequence[ArmResult], rewards: dict[tuple[str, int, int], float]
                 ) -> float:
    """Median over seeds of an arm's training core-minutes summed over its rounds (rows of one
    evaluation set: the same model is scored on every set). ``rewards``: each round's reward
    model in core-seconds. The median: a wall time is stretched when another job shares the
    cores, and one seed's unit slowed that way should not move an arm's cost."""
    per_seed: dict[int, float] = {}
    needs_reward = is_arm(rows[0].arm) and arm_named(rows[0].arm).needs_reward()
    for r in rows:
        threads = float(r.extras.get("threads") or 1)
        reward = (rewards.get((r.regime, r.seed, r.round), 0.0)
                  if needs_reward and r.train_seconds else 0.0)
        per_seed[r.seed] = per_seed.get(r.seed, 0.0) + (r.train_seconds * threads + reward) / 60
    return float(np.median(list(per_seed.values()))) if per_seed else 0.0


def _same_model(arms: dict[str, dict[int, ArmResult]], a: str, b: str) -> bool:
    """Whether arm ``a``'s rows are ``b``'s, or ``b``'s are ``a``'s, at every seed (``same_as``:
    a tuned arm whose trials chose the default)."""
    return any(all(r.extras.get("same_as") == y for r in arms[x].values())
               for x, y in ((a, b), (b, a)))


def grid_cells(sources: Sequence[GridSource], n_boot: int = 1000, seed: int = 0,
               alpha: float = 0.05, every_round: bool = False) -> list[dict[str, Any]]:
    """One record per (source, regime, evaluation set) at its last round (module docstring);
    ``every_round``: at every round with reviews too (the answer per budget)."""
    out = []
    for src in sources:
        results = read_results(src.folder / "results.jsonl")
        cells = group_cells(results)
        run_cfg = run_config(src.folder)
        rewards = _reward_core_seconds(src.folder, run_cfg)
        resample_seeds = bool(run_cfg.get("start_per_seed"))
        last = last_rounds(cells, "sft")
        costs = {g: _core_minutes_by_arm(cells, g, rewards) for g, _ in last}
        tuning_costs = tuning_core_minutes(src.folder, run_cfg)
        planned_seeds, planned_rounds = run_cfg.get("seeds") or [], run_cfg.get("rounds") or 0
        rounds = sorted((g, e, r) for (g, e), end in last.items()
                        for r in (range(1, end + 1) if every_round else [end]))
        for regime, es, rnd in rounds:
            if not any(a != "none" for (g, e, r, a) in cells if (g, e, r) == (regime, es, rnd)):
                continue  # a round no arm that learns reports (the gold ceiling's last only)
            arms = {a: rows for (g, e, r, a), rows in cells.items()
                    if (g, e, r) == (regime, es, rnd)}
            floor = {a: rows for (g, e, r, a), rows in cells.items()
                     if (g, e, r, a) == (regime, es, 0, "none")}
            if "none" not in arms and "none" in floor:
                arms["none"] = floor["none"]
            # a comparison still running (or killed) leaves cells short of seeds or rounds:
            # said, so that a table is never read as the finished answer
            missing = {a: sorted(set(planned_seeds) - set(rows)) for a, rows in arms.items()
                       if set(planned_seeds) - set(rows)}
            complete = not missing and (every_round or rnd >= planned_rounds)
            f1 = {a: _pooled_f1(rows) for a, rows in arms.items()}
            shippable = sorted((a for a in arms if not (is_arm(a) and arm_named(a).reference)),
                               key=lambda a: -f1[a])
            contrasts = []
            # the runner-up is another model: a tuned arm that kept its defaults is its
            # default arm's rows (``same_as``), a margin of exactly 0 that says nothing
            runner_up = next((a for a in shippable[1:]
                              if not _same_model(arms, a, shippable[0])), None)
            if runner_up is not None:
                contrasts.append(("winner", runner_up, shippable[0]))
            control = rl_stage_control(arms)
            if control and RL_AFTER_SFT in arms:
                contrasts.append(("rl_stage", control, RL_AFTER_SFT))
            if RL_AFTER_SFT + TUNED in arms and TUNED_SFT + TUNED in arms:
                contrasts.append(("rl_stage_tuned", TUNED_SFT + TUNED, RL_AFTER_SFT + TUNED))
            # Tuned SFT may choose fewer epochs than sft-rl's SFT stage runs; then the pair
            # above credits the RL stage with SFT's extra epoch, and only sft-long isolates it.
            if RL_AFTER_SFT + TUNED in arms and SFT_CONTROL in arms:
                contrasts.append(("rl_stage_tuned_control", SFT_CONTROL, RL_AFTER_SFT + TUNED))
            contrasts += [(f"tuned:{base_name(a)}", base_name(a), a) for a in arm_order(arms)
                          if a != base_name(a) and base_name(a) in arms]
            distinct = {(ref, arm): {"reference": ref, "arm": arm,
                                     **compare(arms[ref], arms[arm], n_boot, seed, alpha,
                                               resample_seeds=resample_seeds)}
                        for _, ref, arm in contrasts}
            for c, p in zip(distinct.values(), holm([c["mcnemar"]["p_value"]
                                                     for c in distinct.values()])):
                c["p_holm"] = p
                _judge(c, alpha)
            tests = {name: distinct[(ref, arm)] for name, ref, arm in contrasts}
            seeds = sorted({s for rows in arms.values() for s in rows})
            out.append({
                "label": src.label, "folder": str(src.folder), "regime": regime,
                "eval_set": es, "round": rnd, "seeds": seeds,
                "complete": complete, "missing_seeds": missing,
                "ci_variance": ci_variance(resample_seeds), "start_per_seed": resample_seeds,
                # what the operators reviewed (the gold ceiling's rows count the whole pool)
                "reviewed_docs": max((r.reviewed_docs for a in shippable
                                      for r in arms[a].values()), default=0),
                "f1": f1, "winner": shippable[0] if shippable else None,
                "tests": tests,
                "core_minutes": costs[regime],
                "tuning_core_minutes": {a: m for (g, a), m in tuning_costs.items()
                                        if g == regime},
            })
    return out


def _pooled_f1(rows: dict[int, ArmResult]) -> float:
    """Micro F1 over every seed's documents, as the report's cells pool it."""
    return float(f1_of_counts(pooled_doc_counts(rows.values())[1].sum(0)))


def _core_minutes_by_arm(cells: Any, regime: str,
                         rewards: dict[tuple[str, int, int], float]) -> dict[str, float]:
    """Each arm's training core-minutes per seed, from the rows of one evaluation set."""
    by_arm: dict[str, list[ArmResult]] = {}
    first_set: dict[str, str] = {}
    for (g, es, _rnd, arm), rows in cells.items():
        if g != regime:
            continue
        first_set.setdefault(arm, es)
        if es == first_set[arm]:
            by_arm.setdefault(arm, []).extend(rows.values())
    return {a: core_minutes(rows, rewards) for a, rows in by_arm.items()}


# -- the table --------------------------------------------------------------------------------

def _signed(x: float) -> str:
    return f"{x:+.3f}".replace("-", "\u2212")


def _test_text(t: dict[str, Any] | None, with_names: bool) -> str:
    if not t:
        return "\u2013"
    d = t["f1_diff"]
    mark = {"better": " \u25b2", "worse": " \u25bc"}.get(t["direction"], "")
    names = f"{t['arm']} \u2212 {t['reference']} " if with_names else ""
    return (f"{names}{_signed(d['diff'])} [{_signed(d['low'])}, {_signed(d['high'])}]"
            f"{mark} (p {t['p_holm']:.2g})")


def grid_markdown(cells: Sequence[dict[str, Any]], arms: Sequence[str] | None = None) -> str:
    """The cells as one markdown table: F1 per arm (the winner in bold), the winner's margin
    over the runner-up, what the RL stage adds, and training core-minutes per arm."""
    arms = list(arms or arm_order({a for c in cells for a in c["f1"]}))
    head = (["condition", "regime", "evaluated on", "seeds", "reviewed"] + arms
            + ["winner \u2212 runner-up [95% CI] (Holm p)",
               "the RL stage: sft-rl \u2212 its SFT control [95% CI] (Holm p)"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 5 + "---:|" * len(arms) + "---|---|"]
    for c in cells:
        f1 = [(f"**{c['f1'][a]:.3f}**" if a == c["winner"] else f"{c['f1'][a]:.3f}")
              if a in c["f1"] else "\u2013" for a in arms]
        lines.append("| " + " | ".join(
            [c["label"] + ("" if c.get("complete", True) else " (unfinished)"), c["regime"],
             c["eval_set"],
             f"{len(c['seeds'])}" + (" (a start each)" if c.get("start_per_seed") else ""),
             f"{c['reviewed_docs']:.0f}", *f1,
             _test_text(c["tests"].get("winner"), True),
             _test_text(c["tests"].get("rl_stage"), True)]) + " |")
    tuned = [(c, name.removeprefix("tuned:"), t) for c in cells
             for name, t in c["tests"].items() if name.startswith("tuned:")]
    stage_rows = {"rl_stage_tuned": "the RL stage, both tuned",
                  "rl_stage_tuned_control": "the tuned RL stage against SFT as long"}
    if tuned or any(name in c["tests"] for c in cells for name in stage_rows):
        lines += ["", ("Each arm tuned alike (`X+tuned`: its trials of its own settings on the "
                       "selection split) against its defaults, in the same run (paired); the "
                       "trials' cost is paid once for every seed:"), "",
                  ("| condition | regime | evaluated on | reviewed | arm | tuned \u2212 default "
                   "[95% CI] (Holm p) | tuning core-minutes, all rounds |"),
                  "|---|---|---|---:|---|---|---:|"]
        for c, arm, t in tuned:
            cost = c.get("tuning_core_minutes", {}).get(arm + TUNED)
            lines.append(f"| {c['label']} | {c['regime']} | {c['eval_set']} | "
                         f"{c['reviewed_docs']:.0f} | {arm} | {_test_text(t, False)} | "
                         + ("\u2013" if cost is None else f"{cost:.1f}") + " |")
        for c in cells:
            for name, what in stage_rows.items():
                if name in c["tests"]:
                    lines.append(f"| {c['label']} | {c['regime']} | {c['eval_set']} | "
                                 f"{c['reviewed_docs']:.0f} | {what} | "
                                 f"{_test_text(c['tests'][name], True)} | |")
    costs: dict[tuple[str, str], dict[str, float]] = {}
    for c in cells:
        costs.setdefault((c["label"], c["regime"]), c["core_minutes"])
    lines += ["", ("Training core-minutes per seed over all rounds (wall time x threads, median "
              "over seeds; the reward model counted for the arms that use it; scoring "
              "excluded):"), "",
              "| condition | regime | " + " | ".join(arms) + " |",
              "|---|---|" + "---:|" * len(arms)]
    for (label, regime), cm in costs.items():
        lines.append(f"| {label} | {regime} | " + " | ".join(
            f"{cm[a]:.1f}" if a in cm else "\u2013" for a in arms) + " |")
    return "\n".join(lines) + "\n"


def grid_figure(cells: Sequence[dict[str, Any]], arms: Sequence[str] | None = None) -> Any:
    """One row of dots per cell: each arm's F1 (the start model and the gold ceiling as
    lines), so where the answer changes shows at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a in (arms or arm_order({a for c in cells for a in c["f1"]}))
            if base_name(a) not in ("none", "gold")]
    bases = list(dict.fromkeys(base_name(a) for a in arms))
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(cells) + 1.4))
    marks = "osD^v<>ph*"
    labelled: set[str] = set()
    for i, c in enumerate(cells):
        y = len(cells) - 1 - i
        for ref, style in (("none", ":"), ("gold", "--")):
            if ref in c["f1"]:
                ax.plot([c["f1"][ref]] * 2, [y - 0.35, y + 0.35], style, color="grey", lw=1)
        for a in arms:
            if a in c["f1"]:
                k = bases.index(base_name(a))  # X+tuned: X's colour, a cross, a little lower
                tuned = a != base_name(a)
                ax.plot(c["f1"][a], y - 0.2 * tuned, "x" if tuned else marks[k % len(marks)],
                        color=f"C{k}", ms=7, label=None if a in labelled else a,
                        mfc="none" if a != c["winner"] else None)
                labelled.add(a)
    ax.set_yticks(range(len(cells)))
    ax.set_yticklabels([f"{c['label']} · {c['regime']} · {c['eval_set']}"
                        for c in reversed(cells)], fontsize=8)
    ax.set_xlabel("F1 after the last round (filled: the winner; x: tuned alike;\n"
                  "dotted line: the start model; dashed: the gold ceiling)")
    ax.legend(fontsize=7, ncol=min(len(arms), 4), loc="lower left",
              bbox_to_anchor=(0, 1.01), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
