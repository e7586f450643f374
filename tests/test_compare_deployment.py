"""The deployment case of ``kvloop compare``: the vendor-disjoint split, a given start model
(its training receipts kept out of pool and evaluation), and the forgetting column."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_rl_trainer import _mock_receipts

from extractor.document import write_jsonl
from kvloop.compare.analysis import analyse
from kvloop.compare.config import CompareConfig, load_config
from kvloop.compare.data import plan, prepare, read_docs
from kvloop.compare.records import ArmResult
from kvloop.compare.report import render_markdown
from kvloop.compare.vendor_split import NEW, SEEN, draw_seen_vendors, vendor_of, vendor_split


def _data(tmp: Path, n: int = 40) -> Path:
    path = tmp / "docs.jsonl"
    if not path.is_file():
        write_jsonl(str(path), _mock_receipts(range(n)))
    return path


def _cfg(tmp: Path, **over) -> CompareConfig:
    values = {"data": str(_data(tmp)), "start_docs": 6, "rounds": 2, "docs_per_round": 4,
              "arms": ["none", "sft"], "max_select_docs": 4, "vendor_split": True,
              "out": str(tmp / "out"), **over}
    return CompareConfig(**values)


def test_the_vendor_split_keeps_every_pool_vendor_out_of_the_start() -> None:
    docs = _mock_receipts(range(40))
    source, evaluation = docs[:30], docs[30:]
    split = vendor_split(source, evaluation, start_docs=6, pool_docs=None, seed=0)
    start_vendors = {vendor_of(d) for d in split.start}
    assert len(split.start) == 6 and split.seen_vendors == start_vendors
    assert split.pool and not {vendor_of(d) for d in split.pool} & start_vendors
    assert all(vendor_of(d) in start_vendors for d in split.seen_eval)
    assert split.new_eval and not {vendor_of(d) for d in split.new_eval} & start_vendors
    assert len(split.seen_eval) + len(split.new_eval) == len(evaluation)
    # every source document is in the start, the pool, or counted as unused
    assert len(split.start) + len(split.pool) + split.unused == len(source)
    # the vendor draw is seeded: same seed, same vendors; another seed may differ
    assert draw_seen_vendors(source, 6, 0) == draw_seen_vendors(source, 6, 0)
    assert split.counts()[NEW] == len(split.new_eval)
    assert "never saw" in split.describe()


def test_a_document_without_a_vendor_is_left_out_and_counted() -> None:
    docs = _mock_receipts(range(20))
    docs[15].gold["company"] = None
    split = vendor_split(docs[:12], docs[12:], start_docs=4, pool_docs=None, seed=0)
    assert split.no_vendor == 1
    assert docs[15].id not in {d.id for d in [*split.pool, *split.seen_eval, *split.new_eval]}


def test_prepare_with_vendor_split_writes_disjoint_parts(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    prepared = prepare(cfg, tmp_path / "out")
    assert set(prepared.eval_sets) == {NEW, SEEN}
    parts = [prepared.start, prepared.pool, prepared.select, *prepared.eval_sets.values()]
    ids = [i for p in parts for i in p]
    assert len(ids) == len(set(ids))  # no document in two parts
    start = read_docs(prepared.path("start"))
    pool = read_docs(prepared.path("pool"))
    assert not {vendor_of(d) for d in start} & {vendor_of(d) for d in pool}
    seen = read_docs(prepared.path(f"eval-{SEEN}"))
    assert {vendor_of(d) for d in seen} <= {vendor_of(d) for d in start}
    # the pool may come from calibration pages the selection does not read
    assert len(prepared.pool) + len(prepared.start) > 40 * 3 // 5 - 8


def test_vendor_split_refuses_a_budget_the_new_vendors_cannot_fill(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vendors the start never saw"):
        plan(_cfg(tmp_path, rounds=10, docs_per_round=10), tmp_path / "out")


def test_vendor_split_on_receipts_without_a_vendor_says_so(tmp_path: Path) -> None:
    """CORD's gold names no vendor: the deployment case refuses it, naming why."""
    docs = _mock_receipts(range(40))
    for d in docs:
        d.gold = {k: v for k, v in (d.gold or {}).items() if k != "company"}
    path = tmp_path / "no-vendor.jsonl"
    write_jsonl(str(path), docs)
    with pytest.raises(ValueError, match="no training receipt names its vendor"):
        plan(_cfg(tmp_path, data=str(path)), tmp_path / "out")


