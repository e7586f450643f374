"""``kvloop compare`` plumbing: configs and presets, step records, result rows, data splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_rl_trainer import _mock_receipts

from extractor.document import write_jsonl
from kvloop.compare.arms import ARMS, SFT_STAGE_EPOCHS
from kvloop.compare.config import PRESETS, CompareConfig, load_config
from kvloop.compare.data import prepare, read_docs, unseen_vendor
from kvloop.compare.records import ArmResult, append_result, read_results
from kvloop.compare.steps import SettingsMismatch, StepCache
from training.cli import ConfigError


def _row(arm: str = "sft", seed: int = 0, rnd: int = 1, counts=None) -> ArmResult:
    counts = counts or [[1, 0, 0], [0, 1, 1]]
    return ArmResult(arm, seed, rnd, "dev", ["total"], ["a", "b"], [[1], [0]], counts, 10, 60.0)


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_and_validate(name: str) -> None:
    cfg = load_config(name)
    assert cfg.baseline in cfg.arms and "none" in cfg.arms and cfg.seeds


def test_config_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("arms: [sft, telepathy]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.yaml.*telepathy"):
        load_config(str(bad))
    bad.write_text("armz: [sft]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.yaml.*unknown key.*armz"):
        load_config(str(bad))
    with pytest.raises(ValueError, match="baseline"):
        CompareConfig(arms=["none", "rl"], baseline="sft")
    cfg = load_config("demo", {"seeds": [7], "arms": ["none", "sft"], "out": None})
    assert cfg.seeds == [7] and cfg.arms == ["none", "sft"] and cfg.out == "runs/compare-demo"


def test_arm_options_override_an_arms_defaults() -> None:
    cfg = CompareConfig(arms=["sft", "rl"], arm_options={"rl": {"kl_coef": 0.5}})
    rl = {a.name: a for a in cfg.arms_to_run}["rl"]
    assert rl.options == {"algorithm": "rloo", "kl_coef": 0.5}
    assert ARMS["rl"].options == {"algorithm": "rloo"}  # the registry is not changed
    assert cfg.needs_reward


@pytest.mark.parametrize(("key", "values", "match"), [
    ("arm_options", {"rl": {"kl_coeff": 0.5}},
     r"unknown option\(s\) \['kl_coeff'\] for arm 'rl'; valid: \[.*'kl_coef'"),
    ("arm_options", {"rerank": {"lr": 0.1}}, r"unknown option\(s\) \['lr'\].*valid: \[\]"),
    ("trainer_options", {"learning_rate": 0.1}, r"trainer_options: unknown field.*'lr'"),
    ("start_options", {"epoch": 3}, r"start_options: unknown field.*'epochs'"),
    ("reward_options", {"pair_wieght": 1}, r"reward_options: unknown field.*'pair_weight'"),
])
def test_unknown_option_keys_are_errors_listing_the_valid_ones(
        tmp_path: Path, key: str, values: dict, match: str) -> None:
    """A misspelt option is refused by name (scikit-learn's habit), never dropped."""
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"arms": ["none", "sft", "rerank", "rl"], key: values}),
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        load_config(str(path))


def test_arms_own_what_they_need_and_when_they_run() -> None:
    """The runner asks the arm; these are the answers the comparison's design rests on."""
    floor, gold, rerank, rl = ARMS["none"], ARMS["gold"], ARMS["rerank"], ARMS["rl"]
    assert floor.from_start_model() and not floor.runs_at(1, 2)
    assert [gold.runs_at(r, 2) for r in (1, 2)] == [False, True]
    assert gold.budget({"reviewed": 20, "seconds": 5.0}, 40)["reviewed"] == 40
    assert rerank.needs_reward() and rl.needs_reward() and not ARMS["sft"].needs_reward()
    assert rl.row_extras({"reward_pair_acc": 0.9}) == {"reward_pair_acc": 0.9}
    assert ARMS["dpo"].row_extras({"reward_pair_acc": 0.9}) == {}
    assert not rerank.trainer and ARMS["vendor-memory"].config_class() is None
    from kvloop.compare.arms import ceiling_arm, floor_arm, references

    assert (floor_arm(), ceiling_arm(), references()) == ("none", "gold", ("gold", "rl-oracle"))


