"""The main job end to end on a few synthetic receipts with the tiny architecture."""

from __future__ import annotations

from pathlib import Path

import pytest

from extractor.normalize import lenient_key
from feedback_ui.store import FeedbackStore
from kvloop.demo import DemoConfig, run_demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    cfg = DemoConfig(out=str(tmp_path_factory.mktemp("demo")), n=15, epochs=1, arch="tiny")
    return cfg, run_demo(cfg)


def test_demo_writes_data_model_report_and_store(demo_run):
    _, s = demo_run
    assert (s.data_dir / "documents.jsonl").is_file()
    assert (s.model_dir / "kvloop.json").is_file()
    assert all(Path(p).read_text() for p in s.report.values())
    assert s.documents == 3  # the dev fifth of 15
    assert s.reviewed == s.queued >= 1


def test_simulated_review_leaves_gold_values_in_the_store(demo_run):
    _, s = demo_run
    store = FeedbackStore(s.store_url)
    try:
        corrected = list(store.iter_corrected())
        assert len(corrected) == s.reviewed
        for cd in corrected:
            for name, gold in (cd.document.gold or {}).items():
                assert lenient_key(cd.values.get(name)) == lenient_key(gold), (cd.document.id, name)
    finally:
        store.close()


def test_demo_runs_again_on_its_own_output(demo_run):
    cfg, first = demo_run
    again = run_demo(cfg)
    assert again.documents == first.documents
    assert again.reviewed == 0  # the queue was already worked through


def test_demo_config_rejects_tiny_datasets():
    with pytest.raises(ValueError, match="n must be"):
        DemoConfig(n=3)
