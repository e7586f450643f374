"""The cross-condition answer table (``kvloop.compare.grid``): winner, contrasts, costs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from kvloop.compare.grid import (
    GridSource,
    core_minutes,
    grid_cells,
    grid_markdown,
    tuning_core_minutes,
)
from kvloop.compare.records import ArmResult, append_result, read_results

FIELDS = ["company", "date", "address", "total"]


def _row(arm: str, seed: int, rnd: int, right: np.ndarray, train_s: float = 0.0,
         regime: str = "full", reviewed: int | None = None,
         extras: dict | None = None) -> ArmResult:
    """A row whose documents are right on the fields ``right`` (docs x fields) marks."""
    counts = [[int(r.sum()), int((~r).sum()), int((~r).sum())] for r in right]
    return ArmResult(arm=arm, seed=seed, round=rnd, eval_set="dev", fields=FIELDS,
                     doc_ids=[f"d{i}" for i in range(len(right))],
                     correct=right.astype(int).tolist(), counts=counts,
                     reviewed_docs=30 * rnd if reviewed is None else reviewed, operator_seconds=0.0, train_seconds=train_s,
                     extras={"regime": regime, "threads": 2, **(extras or {})})


def _folder(tmp: Path) -> Path:
    rng = np.random.default_rng(0)
    out = tmp / "run"
    n = 80
    rates = {"none": 0.5, "sft": 0.6, "sft-long": 0.65, "sft-rl": 0.9, "rl": 0.55,
             "gold": 0.97}
    for seed in (0, 1):
        base = rng.random((n, len(FIELDS)))
        append_result(out / "results.jsonl", _row("none", seed, 0, base < rates["none"]))
        for arm, rate in rates.items():
            if arm != "none":
                append_result(out / "results.jsonl",
                              _row(arm, seed, 1, base < rate, train_s=30.0,
                                   reviewed=150 if arm == "gold" else 30))
        step = out / "steps" / "full" / f"seed-{seed}" / "round-1" / "reward.json"
        step.parent.mkdir(parents=True)
        step.write_text(json.dumps({"settings": {}, "result": {"seconds": 15.0}}))
    (out / "config.json").write_text(json.dumps({"threads": 2}))  # what its units ran on
    return out


def test_the_winner_ships_and_the_rl_stage_is_tested_against_sft_trained_as_long(
        tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    [cell] = grid_cells([GridSource.parse("CORD, weak=" + str(folder))], n_boot=200)
    assert (cell["regime"], cell["eval_set"], cell["round"]) == ("full", "dev", 1)
    assert cell["f1"]["gold"] > cell["f1"]["sft-rl"]
    assert cell["winner"] == "sft-rl"  # gold uses labels the reviews do not give
    win = cell["tests"]["winner"]
    assert (win["arm"], win["reference"]) == ("sft-rl", "sft-long")
    assert win["direction"] == "better" and win["f1_diff"]["low"] > 0
    assert cell["tests"]["rl_stage"]["direction"] == "better"
    # the same pair twice is one test: Holm over one p leaves it as it is
    assert win["p_holm"] == win["mcnemar"]["p_value"]
    # 30 s of training at 2 threads = 1 core-minute a seed; rl, sft-rl add the reward model's
    # 15 s, sft does not use one
    assert cell["core_minutes"]["sft"] == pytest.approx(1.0)
    assert cell["core_minutes"]["sft-rl"] == pytest.approx(1.5)
    assert cell["core_minutes"]["none"] == 0.0
    table = grid_markdown([cell])
    assert "| CORD, weak | full | dev | 2 | 30 |" in table
    assert f"| **{cell['f1']['sft-rl']:.3f}** | {cell['f1']['gold']:.3f} |" in table
    assert "sft-rl − sft-long +0." in table and "▲" in table


@pytest.mark.parametrize("tuned", [True, False])
def test_with_every_arm_tuned_the_rl_stage_is_tested_against_the_tuned_sft(
        tmp_path: Path, tuned: bool) -> None:
    """Tuned SFT searches the epochs sft-long adds; untuned 2-epoch SFT is no control (it
    would credit the RL stage with SFT's extra epoch)."""
    rng = np.random.default_rng(1)
    out = tmp_path / "run"
    tuning = {"tuning": {"trials": 4, "on_seed": 0}} if tuned else {}
    for seed in (0, 1):
        base = rng.random((60, len(FIELDS)))
        append_result(out / "results.jsonl", _row("none", seed, 0, base < 0.5))
        for arm, rate in (("sft", 0.7), ("sft-rl", 0.72)):
            append_result(out / "results.jsonl", _row(arm, seed, 1, base < rate, extras=tuning))
    [cell] = grid_cells([GridSource(label="tuned", folder=out)], n_boot=100)
    if tuned:
        stage = cell["tests"]["rl_stage"]
        assert (stage["arm"], stage["reference"]) == ("sft-rl", "sft")
        assert "sft-rl − sft +0." in grid_markdown([cell])
    else:
        assert "rl_stage" not in cell["tests"]


def test_the_tuned_rl_stage_is_also_tested_against_sft_as_long(tmp_path: Path) -> None:
    """Tuned SFT can choose 2 epochs where sft-rl's SFT stage runs 3: sft-rl+tuned against
    sft+tuned then mixes the RL stage with an epoch; sft-long is the matched control."""
    rng = np.random.default_rng(2)
    out = tmp_path / "run"
    tuning = {"tuning": {"trials": 4, "on_seed": 0}}
    for seed in (0, 1):
        base = rng.random((60, len(FIELDS)))
        append_result(out / "results.jsonl", _row("none", seed, 0, base < 0.5))
        for arm, rate in (("sft+tuned", 0.6), ("sft-long", 0.75), ("sft-rl+tuned", 0.76)):
            append_result(out / "results.jsonl",
                          _row(arm, seed, 1, base < rate, extras=tuning if "+" in arm else {}))
    [cell] = grid_cells([GridSource(label="t", folder=out)], n_boot=200)
    both, matched = cell["tests"]["rl_stage_tuned"], cell["tests"]["rl_stage_tuned_control"]
    assert (both["arm"], both["reference"]) == ("sft-rl+tuned", "sft+tuned")
    assert (matched["arm"], matched["reference"]) == ("sft-rl+tuned", "sft-long")
    assert both["direction"] == "better" and matched["direction"] == "not significant"
    table = grid_markdown([cell])
    assert "| the RL stage, both tuned | sft-rl+tuned − sft+tuned +0." in table
    assert "| the tuned RL stage against SFT as long | sft-rl+tuned − sft-long +0." in table


def test_no_rl_stage_contrast_without_both_arms(tmp_path: Path) -> None:
    out = tmp_path / "run"
    right = np.ones((10, 4), dtype=bool)
    for arm in ("none", "sft"):
        append_result(out / "results.jsonl", _row(arm, 0, 1 if arm == "sft" else 0, right))
    [cell] = grid_cells([GridSource(label="x", folder=out)], n_boot=50)
    assert "rl_stage" not in cell["tests"] and cell["winner"] in ("none", "sft")
    assert "| x | full | dev | 1 |" in grid_markdown([cell])


def test_core_minutes_take_the_median_seed_and_sum_rounds() -> None:
    right = np.ones((2, 4), dtype=bool)
    rows = [_row("sft", s, r, right, train_s=60.0) for s in (0, 1) for r in (1, 2)]
    assert core_minutes(rows, {}) == pytest.approx(4.0)  # 2 rounds x 60 s x 2 threads
    rows.append(_row("sft", 2, 1, right, train_s=6000.0))  # slowed by another job
    rows.append(_row("sft", 2, 2, right, train_s=60.0))
    assert core_minutes(rows, {}) == pytest.approx(4.0)  # the median seed


def test_costs_count_the_threads_each_unit_ran_on(tmp_path: Path) -> None:
    """A folder run locally on 2 threads, then given tuned arms on Ray (one CPU a task): each
    trial and reward model counts the threads it ran on, not the folder's last config."""
    def step(rel: str, result: dict) -> None:
        f = tmp_path / "steps" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps({"settings": {}, "result": result}))
    cfg = {"threads": 2, "ray": True, "cpus_per_task": 1}
    trials = "full/seed-0/round-1/tune-sft+tuned"
    step(f"{trials}/trial-0.json", {"train_seconds": 60.0, "executor": "ray"})  # before threads
    step(f"{trials}/trial-1.json", {"train_seconds": 60.0, "executor": "local"})
    step(f"{trials}/trial-2.json", {"train_seconds": 60.0, "executor": "ray", "threads": 4})
    assert tuning_core_minutes(tmp_path, cfg)[("full", "sft+tuned")] == pytest.approx(1 + 2 + 4)
    # a reward model trained locally (2 threads), reused by an arm that ran on Ray (1 thread)
    right = np.ones((2, 4), dtype=bool)
    rows = [_row("sft-rl+tuned", 0, 1, right, train_s=60.0, extras={"threads": 1})]
    assert core_minutes(rows, {("full", 0, 1): 30.0 * 2}) == pytest.approx(1 + 1)