def test_sft_ul_long_is_one_arms_entry() -> None:
    """The arm the benchmarks had not measured: sft-ul as long as sft-long."""
    arm = ARMS["sft-ul-long"]
    assert arm.trainer == "sft" and arm.options == {"unlikelihood_weight": 1.0,
                                                   "epochs": SFT_STAGE_EPOCHS}
    assert CompareConfig(arms=["none", "sft", "sft-ul-long"]).arms_to_run[-1] == arm


def test_sft_long_runs_sft_as_long_as_sft_rls_sft_stage() -> None:
    import dataclasses

    from training.sft_rl_config import SFTThenRLConfig

    stage = next(f.default for f in dataclasses.fields(SFTThenRLConfig) if f.name == "sft_epochs")
    assert SFT_STAGE_EPOCHS == stage  # the control must stay as long as the stage it controls
    # the arm's epochs win over the config's (the RL stage's), as for every arm option
    cfg = CompareConfig(arms=["sft", "sft-long", "sft-rl"], epochs=2)
    long = {a.name: a for a in cfg.arms_to_run}["sft-long"]
    assert long.trainer == "sft" and long.options == {"epochs": stage}
    assert not long.needs_reward()


def test_step_cache_records_settings_and_refuses_other_ones(tmp_path: Path) -> None:
    steps = StepCache(tmp_path)
    assert steps.get("seed-0/start", {"a": 1}) is None
    steps.put("seed-0/start", {"a": 1}, {"version": "v1"})
    assert steps.get("seed-0/start", {"a": 1}) == {"version": "v1"}
    with pytest.raises(SettingsMismatch, match="other settings"):
        steps.get("seed-0/start", {"a": 2})
    assert not list(tmp_path.rglob("*.tmp"))