def _given_start(tmp: Path) -> Path:
    """A tiny model trained by the base trainer on the first 6 ``fit`` receipts of the data
    (its card records data, split and max_docs, as ``kvloop train base`` writes them)."""
    from training.supervised_config import SupervisedConfig
    from training.supervised_trainer import SupervisedTrainer

    out = tmp / "given-start"
    cfg = SupervisedConfig(data=str(_data(tmp)), out=str(out), arch="tiny", max_docs=6,
                           epochs=1, batch_size=4, seed=0, threads=1, ocr_mix=0.0,
                           tesseract_profile=False, max_span_len=4)
    SupervisedTrainer(cfg).train()
    return out


def test_a_given_start_models_training_receipts_stay_out_of_pool_and_eval(
        tmp_path: Path) -> None:
    from training.data import load_split

    model = _given_start(tmp_path)
    trained_on = {d.id for d in load_split(str(_data(tmp_path)), "fit", max_docs=6)}
    for vendor_mode in (False, True):
        # its 6 receipts cover most of the 8 mock vendors: a small pool, one round of 4
        cfg = _cfg(tmp_path, start_model=str(model), vendor_split=vendor_mode, rounds=1,
                   out=str(tmp_path / f"out-{vendor_mode}"))
        p = plan(cfg, Path(cfg.out))
        assert {d.id for d in p.start} == trained_on
        elsewhere = {d.id for d in p.pool} | {d.id for v in p.eval_sets.values() for d in v}
        assert not elsewhere & trained_on
    # the vendor split takes the seen vendors from the model's own training receipts
    assert not {vendor_of(d) for d in p.pool} & {vendor_of(d) for d in p.start}


def test_a_given_start_model_is_used_not_trained(tmp_path: Path) -> None:
    from extractor.model.card import model_version
    from kvloop.compare.runner import Comparison

    model = _given_start(tmp_path)
    comparison = Comparison(_cfg(tmp_path, start_model=str(model), rounds=1))
    comparison.data = comparison.prepare_data()
    starts = comparison.start_models()
    assert starts["shared"]["version"] == model_version(model)
    assert comparison.start_dir(0) == model.resolve()
    assert not (tmp_path / "out" / "start" / "shared").exists()


def test_start_model_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        plan(_cfg(tmp_path, start_model=str(tmp_path / "nowhere")), tmp_path / "out")
    with pytest.raises(ValueError, match="start_per_seed"):
        _cfg(tmp_path, start_model="m", start_per_seed=True)


def _rows(arm: str, rnd: int, es: str, right: list[int]) -> ArmResult:
    """One seed's row: document k has its one field right when ``right[k]``."""
    ids = [f"{es}-{k}" for k in range(len(right))]
    counts = [[1, 0, 0] if ok else [0, 1, 1] for ok in right]
    return ArmResult(arm, 0, rnd, es, ["total"], ids, [[ok] for ok in right], counts,
                     0 if rnd == 0 else 30, 0.0 if rnd == 0 else 600.0)


