"""KVPredictor: result structure, OCR-variant merging, tags, no side effects (tiny model)."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from extractor.document import Document, ExtractionResult, Word
from extractor.model.calibrate import Calibrator, DecisionProfile
from extractor.model.predictor import KVPredictor
from extractor.model.zoo import build_model


def _mock_doc(with_variant: bool = False) -> Document:
    words = [Word(t, (10 * i, 10, 10 * i + 8, 20)) for i, t in
             enumerate(["SHOP", "SDN", "BHD", "19/10/2018", "TOTAL", "60.30"])]
    variants = {"psm6": [Word("TOTAL", (40, 10, 48, 20)), Word("60.80", (50, 10, 58, 20))]}
    return Document("r1", words, 100, 40, variants=variants if with_variant else {})


def test_predict_returns_k_ranked_candidates_per_field() -> None:
    pred = KVPredictor(build_model("tiny", seed=0))
    doc = _mock_doc()
    before = copy.deepcopy(doc.export())
    res = pred.predict([doc], k=3)[0]
    assert doc.export() == before  # no side effects
    assert isinstance(res, ExtractionResult) and set(res.fields) == set(pred.schema.field_names)
    assert res.model_version == pred.version and res.doc_hash == doc.content_hash()
    for fr in res.fields.values():
        assert len(fr.candidates) <= 3
        assert 0.0 <= fr.confidence <= 1.0
        scores = [c.score for c in fr.candidates]
        assert scores == sorted(scores, reverse=True)
    assert ExtractionResult.from_dict(res.export()).export() == res.export()


def test_variants_add_candidates_and_mix_scores() -> None:
    model = build_model("tiny", seed=0)
    # make "B-TOTAL" likely everywhere so every pass proposes amounts
    with torch.no_grad():
        b = model.schema.label2id["B-TOTAL"]
        model.bert.classifier.bias[b] += 6.0
        model.layoutlm.classifier.bias[b] += 6.0
    pred = KVPredictor(model)
    plain = pred.predict([_mock_doc(False)], k=10)[0].fields["total"]
    mixed = pred.predict([_mock_doc(True)], k=10)[0].fields["total"]
    vals = {c.value: c for c in mixed.candidates}
    assert "60.80" in vals and vals["60.80"].source == "variant:psm6"
    assert vals["60.80"].word_indices == []
    assert "60.80" not in {c.value for c in plain.candidates}
    # a value only the main pass reads keeps half its mass in a two-pass mixture
    p_main = {c.value: c.score for c in plain.candidates}
    if "SHOP" in p_main and "SHOP" in vals:
        assert abs(vals["SHOP"].score - p_main["SHOP"] / 2) < 1e-6


def test_word_tags_one_label_per_word() -> None:
    pred = KVPredictor(build_model("tiny", seed=0))
    doc = _mock_doc(True)
    tags = pred.word_tags(doc)
    assert len(tags) == len(doc.words) and set(tags) <= set(pred.schema.labels)


def test_empty_document_gives_absent_fields() -> None:
    pred = KVPredictor(build_model("tiny", seed=0))
    res = pred.predict([Document("empty", [], 10, 10)])[0]
    assert all(fr.candidates == [] for fr in res.fields.values())


def test_decisions_follow_the_ocr_engine_of_the_page() -> None:
    model = build_model("tiny", seed=0)
    tesseract = DecisionProfile(Calibrator(bias=2.0, n=10), absent_threshold=1.01)
    pred = KVPredictor(model, DecisionProfile(absent_threshold=0.0),  # default: always absent
                       ocr_profiles={"tesseract": tesseract})
    given = pred.predict([_mock_doc()])[0]
    read = pred.predict([replace(_mock_doc(), ocr="tesseract:psm6")])[0]
    assert all(fr.value is None for fr in given.fields.values())
    assert all(fr.value is not None for fr in read.fields.values())  # never absent
    raw = pred.uncalibrated().predict([replace(_mock_doc(), ocr="tesseract:psm6")])[0]
    for name, fr in read.fields.items():
        assert fr.confidence == pytest.approx(tesseract.calibrator(raw.fields[name].confidence),
                                              rel=1e-9)  # two forwards: last-bit noise
        assert fr.confidence > raw.fields[name].confidence
    assert pred.uncalibrated().ocr_profiles["tesseract"].absent_threshold == 1.01


def test_merged_fields_decided_at_any_threshold_equal_a_fresh_decode() -> None:
    pred = KVPredictor(build_model("tiny", seed=0))
    docs = [_mock_doc(True), replace(_mock_doc(), id="r2")]
    lps = pred.pass_log_probs(docs)
    merged = pred.merged_fields(docs, lps)  # decoded once, at the default threshold
    for thr in (0.0, 0.3, 0.9, 1.01):
        pred.default_profile.absent_threshold = thr
        fresh = [r.export() for r in pred.results_from_log_probs(docs, lps)]
        assert [r.export() for r in pred.results_from_merged(docs, merged)] == fresh


def _two_engine_doc(variant_total: str) -> Document:
    """A page PP-OCRv6 led, with one tesseract pass beside it (as the default engines read)."""
    doc = replace(_mock_doc(), ocr="rapidocr:ppocrv6")
    words = [replace(w, text=variant_total) if w.text == "60.30" else w for w in doc.words]
    return replace(doc, variants={"psm6": words},
                   meta={"ocr": {"engines": {"ppocrv6": "rapidocr", "psm6": "tesseract"}}})


def test_engines_that_read_the_same_value_agree() -> None:
    model = build_model("tiny", seed=0)
    with torch.no_grad():  # every word a one-word total: the best total is one of the amounts
        b = model.schema.label2id["B-TOTAL"]
        model.bert.classifier.bias[b] += 6.0
        model.layoutlm.classifier.bias[b] += 6.0
    pred = KVPredictor(model)
    same = pred.predict([_two_engine_doc("60.30")], k=10)[0].fields["total"]
    assert pred.pass_engines(_two_engine_doc("60.30")) == ["rapidocr", "tesseract"]
    assert same.top is not None and same.top.engines == ["rapidocr", "tesseract"]
    assert same.agreement == 2
    # where the readings differ, neither value has both engines behind it
    differ = pred.predict([_two_engine_doc("60.80")], k=10)[0].fields["total"]
    assert all(len(c.engines) <= 1 for c in differ.candidates
               if c.value in ("60.30", "60.80"))
    # one engine alone never claims agreement
    alone = pred.predict([replace(_mock_doc(), ocr="rapidocr:ppocrv6")], k=10)[0]
    assert all(c.engines == [] for fr in alone.fields.values() for c in fr.candidates)
    assert all(fr.agreement == 0 for fr in alone.fields.values())
    exported = same.export()["candidates"][0]
    assert exported["engines"] == ["rapidocr", "tesseract"]
    assert "engines" not in alone.fields["total"].export()["candidates"][0]


def test_image_pages_use_another_engines_profile_when_theirs_is_missing() -> None:
    tesseract = DecisionProfile(absent_threshold=1.01)
    pred = KVPredictor(build_model("tiny", seed=0), DecisionProfile(absent_threshold=0.0),
                       ocr_profiles={"tesseract": tesseract})
    rapid = DecisionProfile(absent_threshold=0.5)
    assert pred.profile(_two_engine_doc("60.30")) is tesseract
    assert pred.profile(replace(_mock_doc(), ocr="rapidocr:ppocrv6")) is tesseract
    pred.ocr_profiles["rapidocr"] = rapid
    assert pred.profile(_two_engine_doc("60.30")) is rapid  # the leading engine's first
    assert pred.profile(replace(_mock_doc(), ocr="tesseract:psm6")) is tesseract
    given = replace(_mock_doc(True), variants={"tesseract:psm6": []})
    assert pred.profile(given) is pred.default_profile  # given words stay on the default


def test_a_profile_writes_its_upper_fields_in_capitals_and_only_those() -> None:
    model = build_model("tiny", seed=0)
    with torch.no_grad():  # every word likely a company and a total
        for label in ("B-COMPANY", "B-TOTAL"):
            model.bert.classifier.bias[model.schema.label2id[label]] += 6.0
            model.layoutlm.classifier.bias[model.schema.label2id[label]] += 6.0
    doc = replace(_mock_doc(), words=[replace(w, text=w.text.title()) for w in _mock_doc().words])
    as_read = KVPredictor(model, DecisionProfile(absent_threshold=1.01))
    upper = KVPredictor(model, DecisionProfile(absent_threshold=1.01, upper_fields=("company",)))
    merged = as_read.merged_fields([doc], as_read.pass_log_probs([doc], "fused"))
    read = as_read.results_from_merged([doc], merged)[0]
    capitals = upper.results_from_merged([doc], merged)[0]
    assert any(c.value != c.value.upper() for c in read.fields["company"].candidates)
    assert [c.value for c in capitals.fields["company"].candidates] == [
        c.value.upper() for c in read.fields["company"].candidates]
    assert capitals.fields["total"].export() == read.fields["total"].export()
    # the merged candidates are not changed: deciding them again as read gives the same
    assert as_read.results_from_merged([doc], merged)[0].export() == read.export()


def test_upper_fields_round_trip_and_old_profiles_export_as_before() -> None:
    plain = DecisionProfile(absent_threshold=0.7)
    assert "upper_fields" not in plain.export()
    upper = DecisionProfile(absent_threshold=0.7, upper_fields=("company", "address"))
    assert DecisionProfile.from_dict(upper.export()) == upper
    assert DecisionProfile.from_dict(plain.export()).upper_fields == ()
