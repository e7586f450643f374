"""Equal tuning in ``kvloop compare`` (``kvloop.compare.search``, ``kvloop.compare.tuning``)
and the start model per seed with intervals that draw seeds too (``eval.bootstrap``'s
crossed bootstrap, ``kvloop.compare.analysis``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_compare_e2e import _config
from test_compare_report import _mock_results

from eval.bootstrap import (
    _crossed_sums,
    _draw_counts,
    crossed_bootstrap_ci,
    crossed_paired_bootstrap,
    f1_of_counts,
)
from kvloop.compare.analysis import analyse
from kvloop.compare.arms import ARMS, arm_named, references
from kvloop.compare.config import CompareConfig, load_config
from kvloop.compare.grid import GridSource, grid_cells, grid_markdown
from kvloop.compare.records import read_results
from kvloop.compare.runner import Comparison
from kvloop.compare.search import IntRange, Scale, best_trial, draw_trials
from kvloop.compare.tuning import (
    TuningConfig,
    choose_trial,
    default_settings,
    gain_text,
    trial_settings,
)
from training.config import ConfigError

# -- search spaces and trials -----------------------------------------------------------------


def test_trials_start_with_the_defaults_and_draw_within_the_ranges() -> None:
    space = {"epochs": IntRange(1, 4), "lr": Scale(0.2, 5.0, tied_fields=("head_lr",))}
    defaults = {"epochs": 2, "lr": 1e-3, "head_lr": 4e-3}
    trials = draw_trials(space, defaults, 12, seed=3, key="sft")
    assert len(trials) == 12 and trials[0] == defaults
    for t in trials[1:]:
        assert 1 <= t["epochs"] <= 4
        assert 0.2e-3 * 0.999 <= t["lr"] <= 5e-3 * 1.001
        # head_lr moves by lr's factor (one step size), to 3 significant digits
        assert t["head_lr"] == pytest.approx(4 * t["lr"], rel=5e-3)
    assert draw_trials(space, defaults, 12, seed=3, key="sft") == trials  # seeded
    assert draw_trials(space, defaults, 12, seed=3, key="sft-ul") != trials  # per arm
    with pytest.raises(ValueError, match="no default"):
        draw_trials(space, {"epochs": 2, "lr": 1e-3}, 3, seed=0, key="sft")


def test_the_best_trial_is_the_highest_score_and_a_tie_keeps_the_earlier() -> None:
    assert best_trial([0.5, 0.7, 0.6]) == 1
    assert best_trial([0.5, 0.5, 0.4]) == 0  # the default wins ties
    assert best_trial([0.4, 0.6, 0.6]) == 1


def _pages(right: int, wrong: int) -> list[list[int]]:
    """Per-page [tp, fp, fn] counts as a unit's scores keep them: ``right`` pages with one
    right field, ``wrong`` with one wrong (a false positive and a miss)."""
    return [[1, 0, 0]] * right + [[0, 1, 1]] * wrong


def test_the_significant_rule_runs_a_trial_only_where_it_beats_the_default_beyond_noise() -> None:
    """30 pages: a trial one page better than the default is within the noise (its CI holds
    zero), so ``significant`` keeps the default where ``best`` takes it; ten pages better is
    beyond it, and both rules take it. The gain is the best trial's, whichever runs."""
    default = _pages(15, 15)
    one_better, ten_better = _pages(16, 14), _pages(25, 5)
    f1 = [0.5, 16 / 30, 25 / 30]
    counts = [default, one_better, None]
    chosen, best, gain = choose_trial(f1[:2], counts[:2], "best", 1000, 0)
    assert (chosen, best) == (1, 1) and gain is not None
    assert gain["diff"] == pytest.approx(1 / 30) and gain["low"] <= 0 < gain["high"]
    assert choose_trial(f1[:2], counts[:2], "significant", 1000, 0)[:2] == (0, 1)
    row = {"chosen_trial": 0, "best_trial": 1, "select_gain_best": gain}
    assert gain_text(row).endswith("(kept default)") and gain_text(row).startswith("+0.033 [")
    counts = [default, one_better, ten_better]
    chosen, best, gain = choose_trial(f1, counts, "significant", 1000, 0)
    assert (chosen, best) == (2, 2) and gain is not None and gain["low"] > 0
    # the default best: nothing to test, and both rules keep it
    assert choose_trial([0.6, 0.5], [default, one_better], "significant", 1000, 0) == (0, 0, None)
    # a trial recorded without its counts: ``best`` still takes it, ``significant`` cannot
    assert choose_trial(f1[:2], [default, None], "best", 1000, 0) == (1, 1, None)
    assert choose_trial(f1[:2], [default, None], "significant", 1000, 0) == (0, 1, None)


