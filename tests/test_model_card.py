"""The model card: export/from_dict round trips, legacy cards, clear errors, version hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extractor.document import RECEIPT_SCHEMA
from extractor.model.calibrate import Calibrator, DecisionProfile
from extractor.model.card import FeedbackRef, ModelCard, TrainingRecord, model_version
from extractor.model.zoo import build_model


def _mock_card() -> ModelCard:
    return ModelCard(
        RECEIPT_SCHEMA, arch="tiny", fusion_raw=[0.1, 0.2], fusion_weights=[0.74, 0.79],
        max_length=64, stride=16, max_span_len=20,
        decisions=DecisionProfile(Calibrator(1.5, -0.2, 40), 0.9, 0.0),
        ocr_profiles={"tesseract": DecisionProfile(Calibrator(n=8, method="isotonic",
                                                              points=[(0.0, 0.1), (1.0, 0.9)]),
                                                   0.8, 0.9)},
        profile_fits={"tesseract": {"lenient_f1": 0.6, "n_fields": 8}},
        calibration_fit={"lenient_f1": 0.8, "grid": []},
        auto_accept={"company": 0.97, "address": None},
        auto_accept_fit={"company": {"threshold": 0.97}, "address": {"threshold": None}},
        training=TrainingRecord("sft", {"lr": 1e-4}, "kv.ensemble.v1@abc",
                                FeedbackRef.of(["a/1", "b/2"], ["a", "b"], "sqlite:///x.db",
                                               {"operator": "ann"}),
                                best_epoch=2, history=[{"epoch": 1}]),
        version="kv.ensemble.v1@def")


def test_card_round_trips() -> None:
    card = _mock_card()
    again = ModelCard.from_dict(json.loads(json.dumps(card.export())))
    assert again == card
    assert again.training is not None and again.training.feedback is not None
    assert again.training.feedback.n_records == 2 and len(again.training.feedback.ids_sha256) == 64
    assert FeedbackRef.of(["b/2", "a/1"], ["b", "a"]).ids_sha256 == card.training.feedback.ids_sha256


def test_legacy_card_reads_training_as_base_config() -> None:
    d = _mock_card().export()
    d["training"] = {"lr": 2e-4, "epochs": 10}  # what models saved before the card wrote
    d["best_epoch"], d["history"] = 7, [{"epoch": 7, "dev_f1": 0.88}]
    del d["auto_accept"], d["auto_accept_fit"]
    card = ModelCard.from_dict(d)
    assert card.training == TrainingRecord("base", {"lr": 2e-4, "epochs": 10}, None, None,
                                           None, 7, [{"epoch": 7, "dev_f1": 0.88}])
    assert card.auto_accept == {}


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="other/2"), "unsupported format"),
    (lambda d: d.pop("schema"), "not a valid model card"),
    (lambda d: d.update(labels=["O"]), "label list"),
])
def test_bad_cards_name_the_file_and_problem(change, message: str) -> None:
    d = _mock_card().export()
    change(d)
    with pytest.raises(ValueError, match=message) as err:
        ModelCard.from_dict(d, "models/x/kvloop.json")
    assert "models/x/kvloop.json" in str(err.value)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="kvloop.json missing"):
        ModelCard.load(tmp_path)
    (tmp_path / "kvloop.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot read the model card"):
        ModelCard.load(tmp_path)


def test_saved_model_carries_its_card_and_decisions_change_the_version(tmp_path: Path) -> None:
    model = build_model("tiny", seed=0)
    card = _mock_card()
    model.save_pretrained(tmp_path, card)
    loaded = ModelCard.load(tmp_path)
    assert loaded.arch == "tiny" and loaded.max_length == model.max_length
    assert loaded.fusion_raw == model.fusion_raw.tolist()  # the model's, not the given card's
    assert loaded.auto_accept == card.auto_accept and loaded.training == card.training
    v1 = model_version(tmp_path)
    loaded.auto_accept["company"] = 0.99
    loaded.save(tmp_path)
    assert model_version(tmp_path) != v1  # routing decisions are part of the version
