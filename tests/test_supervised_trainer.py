"""Supervised trainer smoke tests on a tiny random model and a few real SROIE receipts."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from extractor.lexicon import Lexicon, build_lexicon
from extractor.loaders import load_documents
from extractor.model.predictor import load_predictor
from training.data import epoch_batches, mixed_windows, pass_windows
from training.decisions import (
    ABSENT_THRESHOLDS,
    CORRECT_BELOW,
    FUSION_GRID,
    add_missing_lexicon,
    recalibrate,
)
from training.optim import param_groups
from training.supervised_config import SupervisedConfig
from training.supervised_trainer import SupervisedTrainer


@pytest.fixture(scope="module")
def receipts(sroie_dir: Path) -> list:
    return load_documents(sroie_dir, split="train", progress=False).documents[:6]


def _cfg(out: Path, **kw) -> SupervisedConfig:
    return SupervisedConfig(data="", out=str(out), arch="tiny", max_length=64, stride=16,
                            epochs=1, batch_size=4, seed=0, threads=1, **kw)


def test_config_validates() -> None:
    with pytest.raises(ValueError, match="train_split"):
        SupervisedConfig(train_split="nope")
    with pytest.raises(ValueError, match="stride"):
        SupervisedConfig(max_length=64, stride=62)


def test_train_step_lowers_the_loss(receipts: list, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, lr=1e-3, head_lr=1e-2)
    tr = SupervisedTrainer(cfg, train_docs=receipts[:2], dev_docs=[], calib_docs=[])
    per_pass, _ = pass_windows(tr.model, receipts[:2], tr.schema, variants=False)
    wins = [w for passes in per_pass for w in passes[0]]
    batch = wins[:4]
    opt = torch.optim.AdamW(param_groups(tr.model, cfg.lr, cfg.head_lr))
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}

    def step() -> float:
        tr.model.train()
        loss, parts = tr.compute_loss(batch)
        assert set(parts) == {"bert", "layoutlm", "fused"}
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    losses = [step() for _ in range(6)]
    assert losses[-1] < losses[0]
    changed = [n for n, p in tr.model.named_parameters() if not torch.equal(before[n], p)]
    assert any(n.startswith("bert.") for n in changed)
    assert any(n.startswith("layoutlm.") for n in changed) and "fusion_raw" in changed


def test_batches_cover_every_window_once() -> None:
    class W:  # only the length matters to the bucketing
        def __init__(self, n: int) -> None:
            self.input_ids = [0] * n
    wins = [W(n) for n in [5, 50, 7, 30, 9, 12, 64, 3, 8, 20]]
    batches = epoch_batches(wins, 3, random.Random(0))  # type: ignore[arg-type]
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert batches == epoch_batches(wins, 3, random.Random(0))  # type: ignore[arg-type]


def test_train_saves_a_loadable_calibrated_model(receipts: list, tmp_path: Path) -> None:
    out = tmp_path / "model"
    as_tesseract = [replace(d, ocr="tesseract:psm6") for d in receipts[4:6]]
    res = SupervisedTrainer(_cfg(out), train_docs=receipts[:3], dev_docs=receipts[3:4],
                            calib_docs=receipts[4:6], profile_docs=as_tesseract).train()
    assert res.best_epoch == 1 and len(res.history) == 1
    meta = json.loads((out / "kvloop.json").read_text(encoding="utf-8"))
    assert meta["calibration_ocr"] == "provided" and set(meta["ocr_profiles"]) == {"tesseract"}
    assert "correct_below" in meta["ocr_profiles"]["tesseract"]
    assert load_predictor(out).lexicon == build_lexicon(receipts[:3])
    assert not (out / "checkpoint-last").exists()  # optimiser state is not part of a version
    pred = load_predictor(out)
    assert pred.version.startswith("kv.ensemble.v1@")
    results = pred.predict(receipts[3:4])
    assert set(results[0].fields) == {"company", "date", "address", "total"}
    engine, fit = recalibrate(out, receipts[:6])
    assert engine == "provided" and fit.profile.calibrator.n > 0
    reloaded = load_predictor(out)
    assert reloaded.default_profile == fit.profile
    # the chosen fusion weights are the grid's best and are what the saved model fuses with
    assert len(fit.grid) == len(FUSION_GRID) * len(ABSENT_THRESHOLDS) + len(CORRECT_BELOW) - 1
    assert fit.profile.correct_below == 0.0  # given words (confidence 1) gain nothing from correction
    assert fit.lenient_f1 == max(g["lenient_f1"] for g in fit.grid)
    assert torch.allclose(reloaded.model.fusion_weights,
                          torch.tensor(fit.fusion_weights).clamp(min=1e-6), atol=1e-6)


def test_ocr_mix_reads_pages_from_their_other_passes(receipts: list, tmp_path: Path) -> None:
    """Each pass gets its own gold alignment; mix 0 keeps the first pass, 1 always another."""
    doc = receipts[0]
    # a second "OCR pass" of the same page that missed the first line
    first_line = doc.words[0].line
    other = [w for w in doc.words if w.line != first_line]
    docs = [replace(doc, variants={"partial": other})]
    tr = SupervisedTrainer(_cfg(tmp_path, ocr_mix=0.5), train_docs=docs, dev_docs=[],
                           calib_docs=[])
    per_pass, _ = pass_windows(tr.model, docs, tr.schema)
    assert len(per_pass) == 1 and len(per_pass[0]) == 2
    first, lower = per_pass[0]
    n_tokens = [sum(len(w.input_ids) - 2 for w in p) for p in (first, lower)]
    assert n_tokens[0] > n_tokens[1]
    # gold is aligned to each pass's own words: both carry field labels
    for p in (first, lower):
        assert any(lab > 0 for w in p for lab in w.labels)
    rng = random.Random(0)
    assert mixed_windows(per_pass, 0.0, rng) == list(first)
    assert mixed_windows(per_pass, 1.0, rng) == list(lower)
    picks = [mixed_windows(per_pass, 0.5, rng) == list(lower) for _ in range(200)]
    assert 60 < sum(picks) < 140
    with pytest.raises(ValueError, match="ocr_mix"):
        SupervisedConfig(ocr_mix=1.5)


def test_recalibrating_on_another_ocr_fits_its_profile_only(receipts: list, sroie_dir: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "model"
    SupervisedTrainer(_cfg(out), train_docs=receipts[:3], dev_docs=[],
                      calib_docs=receipts[4:6]).train()
    (out / "lexicon.json").unlink()  # as saved before lexicons existed
    lexicon = add_missing_lexicon(out, str(sroie_dir), "train", max_docs=3)
    assert Lexicon.load(out) == lexicon == build_lexicon(receipts[:3])
    before = load_predictor(out)
    assert before.ocr_profiles == {}
    engine, fit = recalibrate(out, [replace(d, ocr="tesseract:psm4") for d in receipts[:6]])
    # fusion weights kept: the absent thresholds, then the correction bars
    assert engine == "tesseract"
    assert len(fit.grid) == len(ABSENT_THRESHOLDS) + len(CORRECT_BELOW) - 1
    after = load_predictor(out)
    assert after.ocr_profiles["tesseract"] == fit.profile
    assert after.default_profile == before.default_profile
    assert torch.equal(after.model.fusion_raw, before.model.fusion_raw)
    assert after.version != before.version  # the decisions are part of the version
    with pytest.raises(ValueError, match="no documents"):
        recalibrate(out, [])


def test_same_seed_same_weights_and_curves(receipts: list, tmp_path: Path) -> None:
    """Two runs of one config write byte-identical weights; the curves file logs every step."""
    import hashlib

    digests = []
    for run in ("a", "b"):
        out = tmp_path / run
        SupervisedTrainer(replace(_cfg(out), epochs=2), train_docs=receipts[:3], dev_docs=[],
                          calib_docs=receipts[4:6]).train()
        digests.append([hashlib.sha256((out / m / "model.safetensors").read_bytes()).hexdigest()
                        for m in ("bert", "layoutlm")])
        rows = [json.loads(line) for line in (out / "curves.jsonl").read_text().splitlines()]
        steps = [r for r in rows if "step" in r]
        assert [r["step"] for r in steps] == list(range(1, len(steps) + 1))
        assert {"loss", "bert", "layoutlm", "fused", "lr"} <= set(steps[0])
        assert [r["epoch_end"] for r in rows if "epoch_end" in r] == [1, 2]
        card = json.loads((out / "kvloop.json").read_text())
        assert card["training"]["trainer"] == "base" and card["training"]["parent_version"] is None
        assert set(card["auto_accept"]) == {"company", "date", "address", "total"}
    assert digests[0] == digests[1]


def test_training_schema_by_name_then_data(tmp_path: Path) -> None:
    """``--schema`` wins; without it the training pages' gold decides (CORD's -> cord), and
    pages without images (CORD) get no image OCR passes."""
    from extractor.document import Document, Word
    from extractor.schemas import CORD_SCHEMA, RECEIPT_SCHEMA
    from training.supervised_trainer import has_images, training_schema

    cord = Document("dev/a", [Word("1", (0, 0, 1, 1))], 10, 10,
                    gold={n: None for n in CORD_SCHEMA.field_names})
    cfg = SupervisedConfig(data="x", out=str(tmp_path / "m"))
    assert training_schema(cfg, [cord]) is CORD_SCHEMA
    assert training_schema(replace(cfg, schema="receipt"), [cord]) is RECEIPT_SCHEMA
    with pytest.raises(ValueError, match="unknown schema"):
        SupervisedConfig(data="x", out="y", schema="invoice")
    assert not has_images([cord]) and has_images([replace(cord, source="a.png")])