def test_results_file_keeps_the_latest_row_per_key_and_survives_a_torn_line(
        tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    append_result(path, _row())
    append_result(path, _row(seed=1))
    append_result(path, _row(counts=[[1, 0, 0], [1, 0, 0]]))  # the same unit, redone
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"arm": "sft", "seed"')  # killed mid-write
    rows = read_results(path)
    assert sorted((r.seed, r.f1) for r in rows) == [(0, 1.0), (1, 2 / 4)]
    with pytest.raises(ValueError, match="documents but"):
        ArmResult("x", 0, 0, "dev", ["f"], ["a"], [], [], 0, 0.0)


def test_prepare_hides_pool_gold_and_slices_unseen_vendors(tmp_path: Path) -> None:
    docs = _mock_receipts(range(40))
    data = tmp_path / "docs.jsonl"
    write_jsonl(str(data), docs)
    cfg = CompareConfig(data=str(data), start_docs=4, pool_docs=10, rounds=2,
                        docs_per_round=5, arms=["none", "sft"], out=str(tmp_path / "out"))
    prepared = prepare(cfg, tmp_path / "out")
    pool = read_docs(prepared.path("pool"))
    hidden = read_docs(prepared.path("pool-nogold"))
    assert [d.id for d in pool] == [d.id for d in hidden] == prepared.pool
    assert all(d.gold for d in pool) and all(d.gold is None for d in hidden)
    assert not set(prepared.start) & set(prepared.pool)
    dev = read_docs(prepared.path("eval-dev"))
    assert not {d.id for d in dev} & set(prepared.pool + prepared.start + prepared.select)
    # 8 mock shops repeat: every dev vendor is a fit vendor, so no unseen-vendor set
    assert "unseen-vendor" not in prepared.eval_sets
    assert unseen_vendor(dev, docs[:1]) == [d for d in dev
                                            if d.gold["company"] != docs[0].gold["company"]]
    with pytest.raises(ValueError, match="more than the 10 pool"):
        prepare(CompareConfig(data=str(data), start_docs=4, pool_docs=10, rounds=3,
                              docs_per_round=5, arms=["none", "sft"]), tmp_path / "o2")


def test_compare_lists_arms(capsys: pytest.CaptureFixture[str]) -> None:
    from kvloop.cli import main

    assert main(["compare", "--list-arms"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ARMS)
    assert json.loads(json.dumps(CompareConfig().export()))["arms"] == list(ARMS)


def test_a_shared_start_model_does_not_depend_on_the_seeds_asked_for(tmp_path: Path) -> None:
    """The shared start model records the seed it was trained with (the last of ``seeds``);
    ``start_seed`` lets ``--seeds 0`` reuse a finished ``[0, 1, 2]`` run's start model instead
    of refusing it (or training another)."""
    from kvloop.compare.runner import Comparison

    docs = _mock_receipts(range(40))
    data = tmp_path / "docs.jsonl"
    write_jsonl(str(data), docs)
    base = {"data": str(data), "start_docs": 4, "pool_docs": 10, "rounds": 1,
            "docs_per_round": 5, "arms": ["none", "sft"], "out": str(tmp_path / "out")}
    full = Comparison(CompareConfig(**base, seeds=[0, 1, 2]))
    full.data = full.prepare_data()
    settings = {"arch": "minilm", "epochs": 10, "docs": full.data.start,
                "select": full.data.select, "options": {}}
    finished = {"version": "kv.ensemble.v1@000000000000", "seconds": 1.0, "best_epoch": 1,
                "select_f1": 0.5}
    full.steps.put("start/shared", {**settings, "seed": 2}, finished)  # what a run wrote
    assert full.start_models() == {"shared": finished}
    subset = Comparison(CompareConfig(**base, seeds=[0]))
    subset.data = subset.prepare_data()
    with pytest.raises(SettingsMismatch, match="seed"):
        subset.start_models()  # seed 0 would be another start model: refused, not retrained
    pinned = Comparison(CompareConfig(**base, seeds=[0], start_seed=2))
    pinned.data = pinned.prepare_data()
    assert pinned.start_models() == {"shared": finished}


def test_regime_flags_choose_the_regimes_and_each_gets_its_operator() -> None:
    from argparse import Namespace

    from kvloop.commands.compare import regime_overrides
    from kvloop.compare.config import CompareConfig
    from kvloop.compare.operator import regime_label

    def flags(regime=None, error_rate=None):
        return Namespace(regime=regime, error_rate=error_rate)

    base = {"regime": "choice-only"}
    assert regime_overrides(flags(), base) == {}
    more = regime_overrides(flags(["full", "noisy", "full"], 0.1), base)
    assert more == {"regimes": ["full", "noisy"],
                    "operator": {"regime": "choice-only", "error_rate": 0.1}}
    cfg = CompareConfig(data="demo", **more)
    assert cfg.operators == [{"regime": "full"},
                             {"regime": "noisy", "noise_base": "choice-only", "error_rate": 0.1}]
    assert [regime_label(o) for o in cfg.operators] == ["full", "noisy-choice-only-0.1"]
    assert CompareConfig(data="demo").operators == [{"regime": "full"}]
    with pytest.raises(ValueError, match="regimes"):
        CompareConfig(data="demo", regimes=["full", "full"])
    with pytest.raises(ValueError, match="regimes"):
        CompareConfig(data="demo", regimes=["typed"])


def test_a_thread_limit_below_the_units_threads_is_warned_of() -> None:
    """OMP_THREAD_LIMIT=1 (what tesseract wants) left in a comparison's environment runs every
    unit on one core while its rows count two: said, with the fix."""
    from kvloop.compare.runner import thread_limit_warning

    warning = thread_limit_warning(2, {"OMP_THREAD_LIMIT": "1"})
    assert warning is not None
    assert "OMP_THREAD_LIMIT=1" in warning and "overstate" in warning and "unset it" in warning
    assert thread_limit_warning(2, {"OMP_THREAD_LIMIT": "2"}) is None
    assert thread_limit_warning(2, {"OMP_THREAD_LIMIT": "4"}) is None
    assert thread_limit_warning(2, {}) is None
    assert thread_limit_warning(1, {"OMP_THREAD_LIMIT": "1"}) is None