def test_every_arm_that_trains_gets_the_same_number_of_trials_of_its_own_settings() -> None:
    cfg = CompareConfig(arms=list(ARMS), epochs=2, trainer_options={"lr": 1e-3},
                        tuning={"trials": 5})
    tuning = TuningConfig(trials=5)
    counts = {a.name: len(trial_settings(a, cfg, tuning)) for a in cfg.arms_to_run
              if a.search_space()}
    assert set(counts) == {a.name for a in cfg.arms_to_run if a.trainer}
    assert set(counts.values()) == {5}
    arms = {a.name: a for a in cfg.arms_to_run}
    assert set(arms["sft"].search_space()) == {"epochs", "lr"}
    assert set(arms["rl"].search_space()) == {"epochs", "lr", "kl_coef", "samples_per_field"}
    assert set(arms["sft-rl"].search_space()) == set(arms["rl"].search_space())
    assert set(arms["dpo"].search_space()) == {"epochs", "lr", "beta"}
    # the defaults are what the arm runs untuned: its options, the run's trainer options and
    # epochs, else its trainer config's own default
    assert default_settings(arms["sft-long"], cfg)["epochs"] == 3
    assert default_settings(arms["sft"], cfg)["lr"] == 1e-3
    assert default_settings(arms["rl"], cfg)["kl_coef"] == 0.05
    assert default_settings(arms["dpo"], cfg)["beta"] == 0.1
    assert default_settings(arms["gold"], cfg)["epochs"] == 2


def test_a_bad_tuning_key_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown key"):
        CompareConfig(tuning={"trails": 3})
    with pytest.raises(ValueError, match="trials must be >= 2"):
        CompareConfig(tuning={"trials": 1})
    with pytest.raises(ValueError, match=r"tuning.rule must be one of \['best', 'significant'\]"):
        CompareConfig(tuning={"rule": "luckiest"})
    assert "tuning" not in CompareConfig().export()  # an untuned run's config as before


# -- seeds drawn too: the crossed bootstrap ---------------------------------------------------


def test_crossed_sums_equal_a_naive_double_loop() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=(3, 7, 3)).astype(float)
    n_boot = 20
    (got,) = _crossed_sums(n_boot, 5, a)
    draws = np.random.default_rng(5)
    w, v = _draw_counts(draws, n_boot, 3), _draw_counts(draws, n_boot, 7)
    naive = np.zeros((n_boot, 3))
    for b in range(n_boot):
        for s in range(3):
            for d in range(7):
                naive[b] += w[b, s] * v[b, d] * a[s, d]
    assert np.allclose(got, naive)
    assert (w.sum(1) == 3).all() and (v.sum(1) == 7).all()


def test_drawing_seeds_widens_the_interval_when_seeds_disagree() -> None:
    docs = 60
    good = np.tile([[1.0, 0.0, 0.0]], (docs, 1))
    bad = np.tile([[0.0, 1.0, 1.0]], (docs, 1))
    # three seeds: one start model right everywhere, two wrong everywhere
    cube = np.stack([good, bad, bad])
    ci = crossed_bootstrap_ci(cube, f1_of_counts, n_boot=400, seed=0)
    assert ci.value == pytest.approx(f1_of_counts(cube.sum((0, 1))))
    assert ci.high - ci.low > 0.3  # documents alone would give a zero-width interval
    paired = crossed_paired_bootstrap(cube, cube[[1, 0, 0]], f1_of_counts, n_boot=400)
    assert paired.low < 0 < paired.high and paired.diff > 0


