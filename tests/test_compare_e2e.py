"""``kvloop compare`` end to end on mock receipts with a tiny model: every arm runs and the
report is written; a comparison killed mid-run resumes and gives the numbers of one that was
never interrupted (same seed, same numbers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_rl_trainer import _mock_receipts

from extractor.document import write_jsonl
from kvloop.compare.arms import ARMS
from kvloop.compare.config import load_config
from kvloop.compare.records import read_results
from kvloop.compare.runner import Comparison

REPO = Path(__file__).resolve().parents[1]


def _config(tmp: Path, out: str, **over) -> Path:
    data = tmp / "docs.jsonl"
    if not data.is_file():
        write_jsonl(str(data), _mock_receipts(range(40)))
    cfg = {"name": "tiny", "data": str(data), "out": str(tmp / out), "seeds": [0],
           "arch": "tiny", "start_docs": 6, "start_epochs": 2, "pool_docs": 12, "rounds": 1,
           "docs_per_round": 4, "strategy": "least-confident", "epochs": 1, "n_boot": 100,
           "threads": 1, "max_select_docs": 4, "max_eval_docs": 6,
           "trainer_options": {"lr": 2e-3, "head_lr": 2e-3}, **over}
    path = tmp / f"{out}.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _numbers(out: Path) -> dict:
    return {r.key: (r.doc_ids, r.correct, r.counts, r.reviewed_docs, r.operator_seconds)
            for r in read_results(out / "results.jsonl")}


@pytest.mark.slow
def test_every_arm_runs_and_the_report_is_written(tmp_path: Path) -> None:
    cfg = load_config(str(_config(tmp_path, "all", arms=list(ARMS))))
    got = Comparison(cfg, command="kvloop compare --config all.yaml").run()
    rows = read_results(tmp_path / "all" / "results.jsonl")
    assert {(r.arm, r.round) for r in rows} == {(a, rnd) for a in ARMS for rnd in (0, 1)}
    by = {(r.arm, r.round): r for r in rows if r.eval_set == "dev"}
    assert by[("sft", 1)].reviewed_docs == 4 and by[("sft", 1)].operator_seconds > 0
    assert by[("gold", 1)].reviewed_docs == 12  # the ceiling read every pool document's gold
    assert by[("rl", 1)].extras["reward_pair_acc"] is not None
    assert "mean_kl" in by[("rl", 1)].extras and "mean_kl" in by[("ppo", 1)].extras
    assert by[("vendor-memory", 1)].extras["vendors_remembered"] >= 1
    # round 0 is the start model for every arm; the floor never changes
    assert len({json.dumps(by[(a, 0)].counts) for a in ARMS}) == 1
    assert by[("none", 1)].counts == by[("none", 0)].counts
    # weights are dropped once scored (cards stay), the reward model's too
    assert not list((tmp_path / "all").glob("full/seed-0/round-1/**/*.safetensors"))
    assert list((tmp_path / "all").glob("full/seed-0/round-1/sft/kvloop.json"))
    paths = got["paths"]
    html = Path(paths["html"]).read_text(encoding="utf-8")
    assert html.count("data:image/png;base64") >= 3
    summary = Path(paths["md"]).read_text(encoding="utf-8")
    assert "sft" in summary and "| vendor-memory |" in summary
    report = json.loads(Path(paths["json"]).read_text(encoding="utf-8"))
    assert report["analysis"]["verdicts"]


@pytest.mark.slow
def test_a_killed_comparison_resumes_with_the_same_numbers(tmp_path: Path) -> None:
    arms = ["none", "sft", "dpo", "vendor-memory"]
    killed = _config(tmp_path, "killed", arms=arms, rounds=2)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "kvloop.cli", "compare", "--config",
                             str(killed)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    first = tmp_path / "killed" / "steps" / "full" / "seed-0" / "round-1" / "arm-sft.json"
    deadline = time.time() + 600
    while not first.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the comparison ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "summary.md").exists()
    before = _numbers(tmp_path / "killed")
    assert ("full", "sft", 0, 1, "dev") in before
    assert ("full", "sft", 0, 2, "dev") not in before

    Comparison(load_config(str(killed))).run()  # the same command again: resumes
    Comparison(load_config(str(_config(tmp_path, "straight", arms=arms, rounds=2)))).run()
    resumed, straight = _numbers(tmp_path / "killed"), _numbers(tmp_path / "straight")
    assert set(resumed) == {("full", a, 0, r, "dev") for a in arms for r in (0, 1, 2)}
    assert resumed == straight
    # finished units were not redone: the sft model of round 1 is the one trained first
    assert {k: v for k, v in resumed.items() if k in before} == before


@pytest.mark.slow
def test_a_round_runs_as_ray_tasks_on_a_local_ray(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    cfg = load_config(str(_config(tmp_path, "ray", arms=["none", "sft", "vendor-memory"],
                                  seeds=[0, 1], ray=True, cpus_per_task=1)))
    Comparison(cfg).run()  # starts a local Ray on this machine's cores, shuts it down
    rows = read_results(tmp_path / "ray" / "results.jsonl")
    assert {(r.arm, r.seed, r.round) for r in rows} == {
        (a, s, rnd) for a in ("none", "sft", "vendor-memory") for s in (0, 1) for rnd in (0, 1)}
    assert {r.extras["executor"] for r in rows if r.arm == "sft" and r.round == 1} == {"ray"}


@pytest.mark.slow
def test_a_second_regime_into_the_same_folder_shares_the_start_and_the_report(
        tmp_path: Path) -> None:
    arms = ["none", "sft", "dpo"]
    path = _config(tmp_path, "regimes", arms=arms)
    Comparison(load_config(str(path))).run()
    start_step = (tmp_path / "regimes" / "steps" / "start" / "shared.json").read_bytes()
    full_rows = _numbers(tmp_path / "regimes")
    # both regimes in one run: the full regime's steps are all found done, choice-only runs
    both = load_config(str(path), {"regimes": ["full", "choice-only"]})
    got = Comparison(both).run()
    # the start model was not trained again, and the full regime's rows are all still there
    assert (tmp_path / "regimes" / "steps" / "start" / "shared.json").read_bytes() == start_step
    rows = _numbers(tmp_path / "regimes")
    assert {k: v for k, v in rows.items() if k[0] == "full"} == full_rows
    assert {k for k in rows if k[0] == "choice-only"} == {
        ("choice-only", a, 0, r, "dev") for a in arms for r in (0, 1)}
    assert (tmp_path / "regimes" / "choice-only" / "seed-0" / "feedback-round-1.db").is_file()
    # the round-0 rows are the same start model's under both regimes
    assert rows[("choice-only", "sft", 0, 0, "dev")] == rows[("full", "sft", 0, 0, "dev")]
    report = json.loads(Path(got["paths"]["json"]).read_text(encoding="utf-8"))
    assert set(report["analysis"]["regimes"]) == {"full", "choice-only"}
    summary = Path(got["paths"]["md"]).read_text(encoding="utf-8")
    assert "choice-only" in summary and "full" in summary
    # --baseline with --report-only: the same rows tested against another arm, nothing trained
    from kvloop.cli import main

    steps_before = sorted(p.name for p in (tmp_path / "regimes" / "steps").rglob("*.json"))
    assert main(["compare", "--config", str(path), "--regime", "full", "choice-only",
                 "--baseline", "dpo", "--report-only"]) == 0
    again = json.loads(Path(got["paths"]["json"]).read_text(encoding="utf-8"))
    assert again["analysis"]["method"]["baseline"] == "dpo"
    assert {c["reference"] for c in again["analysis"]["comparisons"]
            if c["role"] == "baseline"} == {"dpo"}
    assert sorted(p.name for p in (tmp_path / "regimes" / "steps").rglob("*.json")) == steps_before
    assert _numbers(tmp_path / "regimes") == rows


@pytest.mark.slow
def test_an_arm_added_later_gets_its_start_rows_and_the_reward_model_a_finished_round_dropped(
        tmp_path: Path) -> None:
    path = _config(tmp_path, "added", arms=["none", "rerank"], baseline="none")
    Comparison(load_config(str(path))).run()
    assert not list((tmp_path / "added").glob("full/seed-0/round-1/reward/*.safetensors"))
    # the same folder, one more arm reading the round's reward model: trained again, not a
    # "weights are missing" error, and the same model (same seed), so the same figures
    Comparison(load_config(str(path), {"arms": ["none", "rerank", "rl"]})).run()
    rows = read_results(tmp_path / "added" / "results.jsonl")
    dev = {r.arm: r for r in rows if r.eval_set == "dev" and r.round == 1}
    assert set(dev) == {"none", "rerank", "rl"}
    # the added arm's curve starts at the start model too, and no row was written twice
    assert {(r.arm, r.round) for r in rows if r.eval_set == "dev"} == {
        (a, rnd) for a in ("none", "rerank", "rl") for rnd in (0, 1)}
    lines = (tmp_path / "added" / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(rows)
    assert dev["rl"].extras["reward_pair_acc"] == dev["rerank"].extras["reward_pair_acc"]
    assert not list((tmp_path / "added").glob("full/seed-0/round-1/reward/*.safetensors"))


@pytest.mark.slow
def test_kept_reward_models_are_what_an_arm_added_later_reads(tmp_path: Path) -> None:
    path = _config(tmp_path, "kept", arms=["none", "rerank"], baseline="none",
                   keep_reward_models=True)
    Comparison(load_config(str(path))).run()
    weights = list((tmp_path / "kept").glob("full/seed-0/round-1/reward/*.safetensors"))
    assert weights  # kept, while the arms' own weights are dropped
    assert not list((tmp_path / "kept").glob("full/seed-0/round-1/rerank/*.safetensors"))
    before = {p: p.stat().st_mtime_ns for p in weights}
    step = next((tmp_path / "kept").glob("steps/full/seed-0/round-1/reward*"))
    recorded = step.read_bytes()
    Comparison(load_config(str(path), {"arms": ["none", "rerank", "rl"]})).run()
    # not trained again: the same files, untouched, and the same step record
    assert {p: p.stat().st_mtime_ns for p in weights} == before
    assert step.read_bytes() == recorded
    dev = {r.arm: r for r in read_results(tmp_path / "kept" / "results.jsonl")
           if r.eval_set == "dev" and r.round == 1}
    assert set(dev) == {"none", "rerank", "rl"}
