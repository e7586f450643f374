"""``kvloop.compare.analysis`` and ``kvloop.compare.report`` on hand-built ``ArmResult`` rows."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from kvloop.compare.analysis import analyse, seed_spread
from kvloop.compare.records import ArmResult
from kvloop.compare.report import write_report

FIELDS = ["company", "date", "address", "total"]
SETS = ("dev", "unseen-vendor")
N_BOOT = 300


def _mock_result(arm: str, seed: int, rnd: int, eval_set: str, p_right: float,
                 salt: int = 0, n_docs: int = 20, **extras: object) -> ArmResult:
    """Fields right with probability ``p_right``; the same (seed, round, set, salt) gives the
    same outcomes, so every arm at round 0 (salt 0) is the same start model."""
    rng = np.random.default_rng([seed, rnd, zlib.crc32(eval_set.encode()), salt])
    correct = (rng.random((n_docs, len(FIELDS))) < p_right).astype(int).tolist()
    # a wrong value is both a false positive and a false negative
    counts = [[sum(r), len(r) - sum(r), len(r) - sum(r)] for r in correct]
    return ArmResult(arm, seed, rnd, eval_set, FIELDS,
                     [f"{eval_set}-{i:02d}" for i in range(n_docs)], correct, counts,
                     reviewed_docs=50 * rnd, operator_seconds=30.0 * 50 * rnd,
                     train_seconds=60.0 * rnd * (1 + salt), extras=dict(extras))


def _mock_results(quality: dict[str, float], seeds: tuple[int, ...] = (0, 1),
                  rounds: tuple[int, ...] = (0, 1), start: float = 0.6,
                  **extras: object) -> list[ArmResult]:
    """Every arm at ``start`` accuracy at round 0 and at ``quality[arm]`` afterwards."""
    return [_mock_result(arm, s, r, es, start if r == 0 else quality[arm],
                         0 if r == 0 else i + 1, **extras)
            for i, arm in enumerate(quality) for s in seeds for r in rounds for es in SETS]


def _verdict(a: dict, es: str = "dev", rnd: int = 1, regime: str = "default") -> dict:
    return next(v for v in a["verdicts"]
                if (v["regime"], v["eval_set"], v["round"]) == (regime, es, rnd))


def _comparison(a: dict, arm: str, role: str = "baseline", es: str = "dev",
                rnd: int = 1) -> dict:
    return next(c for c in a["comparisons"] if (c["arm"], c["role"], c["eval_set"],
                                                c["round"]) == (arm, role, es, rnd))


@pytest.fixture(scope="module")
def clear_winner() -> list[ArmResult]:
    return _mock_results({"sft": 0.6, "rl": 0.95})


@pytest.fixture(scope="module")
def clear_analysis(clear_winner: list[ArmResult]) -> dict:
    return analyse(clear_winner, n_boot=N_BOOT)


def test_finds_the_better_arm_and_calls_it_significant(clear_analysis: dict) -> None:
    for es in SETS:
        v = _verdict(clear_analysis, es)
        assert v["best_arm"] == "rl" and v["beats_baseline"] == ["rl"]
        assert v["beats_baseline_significantly"]
        c = _comparison(clear_analysis, "rl", es=es)
        assert c["significant"] and c["direction"] == "better"
        assert c["f1_diff"]["low"] > 0 and c["mcnemar"]["c"] > c["mcnemar"]["b"]
        assert c["n_docs"] == 20 and c["n_pairs"] == 40            # 20 docs x 2 seeds
        assert c["mcnemar"]["n"] == 160                            # x 4 fields
    assert "sft is not enough" in clear_analysis["summary"][0]
    assert "rl beats it significantly" in " ".join(clear_analysis["summary"])


def test_round_zero_arms_are_identical(clear_analysis: dict) -> None:
    c = _comparison(clear_analysis, "rl", rnd=0)
    assert c["f1_diff"]["diff"] == 0 and c["mcnemar"]["discordant"] == 0
    assert c["mcnemar"]["p_value"] == 1.0 and not c["significant"]


def test_equal_arms_are_not_significant() -> None:
    a = analyse(_mock_results({"sft": 0.75, "rl": 0.75}), n_boot=N_BOOT)
    for es in SETS:
        c = _comparison(a, "rl", es=es)
        assert not c["significant"] and c["direction"] == "not significant"
        assert c["f1_diff"]["low"] < 0 < c["f1_diff"]["high"] or c["p_holm"] >= 0.05
        assert not _verdict(a, es)["beats_baseline"]
    assert "sft is enough here" in a["summary"][0]
    assert "no arm beats it significantly" in " ".join(a["summary"])


def test_worse_arm_is_significantly_worse() -> None:
    a = analyse(_mock_results({"sft": 0.95, "dpo": 0.55}), n_boot=N_BOOT)
    c = _comparison(a, "dpo")
    assert c["significant"] and c["direction"] == "worse"
    v = _verdict(a)
    assert v["best_arm"] == "sft" and v["worse_than_baseline"] == ["dpo"]
    assert "Significantly worse than sft: dpo" in v["text"]


def test_per_seed_mean_and_sd_hand_case() -> None:
    # seed 0: tp 1, fp 1, fn 1 -> F1 0.5; seed 1: tp 2 -> F1 1.0
    rows = [ArmResult("sft", 0, 1, "dev", ["total"], ["a", "b"], [[1], [0]],
                      [[1, 0, 0], [0, 1, 1]], 10, 300.0, 30.0),
            ArmResult("sft", 1, 1, "dev", ["total"], ["a", "b"], [[1], [1]],
                      [[1, 0, 0], [1, 0, 0]], 12, 420.0, 50.0)]
    cell = analyse(rows, n_boot=50)["cells"][0]
    assert [p["f1"] for p in cell["f1_per_seed"]] == [0.5, 1.0]
    assert cell["f1_seed_mean"] == pytest.approx(0.75)
    assert cell["f1_seed_sd"] == pytest.approx(np.std([0.5, 1.0], ddof=1))   # 0.354
    assert cell["f1"]["value"] == pytest.approx(6 / 8)    # pooled: tp 3, fp 1, fn 1
    assert (cell["n_docs"], cell["n_rows"], cell["n_seeds"]) == (2, 4, 2)
    assert cell["field_accuracy"] == {"total": 0.75} and cell["doc_accuracy"] == 0.75
    assert (cell["reviewed_docs"], cell["operator_minutes"]) == (11.0, 6.0)
    assert (cell["train_seconds"], cell["train_seconds_total"]) == (40.0, 80.0)
    assert seed_spread([0.8]) == (0.8, None)


def test_floor_and_ceiling_words() -> None:
    rows = _mock_results({"sft": 0.8, "rl": 0.8, "gold": 0.97}, seeds=(0, 1))
    rows += [_mock_result("none", s, 0, es, 0.6) for s in (0, 1) for es in SETS]
    a = analyse(rows, n_boot=N_BOOT)
    c = _comparison(a, "sft", role="floor")
    assert c["reference_round"] == 0 and c["significant"] and c["direction"] == "better"
    v = _verdict(a)
    assert v["best_arm"] in ("sft", "rl")                     # gold is a reference, not a winner
    assert set(v["beats_floor"]) == {"sft", "rl", "gold"} and not v["not_beating_floor"]
    assert 0 < v["gap_closed"]["sft"] < 1
    assert "Every arm beats the start model (none" in v["text"]
    assert "start-to-gold gap closed" in v["text"]
    # one Holm family per (regime, eval set, round): rl and gold vs sft, three vs the floor
    assert {_comparison(a, arm, role, "dev", 1)["family_size"]
            for arm, role in (("rl", "baseline"), ("gold", "floor"))} == {5}


def test_references_alone_beside_the_baseline_are_reported_not_hidden() -> None:
    """Only the ablation and the ceiling beside SFT: the text says how each stands to SFT,
    and not that no other arm was scored against it."""
    a = analyse(_mock_results({"sft": 0.8, "rl-oracle": 0.55, "gold": 0.97}), n_boot=N_BOOT)
    v = _verdict(a)
    assert v["best_arm"] == "sft" and not v["beats_baseline"] and not v["worse_than_baseline"]
    assert v["references_vs_baseline"] == {"rl-oracle": "worse", "gold": "better"}
    assert "no other arm was scored against it" not in v["text"]
    assert "no other arm learning from these reviews was run" in v["text"]
    diff = _comparison(a, "rl-oracle")["f1_diff"]
    assert (f"rl-oracle {diff['diff']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}] "
            "(significantly worse)") in v["text"]
    assert "gold +" in v["text"] and "(significantly better)" in v["text"]


def test_floor_under_one_seed_serves_every_seed() -> None:
    rows = _mock_results({"sft": 0.9, "rl": 0.9}, seeds=(0, 1, 2))
    rows += [_mock_result("none", 0, 0, es, 0.6) for es in SETS]    # one shared start model
    a = analyse([r for r in rows if not (r.arm == "sft" and r.seed == 2)], n_boot=N_BOOT)
    assert _comparison(a, "rl", role="floor")["n_pairs"] == 60      # 3 seeds x 20 docs
    assert _comparison(a, "rl")["n_pairs"] == 40                    # sft lacks seed 2


def test_regimes_are_told_apart() -> None:
    full = _mock_results({"sft": 0.6, "rl": 0.95}, regime="full")
    partial = _mock_results({"sft": 0.8, "rl": 0.8}, regime="partial")
    a = analyse(full + partial, n_boot=N_BOOT)
    assert a["regimes"] == ["full", "partial"]
    assert _verdict(a, regime="full")["beats_baseline"] == ["rl"]
    assert _verdict(a, regime="partial")["beats_baseline"] == []
    assert a["summary"][0] == "The answer depends on the feedback regime."
    assert any(s.startswith("Under the partial regime: sft is enough") for s in a["summary"])
    # A regime without the baseline has no answer, so nothing to be "the same" as.
    rl_only = [r for r in partial if r.arm != "sft"]
    b = analyse(full + rl_only, n_boot=N_BOOT)
    assert b["summary"][0].startswith("Under the full regime: sft is not enough")
    assert not any("every feedback regime" in s or "depends on" in s for s in b["summary"])
    assert any("sft was not run" in s for s in b["summary"])


def test_overoptimisation_note() -> None:
    rows = []
    for rnd, p, reward, kl in ((0, 0.6, None, None), (1, 0.95, 0.4, 0.5), (2, 0.55, 0.9, 3.0)):
        logged = {} if reward is None else {"mean_reward": reward, "kl": [0.1, kl]}
        rows += [_mock_result(arm, s, rnd, es, 0.6 if rnd == 0 else q, salt, **extras)
                 for arm, q, salt, extras in (("sft", 0.7, 1, {}), ("rl", p, 2, logged))
                 for s in (0, 1) for es in SETS]
    a = analyse(rows, n_boot=N_BOOT)
    notes = [n for n in a["overoptimisation"] if n["eval_set"] == "dev"]
    assert [n["arm"] for n in notes] == ["rl"]
    assert notes[0]["peak_round"] == 1 and notes[0]["kl"] == [0.5, 3.0]   # a list's last value
    assert notes[0]["significant"]
    assert any("over-optimisation" in s and s.startswith("rl on dev") for s in a["summary"])


def test_analysis_is_plain_json(clear_analysis: dict) -> None:
    assert json.loads(json.dumps(clear_analysis)) == clear_analysis
    assert clear_analysis["arms"] == ["sft", "rl"]
    assert clear_analysis["eval_sets"] == list(SETS)
    assert analyse([])["summary"] == []


def test_seeded_analysis_is_deterministic(clear_winner: list[ArmResult]) -> None:
    assert analyse(clear_winner, n_boot=100, seed=3) == analyse(clear_winner, n_boot=100, seed=3)


CONFIG = {"name": "unit", "data": "demo", "seeds": [0, 1], "baseline": "sft"}


def test_report_files(tmp_path: Path, clear_winner: list[ArmResult],
                      clear_analysis: dict) -> None:
    paths = write_report(clear_analysis, clear_winner, CONFIG, tmp_path / "out")
    assert {k: p.name for k, p in paths.items()} == {
        "html": "report.html", "json": "report.json", "md": "summary.md"}
    assert all(p.is_file() for p in paths.values())
    page = paths["html"].read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 4   # F1 x2, field accuracy, wall time
    pngs = sorted(p.name for p in (tmp_path / "out" / "figures").iterdir())
    assert pngs == [f"default-{n}.png" for n in ("f1_vs_minutes", "f1_vs_reviewed",
                                                  "field_accuracy", "wall_time")]
    assert (tmp_path / "out/figures/default-f1_vs_reviewed.png").read_bytes()[:8] == (
        b"\x89PNG\r\n\x1a\n")
    assert "<script" not in page and "skipped:" in page  # no reward model, no KL logged
    md = paths["md"].read_text(encoding="utf-8")
    assert "rl beats it significantly" in md
    rl_rows = [line for line in md.splitlines() if line.startswith("| rl | ")]
    assert len(rl_rows) == 2                            # one table per evaluation set
    assert all(r.endswith("▲ |") and r.count("▲") == 1 for r in rl_rows)  # better at round 1
    saved = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert saved["analysis"]["verdicts"] == clear_analysis["verdicts"]
    assert len(saved["rows"]) == len(clear_winner) and "correct" not in saved["rows"][0]


def test_report_with_every_extra(tmp_path: Path) -> None:
    rows = _mock_results({"sft": 0.7, "rl": 0.8}, rounds=(0, 1, 2), reward_pair_acc=0.81,
                         mean_reward=0.3, mean_kl=0.2, regime="full", threads=2)  # the runner's names
    paths = write_report(analyse(rows, n_boot=100), rows, CONFIG, tmp_path)
    page = paths["html"].read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 6 and "skipped:" not in page


def test_report_without_extras_or_training_time(tmp_path: Path) -> None:
    rows = [_mock_result(arm, 0, r, "dev", 0.7, i) for i, arm in enumerate(("sft", "dpo"))
            for r in (0, 1)]
    for r in rows:
        r.train_seconds = 0.0
    paths = write_report(analyse(rows, n_boot=100), rows, {}, tmp_path)
    page = paths["html"].read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 3 and page.count("skipped:") == 3