def test_forgetting_is_seen_vendor_f1_after_minus_before_beside_the_new_vendor_gain() -> None:
    before_seen = [1] * 30 + [0] * 10
    before_new = [1] * 10 + [0] * 30
    rows = [
        _rows("none", 0, SEEN, before_seen), _rows("none", 0, NEW, before_new),
        _rows("sft", 0, SEEN, before_seen), _rows("sft", 0, NEW, before_new),
        _rows("none", 1, SEEN, before_seen), _rows("none", 1, NEW, before_new),
        # sft learns the new vendors and forgets ten seen-vendor receipts
        _rows("sft", 1, SEEN, [1] * 20 + [0] * 20), _rows("sft", 1, NEW, [1] * 35 + [0] * 5),
    ]
    a = analyse(rows, n_boot=200)
    (row,) = [r for r in a["forgetting"] if r["arm"] == "sft"]
    assert row["round"] == 1
    assert row["forgetting"]["diff"] == pytest.approx(row["seen_f1"] - 30 / 40)
    assert row["forgetting"]["diff"] < 0 and row["forgot"]
    assert row["gain"]["diff"] > 0 and row["gain_significant"]
    assert any("sft forgot" in s for s in a["summary"])
    md = render_markdown(a, {"name": "deployment"})
    assert "Forgetting: seen-vendor F1 after minus before" in md
    assert "| 1 (30) | sft |" in md and "yes, significantly" in md


def test_no_forgetting_rows_without_a_seen_vendor_set() -> None:
    rows = [_rows("none", 0, "dev", [1, 0]), _rows("sft", 1, "dev", [1, 1]),
            _rows("sft", 0, "dev", [1, 0])]
    a = analyse(rows, n_boot=50)
    assert a["forgetting"] == []
    assert "Forgetting" not in render_markdown(a, {"name": "x"})


def test_dry_run_prints_the_split_and_trains_nothing(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from kvloop.cli import main

    cfg = {k: v for k, v in _cfg(tmp_path).export().items()
           if k in ("data", "start_docs", "rounds", "docs_per_round", "arms",
                    "max_select_docs", "vendor_split", "out")}
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert main(["compare", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"eval {NEW}" in out and "vendor-disjoint split" in out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["deployment", "deployment-quick"])
def test_deployment_presets_split_by_vendor_with_the_asked_arms(name: str) -> None:
    cfg = load_config(name)
    assert cfg.vendor_split and cfg.rounds * cfg.docs_per_round <= 150
    assert set(cfg.arms) == {"none", "sft", "sft-long", "sft-ul", "sft-rl", "rl", "dpo", "gold"}


@pytest.mark.parametrize("name", ["deployment", "deployment-quick", "cord-quick",
                                  "cord-deployed-quick", "cord-quick-starts"])
def test_the_grid_presets_run_the_rl_stage_with_its_control(name: str) -> None:
    """The grid's RL stage is sft-rl minus sft-long (SFT alone for sft-rl's SFT epochs); a
    preset that runs sft-rl without sft-long leaves that cell without its answer."""
    cfg = load_config(name)
    assert "sft-rl" in cfg.arms and "sft-long" in cfg.arms
    # the grid's cells grow by arms added later: they must read the same reward models
    assert cfg.keep_reward_models


@pytest.mark.slow
def test_a_deployment_run_from_a_given_start_reports_both_vendor_sets_and_forgetting(
        tmp_path: Path) -> None:
    from kvloop.compare.records import read_results
    from kvloop.compare.runner import Comparison

    model = _given_start(tmp_path)
    cfg = _cfg(tmp_path, start_model=str(model), rounds=1, arch="tiny", epochs=1,
               seeds=[0], n_boot=100, threads=1, strategy="least-confident",
               trainer_options={"lr": 2e-3, "head_lr": 2e-3})
    paths = Comparison(cfg).run()["paths"]
    rows = read_results(tmp_path / "out" / "results.jsonl")
    assert {r.eval_set for r in rows} == {NEW, SEEN}
    assert {(r.arm, r.round) for r in rows} == {("none", 0), ("sft", 0), ("none", 1),
                                                  ("sft", 1)}
    trained_on = {d.id for d in read_docs(tmp_path / "out" / "data" / "start.jsonl")}
    assert not trained_on & {i for r in rows for i in r.doc_ids}
    assert not (tmp_path / "out" / "start" / "shared").exists()  # nothing trained for it
    summary = Path(paths["md"]).read_text(encoding="utf-8")
    assert "| 1 (4) | sft |" in summary and "Seen vendors after 4 reviewed" in summary