def test_analyse_draws_seeds_only_when_asked_and_says_so() -> None:
    rows = _mock_results({"none": 0.6, "sft": 0.7, "dpo": 0.75}, seeds=(0, 1, 2))
    docs_only = analyse(rows, n_boot=200)
    crossed = analyse(rows, n_boot=200, resample_seeds=True)
    assert docs_only["method"]["resample_seeds"] is False
    assert "seeds and documents" in crossed["method"]["ci_variance"]
    for a, b in zip(docs_only["cells"], crossed["cells"]):
        assert a["f1"]["value"] == b["f1"]["value"]  # the same figure, another interval
    assert any(a["f1"]["low"] != b["f1"]["low"]
               for a, b in zip(docs_only["cells"], crossed["cells"]))
    for a, b in zip(docs_only["comparisons"], crossed["comparisons"]):
        assert a["f1_diff"]["diff"] == pytest.approx(b["f1_diff"]["diff"])


# -- end to end on mock receipts with a tiny model --------------------------------------------


def _step_files(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in (out / "steps").rglob("*.json")}


@pytest.mark.slow
def test_tuned_comparison_chooses_on_selection_reports_and_resumes(tmp_path: Path) -> None:
    path = _config(tmp_path, "tuned", arms=["none", "sft", "rl", "dpo"], seeds=[0, 1],
                   tuning={"trials": 3, "seed": 1})
    cfg = load_config(str(path))
    run = Comparison(cfg)
    got = run.run()
    out = tmp_path / "tuned"
    trial_steps = sorted((out / "steps" / "full" / "seed-0" / "round-1").glob("tune-*/trial-*.json"))
    by_arm: dict[str, list[dict]] = {}
    for p in trial_steps:
        by_arm.setdefault(p.parent.name.removeprefix("tune-"), []).append(
            json.loads(p.read_text(encoding="utf-8")))
    assert {a: len(t) for a, t in by_arm.items()} == {"sft": 3, "rl": 3, "dpo": 3}
    assert not list((out / "steps" / "full" / "seed-1").rglob("tune-*"))  # tuned on seed 0
    rows = [r for r in read_results(out / "results.jsonl") if r.round == 1]
    arms = {a.name: a for a in cfg.arms_to_run}
    for arm, trials in by_arm.items():
        trials.sort(key=lambda t: t["settings"]["trial"])
        # every trial was scored on the selection pages only, never on dev
        assert all(t["settings"]["eval"] == {"select": run.data.select} for t in trials)
        assert all(t["result"]["eval_sets"] == ["select"] for t in trials)
        scores = [t["result"]["select_f1"] for t in trials]
        tuned = {r.seed: r.extras["tuning"] for r in rows if r.arm == arm}
        assert set(tuned) == {0, 1}
        t = tuned[0]
        assert tuned[1] == t  # the choice on seed 0 is every seed's
        assert t["trials"] == 3 and t["select_f1_trials"] == scores
        assert t["default"] == default_settings(arms[arm], cfg)  # trial 0 is the default
        assert trials[0]["settings"]["options"]["options"] == {**arms[arm].options,
                                                               **t["default"]}
        assert t["chosen_trial"] == best_trial(scores) == t["best_trial"]
        assert t["select_f1_tuned"] == max(scores) and t["rule"] == "best"
        # each trial kept its per-page selection counts, paired by page with the default's
        pages = trials[0]["result"]["select_doc_ids"]
        assert all(trial["result"]["select_doc_ids"] == pages for trial in trials)
        assert all(np.shape(trial["result"]["select_counts"]) == (len(pages), 3)
                   for trial in trials)
        gain = t["select_gain_best"]
        if t["best_trial"] == 0:
            assert gain is None
        else:
            assert gain["diff"] == pytest.approx(t["select_f1_tuned"] - t["select_f1_default"])
        # the arm ran with the chosen settings, at every seed
        for seed in (0, 1):
            step = json.loads((out / "steps" / "full" / f"seed-{seed}" / "round-1" /
                               f"arm-{arm}.json").read_text(encoding="utf-8"))
            assert step["settings"]["options"]["options"] == {**arms[arm].options,
                                                              **t["tuned"]}
    assert not any("tuning" in r.extras for r in rows if r.arm == "none")
    report = json.loads(Path(got["paths"]["json"]).read_text(encoding="utf-8"))
    table = report["analysis"]["tuning"]
    assert {(r["arm"], r["setting"]) for r in table} >= {
        ("sft", "epochs"), ("sft", "lr"), ("rl", "kl_coef"), ("rl", "samples_per_field"),
        ("dpo", "beta")}
    md = Path(got["paths"]["md"]).read_text(encoding="utf-8")
    assert "**Tuning (selection split)**" in md and "| dpo | beta |" in md
    assert "best − default [95% CI]" in md
    assert "Tuning (selection split)" in Path(got["paths"]["html"]).read_text(encoding="utf-8")
    # the same command again trains nothing: every step is found finished
    before, results = _step_files(out), (out / "results.jsonl").read_bytes()
    Comparison(load_config(str(path))).run()
    assert _step_files(out) == before
    assert (out / "results.jsonl").read_bytes() == results


