"""scripts/bench_trainers.py: the flags each row runs its trainer with, the simulated operators,
and a tiny end-to-end run on the SROIE sample (slow: it trains every row, then re-runs from the
cache)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from extractor.document import RECEIPT_SCHEMA, Candidate

REPO = Path(__file__).resolve().parents[1]


def _load_script() -> ModuleType:
    if "bench_trainers" in sys.modules:
        return sys.modules["bench_trainers"]
    spec = importlib.util.spec_from_file_location("bench_trainers",
                                                  REPO / "scripts" / "bench_trainers.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_trainers"] = mod
    spec.loader.exec_module(mod)
    return mod


bench = _load_script()


def _args(**over) -> argparse.Namespace:
    args = bench.make_parser().parse_args([])
    for k, v in over.items():
        setattr(args, k, v)
    return args


def _view(value: str | None, candidates: list[str], name: str = "total"):
    from feedback_ui.service import FieldView

    cands = [Candidate(v, 0.5, [i]) for i, v in enumerate(candidates)]
    return FieldView(spec=RECEIPT_SCHEMA[name], value=value, confidence=0.5, candidates=cands,
                     state="needs_review", problem=None, model_value=value)


# -- flags ---------------------------------------------------------------------------------------

def test_config_flags_booleans_alternatives_and_missing() -> None:
    from training.sft_config import SFTConfig

    flags, missing = bench.config_flags(SFTConfig, {
        "init": "m", ("max_dev_docs", "dev_max_docs"): 3, "tesseract_profile": False,
        "dev_data": None, "loss_weights": [1, 2, 3], "no_such_field": 1})
    assert flags == ["--init", "m", "--max-dev-docs", "3", "--no-tesseract-profile",
                     "--loss-weights", "1", "2", "3"]
    assert missing == ["no_such_field"]


@pytest.mark.parametrize("row", [r for r in bench.ROWS if r.trainer], ids=lambda r: r.name)
def test_every_row_parses_under_its_trainers_config(row, tmp_path: Path) -> None:
    from training.cli import parse_config

    cls = bench.trainer_config(row.trainer)
    if cls is None:
        pytest.skip(f"kvloop train {row.trainer} is not in this checkout")
    args = _args(max_dev_docs=3, epochs=1)
    flags, _ = bench.config_flags(cls, bench.row_values(row, args, tmp_path,
                                                        (args.data, "calibration")))
    cfg = parse_config(cls, flags)
    assert cfg.init == str(tmp_path / "start") and cfg.out == str(tmp_path / "models" / row.name)
    assert cfg.epochs == 1 and cfg.seed == args.seed and cfg.store.startswith("sqlite:///")
    # epochs are chosen on calibration: dev is the test set the rows are compared on
    assert (cfg.dev_data, cfg.dev_split) == (args.data, "calibration")
    if row.name == "sft-ul":
        assert cfg.unlikelihood_weight == args.unlikelihood_weight > 0
    if row.trainer in ("rl", "sft-rl"):
        assert cfg.reward == str(tmp_path / "models" / "reward")
        assert cfg.algorithm == {"rl-ppo": "ppo", "rl-ppo2": "ppo"}.get(row.name, "rloo")
        if cfg.algorithm == "ppo":  # given in the row, so it keeps its measured meaning
            assert cfg.ppo_epochs == {"rl-ppo": 4, "rl-ppo2": 2}[row.name]
    if row.trainer == "sft-rl":
        assert cfg.sft_epochs == 1  # both stages run --epochs
    if row.trainer == "dpo":
        assert cfg.loss_type == {"dpo-dpop": "dpop", "dpo-diff": "diff_words"}.get(row.name,
                                                                                "dpo")
    if row.trainer == "reward":
        assert cfg.calib_data == ""  # a reward model refuses one
    else:
        assert cfg.calib_data == args.data and cfg.tesseract_profile is False


def test_a_missing_trainer_is_skipped_with_a_note(tmp_path: Path) -> None:
    row = bench.Row("nope", "no-such-trainer")
    got = bench.trainer_step(row, _args(), tmp_path, 4, ("d", "calibration"))
    assert "not in this checkout" in got["skipped"]


def test_selected_adds_what_a_row_needs_and_keeps_run_order() -> None:
    assert [r.name for r in bench.selected("rl,sft")] == ["sft", "reward", "rl"]
    assert [r.name for r in bench.selected("sft-rl,rl-ppo")] == ["reward", "rl-ppo", "sft-rl"]
    with pytest.raises(SystemExit):
        bench.selected("sft,bogus")


# -- simulated operators -------------------------------------------------------------------------

@pytest.mark.parametrize("value, cands, gold, full, choice_only", [
    ("9.00", ["9.00", "7.00"], "9.00", ("accept", None), ("accept", None)),
    ("7.00", ["7.00", "9.00"], "9.00", ("pick", 1), ("pick", 1)),
    ("7.00", ["7.00"], "9.00", ("edit", None), ("reject", None)),
    ("7.00", ["7.00"], None, ("not_present", None), ("not_present", None)),
])
def test_the_operators(value, cands, gold, full, choice_only) -> None:
    from kvloop.compare.operator import choice_only_choice, full_choice

    view = _view(value, cands)
    f, c = full_choice(view, gold), choice_only_choice(view, gold)
    assert (f.action, f.pick_index) == full and (c.action, c.pick_index) == choice_only
    if f.action == "edit":
        assert f.value == gold


def test_choice_only_cannot_express_a_missed_value() -> None:
    """Nothing shown, no alternative right: nothing to reject or pick; the document is skipped."""
    from kvloop.compare.operator import choice_only_choice, full_choice

    assert choice_only_choice(_view(None, []), "9.00") is None
    assert full_choice(_view(None, []), "9.00").action == "edit"


# -- end to end ----------------------------------------------------------------------------------

TINY = ["--arch", "tiny", "--start-docs", "3", "--pool-docs", "4", "--max-dev-docs", "3",
        "--max-calib-docs", "3", "--epochs", "1", "--start-epochs", "1"]


@pytest.mark.slow
def test_tiny_run_writes_every_row_then_reuses_the_cache(sroie_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    from feedback_ui.store import FeedbackStore

    # The four trainers (variants sft-ul and dpo-dpop only add a flag, checked above) and the
    # base epoch they are compared with: a minute or two on 2 cores.
    rows = [r.name for r in bench.ROWS
            if r.name in ("base-epoch", "sft", "reward", "rl", "dpo")]
    argv = [*TINY, "--data", str(sroie_dir), "--out", str(tmp_path / "b"),
            "--trainers", ",".join(rows)]
    t0 = time.perf_counter()
    assert bench.main(argv) == 0
    first_s = time.perf_counter() - t0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "b" / "bench-trainers.json").read_text())

    ran = {r["trainer"]: r for r in report["rows"][1:]}
    skipped = {s["trainer"] for s in report["skipped"]}
    for name in rows:
        exists = name == "base-epoch" or bench.trainer_config(
            next(r.trainer for r in bench.ROWS if r.name == name)) is not None
        assert (name in ran) == exists and (name in skipped) != exists
    for name, r in ran.items():
        assert r["wall_s"] > 0 and r["peak_rss_gb"] > 0, name
        assert f"| {name} |" in printed
        if name != "reward":
            assert 0 <= r["dev_lenient_f1"] <= 1 and r["vs_start"]["n_docs"] == 3
    start = report["rows"][0]
    assert start["dev_lenient_f1"] is not None and start["wall_s"] > 0
    if "reward" in ran:
        rm = report["reward_model"]
        assert rm["scoring"]["docs"] == 4 and rm["scoring"]["seconds"] > 0
        assert rm["best_of_k"]["start_f1"] == pytest.approx(start["dev_lenient_f1"])

    pool = report["pool"]
    assert pool["docs"] == 4 and pool["reviewed"] + pool["skipped_unexpressible"] == 4
    store = FeedbackStore(f"sqlite:///{tmp_path / 'b' / 'pool' / 'feedback.db'}")
    try:
        saves = store.saves()
        assert len(saves) == pool["reviewed"] == len(store.reviewed_doc_ids()) > 0
        assert {s.operator for s in saves} == {bench.OPERATOR}
    finally:
        store.close()

    t0 = time.perf_counter()
    assert bench.main(argv) == 0
    second_s = time.perf_counter() - t0
    again = json.loads((tmp_path / "b" / "bench-trainers.json").read_text())
    assert second_s < first_s / 2
    for key in ("rows", "skipped", "pool", "reward_model", "start"):
        assert again[key] == report[key], key

    # --start-model: a saved extractor becomes the start (copied, not retrained, not timed).
    reuse = [*TINY, "--data", str(sroie_dir), "--out", str(tmp_path / "c"), "--trainers", "sft",
             "--start-model", str(tmp_path / "b" / "start")]
    assert bench.main(reuse) == 0
    reused = json.loads((tmp_path / "c" / "bench-trainers.json").read_text())
    assert reused["start"]["version"] == report["start"]["version"]
    assert reused["start"]["reused"] == str((tmp_path / "b" / "start").resolve())
    assert reused["rows"][0]["wall_s"] is None
    assert reused["rows"][0]["dev_lenient_f1"] == pytest.approx(start["dev_lenient_f1"])
    assert [r["trainer"] for r in reused["rows"][1:]] == ["sft"]
