"""``kvloop compare`` data on CORD: the dataset's own split, and no vendor slice made up."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kvloop.compare.config import CompareConfig, load_config
from kvloop.compare.data import has_vendor, prepare, read_docs


def test_cord_preset_points_at_cord() -> None:
    cfg = load_config("cord-tiny")
    assert cfg.data.endswith("data/cord") and cfg.arch == "tiny"
    assert "vendor-memory" not in cfg.arms


def test_prepare_on_cord_skips_the_vendor_slice_and_says_why(
        cord_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = CompareConfig(data=str(cord_dir), start_docs=4, pool_docs=6, rounds=1,
                        docs_per_round=3, arms=["none", "sft"], max_select_docs=3,
                        max_eval_docs=5, out=str(tmp_path))
    with caplog.at_level(logging.WARNING):
        prepared = prepare(cfg, tmp_path)
    assert list(prepared.eval_sets) == ["dev"]
    assert "unseen-vendor slice skipped" in caplog.text and "company" in caplog.text
    assert all(i.startswith("train/") for i in prepared.start + prepared.pool + prepared.select)
    assert all(i.startswith("dev/") for i in prepared.eval_sets["dev"])
    pool = read_docs(prepared.path("pool"))
    assert not has_vendor(pool) and all(set(d.gold or {}) >= {"total", "cash"} for d in pool)