@pytest.mark.slow
def test_the_significant_rule_runs_the_default_unless_a_trial_wins_beyond_noise(
        tmp_path: Path) -> None:
    path = _config(tmp_path, "significant", arms=["none", "sft", "dpo"],
                   tuning={"trials": 3, "seed": 1, "rule": "significant"})
    got = Comparison(load_config(str(path))).run()
    out = tmp_path / "significant"
    rows = [r for r in read_results(out / "results.jsonl") if r.round == 1 and r.arm != "none"]
    assert {r.arm for r in rows} == {"sft", "dpo"}
    for r in rows:
        t = r.extras["tuning"]
        gain = t["select_gain_best"]
        beyond_noise = gain is not None and gain["low"] > 0
        assert t["rule"] == "significant"
        assert t["chosen_trial"] == (t["best_trial"] if beyond_noise else 0)
        step = json.loads((out / "steps" / "full" / "seed-0" / "round-1" /
                           f"arm-{r.arm}.json").read_text(encoding="utf-8"))
        assert step["settings"]["options"]["options"]  # the chosen trial's settings ran
        chosen = json.loads((out / "steps" / "full" / "seed-0" / "round-1" / f"tune-{r.arm}" /
                             f"trial-{t['chosen_trial']}.json").read_text(encoding="utf-8"))
        assert (step["settings"]["options"]["options"]
                == chosen["settings"]["options"]["options"])
    md = Path(got["paths"]["md"]).read_text(encoding="utf-8")
    assert "where its gain over the default was significant on the selection pages" in md


@pytest.mark.slow
def test_a_start_model_per_seed_is_its_own_model_and_the_intervals_draw_seeds(
        tmp_path: Path) -> None:
    path = _config(tmp_path, "per-seed", arms=["none", "sft"], seeds=[0, 1],
                   start_per_seed=True)
    got = Comparison(load_config(str(path))).run()
    out = tmp_path / "per-seed"
    starts = {s: json.loads((out / "steps" / "start" / f"seed-{s}.json").read_text())
              for s in (0, 1)}
    assert starts[0]["settings"]["seed"] == 0 and starts[1]["settings"]["seed"] == 1
    assert starts[0]["result"]["version"] != starts[1]["result"]["version"]
    round0 = {r.seed: r for r in read_results(out / "results.jsonl")
              if r.round == 0 and r.arm == "none" and r.eval_set == "dev"}
    assert round0[0].model_version != round0[1].model_version
    report = json.loads(Path(got["paths"]["json"]).read_text(encoding="utf-8"))
    assert report["analysis"]["method"]["resample_seeds"] is True
    md = Path(got["paths"]["md"]).read_text(encoding="utf-8")
    assert "Intervals: seeds and documents drawn independently" in md
    with pytest.raises(ConfigError):
        load_config(str(_config(tmp_path, "bad", tuning={"trials": 0})))


