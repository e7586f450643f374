"""The training-page lexicon and its correction of low-confidence OCR misreads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from extractor.document import Document, Word
from extractor.lexicon import Lexicon, build_lexicon, one_edit_neighbours
from extractor.model.calibrate import Calibrator, DecisionProfile
from extractor.model.predictor import KVPredictor
from extractor.model.zoo import build_model

LEX = Lexicon({"SDN": 40, "BHD": 40, "MART": 5, "MARK": 2, "D.I.Y.": 7, "PART": 5}, 2)


def test_one_edit_neighbours() -> None:
    near = one_edit_neighbours("SON")
    assert {"SDN", "SO", "SONS", "ON"} <= near and "SON" not in near
    assert "SDNN" not in one_edit_neighbours("SO")


def test_corrects_one_edit_misreads_to_the_most_frequent_word() -> None:
    assert LEX.correct("SON") == "SDN"
    assert LEX.correct("HART") == "MART"  # MART and PART tie on count: alphabetical
    assert LEX.correct("D.I.¥.") == "D.I.Y."
    assert LEX.correct("MARX") == "MART"  # MART (5) over MARK (2)


def test_leaves_known_short_letterless_and_far_words() -> None:
    for text in ("SDN", "SN", "73.00", "12/03/2018", "TESCO", "S0"):
        assert LEX.correct(text) == text


def test_only_words_read_below_the_bar_are_corrected() -> None:
    words = [Word("SON", (0, 0, 10, 10), 0.5), Word("SON", (20, 0, 30, 10), 0.97),
             Word("BHD", (40, 0, 50, 10), 0.2)]
    fixed = LEX.correct_words(words, below=0.9)
    assert [w.text for w in fixed] == ["SDN", "SON", "BHD"]
    assert fixed[1] is words[1] and fixed[2] is words[2] and words[0].text == "SON"
    assert fixed[0].box == words[0].box and fixed[0].confidence == 0.5
    assert [w.text for w in LEX.correct_words(words, below=0.0)] == ["SON", "SON", "BHD"]


def test_built_from_page_words_only_and_saved_beside_the_model(tmp_path: Path) -> None:
    page = [Word(t, (0, 0, 1, 1)) for t in ("SDN", "BHD", "SDN", "BHD", "ONCE")]
    doc = Document("a", page, 10, 10, variants={"psm4": [Word("SON", (0, 0, 1, 1))] * 5})
    lex = build_lexicon([doc], min_count=2)
    assert lex.counts == {"SDN": 2, "BHD": 2}
    lex.save(tmp_path)
    assert Lexicon.load(tmp_path) == lex
    assert Lexicon.load(tmp_path / "elsewhere") is None
    (tmp_path / "lexicon.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="lexicon.json"):
        Lexicon.load(tmp_path)


def test_predictor_corrects_tesseract_values_only_with_a_profile_bar() -> None:
    model = build_model("tiny", seed=0)
    with torch.no_grad():  # every word likely starts a company span: one-word candidates
        b = model.schema.label2id["B-COMPANY"]
        model.bert.classifier.bias[b] += 6.0
        model.layoutlm.classifier.bias[b] += 6.0
    words = [Word("SON", (10, 10, 40, 20), 0.4), Word("BHD", (50, 10, 80, 20), 0.9)]
    page = Document("r", words, 100, 40, ocr="tesseract:psm6")
    profile = DecisionProfile(Calibrator(), absent_threshold=1.01, correct_below=0.9)
    pred = KVPredictor(model, ocr_profiles={"tesseract": profile}, lexicon=LEX)
    values = {c.value for c in pred.predict([page], k=10)[0].fields["company"].candidates}
    assert "SDN" in values and "SON" not in values
    given = replace(page, ocr="provided")  # the default profile never corrects
    values = {c.value for c in pred.predict([given], k=10)[0].fields["company"].candidates}
    assert "SON" in values and "SDN" not in values