@pytest.mark.parametrize("spec, problem", [("nolabel", "LABEL=FOLDER"),
                                           ("x=/nonexistent", "no results.jsonl")])
def test_a_bad_source_names_the_problem(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        GridSource.parse(spec)


def test_the_figure_has_a_row_per_cell(tmp_path: Path) -> None:
    from kvloop.compare.grid import grid_figure

    cells = grid_cells([GridSource("a", _folder(tmp_path))], n_boot=50)
    fig = grid_figure(cells + cells)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a · full · dev"] * 2
    fig.savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 1000


def test_a_start_model_per_seed_widens_the_intervals_to_the_seeds(tmp_path: Path) -> None:
    """With start_per_seed the grid draws seeds too (as the folder's own report does): two
    seeds whose gains differ a lot give a wider interval than documents alone."""
    rng = np.random.default_rng(2)
    out = tmp_path / "run"
    for seed, gain in ((0, 0.05), (1, 0.3), (2, 0.0)):
        base = rng.random((60, len(FIELDS)))
        append_result(out / "results.jsonl", _row("none", seed, 0, base < 0.5))
        append_result(out / "results.jsonl", _row("sft-long", seed, 1, base < 0.6))
        append_result(out / "results.jsonl", _row("sft-rl", seed, 1, base < 0.6 + gain))
    widths = {}
    for per_seed in (False, True):
        (out / "config.json").write_text(json.dumps({"start_per_seed": per_seed}))
        [cell] = grid_cells([GridSource(label="x", folder=out)], n_boot=300)
        d = cell["tests"]["rl_stage"]["f1_diff"]
        widths[per_seed] = d["high"] - d["low"]
        assert cell["start_per_seed"] is per_seed
    assert widths[True] > 1.5 * widths[False]
    assert "| x | full | dev | 3 (a start each) |" in grid_markdown([cell])


def test_a_cell_of_a_comparison_still_running_is_marked_unfinished(tmp_path: Path) -> None:
    """The folder's config plans 3 seeds and 2 rounds: a cell short of either is never read
    as the finished answer."""
    out = _folder(tmp_path)  # seeds 0 and 1, round 1
    (out / "config.json").write_text(json.dumps({"seeds": [0, 1], "rounds": 1}))
    [cell] = grid_cells([GridSource(label="x", folder=out)], n_boot=50)
    assert cell["complete"] and cell["missing_seeds"] == {}
    (out / "config.json").write_text(json.dumps({"seeds": [0, 1, 2], "rounds": 1}))
    [cell] = grid_cells([GridSource(label="x", folder=out)], n_boot=50)
    assert not cell["complete"] and cell["missing_seeds"]["sft"] == [2]
    assert "| x (unfinished) | full | dev |" in grid_markdown([cell])
    (out / "config.json").write_text(json.dumps({"seeds": [0, 1], "rounds": 2}))
    [cell] = grid_cells([GridSource(label="x", folder=out)], n_boot=50)
    assert not cell["complete"]  # its last round is round 1 of 2
    [cell] = grid_cells([GridSource(label="x", folder=out)], n_boot=50, every_round=True)
    assert cell["complete"]  # round 1 as a budget of its own is finished


def test_the_runner_up_is_another_model_not_the_winners_tuned_twin(tmp_path: Path) -> None:
    """``sft-rl+tuned`` that kept its defaults carries ``sft-rl``'s rows (``same_as``): the
    winner's margin is over ``sft-long``, the next other model, never an exact 0 over itself."""
    folder = _folder(tmp_path)
    for row in [r for r in read_results(folder / "results.jsonl") if r.arm == "sft-rl"]:
        append_result(folder / "results.jsonl",
                      replace(row, arm="sft-rl+tuned", extras={**row.extras, "same_as": "sft-rl"}))
    [cell] = grid_cells([GridSource.parse("x=" + str(folder))], n_boot=200)
    assert cell["f1"]["sft-rl+tuned"] == cell["f1"]["sft-rl"]
    win = cell["tests"]["winner"]
    assert {win["arm"], win["reference"]} & {"sft-rl", "sft-rl+tuned"}
    assert "sft-long" in (win["arm"], win["reference"])
    assert win["f1_diff"]["low"] > 0