@pytest.mark.slow
def test_trials_run_as_ray_tasks_on_a_local_ray(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    path = _config(tmp_path, "ray", arms=["none", "sft"], ray=True, cpus_per_task=1,
                   tuning={"trials": 2})
    Comparison(load_config(str(path))).run()
    steps = tmp_path / "ray" / "steps" / "full" / "seed-0" / "round-1"
    trials = [json.loads(p.read_text(encoding="utf-8"))
              for p in steps.glob("tune-sft/trial-*.json")]
    assert len(trials) == 2 and {t["result"]["executor"] for t in trials} == {"ray"}
    rows = [r for r in read_results(tmp_path / "ray" / "results.jsonl")
            if r.arm == "sft" and r.round == 1]
    assert rows and all(r.extras["executor"] == "ray" and r.extras["tuning"]["trials"] == 2
                        for r in rows)


# -- one arm tuned beside its defaults (X+tuned) ----------------------------------------------


def test_a_tuned_arm_name_is_its_base_arm_tuned_and_refused_where_nothing_trains() -> None:
    tuned = arm_named("sft-rl+tuned")
    assert tuned.tuned and tuned.trainer == ARMS["sft-rl"].trainer
    assert tuned.needs_reward() and tuned.settings()["tuned"] is True
    assert "tuned" not in ARMS["sft-rl"].settings()  # the defaults' finished steps still match
    assert "gold+tuned" in references(["sft", "gold+tuned"])
    assert "sft+tuned" not in references(["sft+tuned"])
    for bad in ("none+tuned", "vendor-memory+tuned", "sft+tuned+tuned", "nope+tuned"):
        with pytest.raises(KeyError, match="X\\+tuned"):
            arm_named(bad)
    with pytest.raises(ValueError, match="none\\+tuned"):
        CompareConfig(arms=["none", "none+tuned"])
    # its trials are its base arm's draws: the same settings a run tuning every arm tries
    cfg = CompareConfig(arms=["sft", "sft+tuned"], epochs=2,
                        arm_options={"sft": {"unlikelihood_weight": 0.5}})
    sft, sft_tuned = cfg.arms_to_run
    assert sft_tuned.options == sft.options  # X+tuned starts from X's options
    assert trial_settings(sft_tuned, cfg, TuningConfig()) == trial_settings(sft, cfg,
                                                                            TuningConfig())


@pytest.mark.slow
def test_a_tuned_arm_joins_a_finished_comparison_and_trains_only_itself(tmp_path: Path) -> None:
    """Default and tuned in one run: adding ``sft+tuned`` to a finished comparison leaves
    every finished step as it is, tunes only that arm (on the first seed, scored on the
    selection pages; ``tuning:`` then sets its trials, and ``sft`` keeps its defaults), and
    pairs it with ``sft`` on the same documents."""
    path = _config(tmp_path, "run", arms=["none", "sft"], seeds=[0, 1])
    Comparison(load_config(str(path))).run()
    out = tmp_path / "run"
    before = _step_files(out)
    path = _config(tmp_path, "run", arms=["none", "sft", "sft+tuned"], seeds=[0, 1],
                   tuning={"trials": 2, "seed": 0})
    got = Comparison(load_config(str(path))).run()
    after = _step_files(out)
    assert {k: v for k, v in after.items() if k in before} == before
    new = sorted(set(after) - set(before))
    assert [p for p in new if "tune-" in p] == [
        "steps/full/seed-0/round-1/tune-sft+tuned/trial-0.json",
        "steps/full/seed-0/round-1/tune-sft+tuned/trial-1.json"]
    assert {p for p in new if "tune-" not in p} == {
        "steps/full/seed-0/round-1/arm-sft+tuned.json",
        "steps/full/seed-1/round-1/arm-sft+tuned.json"}
    rows = [r for r in read_results(out / "results.jsonl") if r.round == 1]
    by = {(r.arm, r.seed, r.eval_set): r for r in rows}
    assert all("tuning" in by[("sft+tuned", s, "dev")].extras for s in (0, 1))
    assert "tuning" not in by[("sft", 0, "dev")].extras
    assert by[("sft+tuned", 0, "dev")].doc_ids == by[("sft", 0, "dev")].doc_ids
    report = json.loads(Path(got["paths"]["json"]).read_text(encoding="utf-8"))
    assert {r["arm"] for r in report["analysis"]["tuning"]} == {"sft+tuned"}
    [cell] = grid_cells([GridSource(label="x", folder=out)], n_boot=50)
    assert cell["tests"]["tuned:sft"]["reference"] == "sft"
    assert cell["tuning_core_minutes"]["sft+tuned"] > 0  # the two trials, paid once
    assert "| x | full | dev | 4 | sft | " in grid_markdown([cell])


@pytest.mark.slow
def test_a_tuned_arm_that_chose_its_defaults_is_its_default_arm_not_trained_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ``sft+tuned``'s trials choose the default (trial 0), it would train exactly what
    ``sft`` trains: its rows and step are ``sft``'s, marked ``same_as``, and no unit trains it;
    where they choose another trial it trains."""
    from kvloop.compare import runner, tuning, units

    choose = tuning.choose_trial
    monkeypatch.setattr(tuning, "choose_trial",  # the rule is tested above; here: "the default"
                        lambda *a, **k: (0, *choose(*a, **k)[1:]))
    trained: list[str] = []
    run_arm = units.run_arm

    def counting(unit):  # type: ignore[no-untyped-def]
        if unit.arm.trainer:  # the start model is scored through run_arm too
            trained.append(unit.arm.name)
        return run_arm(unit)

    monkeypatch.setattr(runner.units, "run_arm", counting)
    path = _config(tmp_path, "twin", arms=["none", "sft", "sft+tuned"], seeds=[0, 1],
                   tuning={"trials": 2, "seed": 0})
    Comparison(load_config(str(path))).run()
    out = tmp_path / "twin"
    assert sorted(trained) == ["sft", "sft", "sft+tuned", "sft+tuned"]  # trials only
    rows = {(r.arm, r.seed, r.eval_set): r for r in read_results(out / "results.jsonl")
            if r.round == 1}
    for (arm, seed, es), row in rows.items():
        if arm != "sft+tuned":
            continue
        twin = rows[("sft", seed, es)]
        assert (row.counts, row.correct, row.model_version) == (
            twin.counts, twin.correct, twin.model_version)
        assert row.extras["same_as"] == "sft" and row.extras["tuning"]["chosen_trial"] == 0
        step = json.loads((out / "steps" / "full" / f"seed-{seed}" / "round-1" /
                           "arm-sft+tuned.json").read_text(encoding="utf-8"))
        assert step["result"]["same_as"] == "sft"
    assert {k[1] for k in rows if k[0] == "sft+tuned"} == {0, 1}
    # another trial chosen: the tuned arm trains
    monkeypatch.setattr(tuning, "choose_trial", lambda *a, **k: (1, 1, None))
    trained.clear()
    path = _config(tmp_path, "other", arms=["none", "sft", "sft+tuned"], seeds=[0],
                   tuning={"trials": 2, "seed": 0})
    Comparison(load_config(str(path))).run()
    assert sorted(trained) == ["sft", "sft+tuned", "sft+tuned", "sft+tuned"]
