"""The correctness model's features on hand-built pages, and the model itself."""

from __future__ import annotations

import numpy as np
import pytest

from extractor.correctness import (
    FEATURES,
    CorrectnessModel,
    amounts_on_page,
    field_features,
    fit_correctness,
    readings,
)
from extractor.document import RECEIPT_SCHEMA, Candidate, Document, FieldResult, Word
from extractor.vendor_memory import VendorMemory


def _page(ocr: str = "provided", variants: dict | None = None) -> Document:
    words = [Word("KEDAI", (10, 10, 80, 30), line=0), Word("MAJU", (90, 10, 150, 30), line=0),
             Word("DATE:", (10, 40, 60, 60), line=1), Word("01/02/2018", (70, 40, 150, 60), line=1),
             Word("SUBTOTAL", (10, 70, 70, 90), line=2), Word("9.50", (100, 70, 150, 90), line=2),
             Word("TOTAL", (10, 100, 70, 120), line=3), Word("9.50", (100, 100, 150, 120), line=3),
             Word("CASH", (10, 130, 60, 150), line=4),
             Word("5.00", (100, 130, 150, 150), 0.6, line=4)]
    return Document("p1", words, 200, 300, ocr=ocr, variants=variants or {})


def feats(doc: Document, name: str, fr: FieldResult | None,
          memory: VendorMemory | None = None) -> dict[str, float]:
    return dict(zip(FEATURES, field_features(doc, fr, RECEIPT_SCHEMA[name], memory)))


def test_amount_features_and_keyword() -> None:
    doc = _page()
    total = FieldResult("total", [Candidate("9.50", 0.8, [7]), Candidate("5.00", 0.1, [9])],
                        0.9)
    f = feats(doc, "total", total)
    assert f["margin"] == pytest.approx(0.7)
    assert (f["type_ok"], f["amount_repeated"], f["amount_largest"], f["keyword"]) == (1, 1, 1, 1)
    assert f["y"] == pytest.approx(110 / 300)
    assert f["given_words"] == 1 and f["absent"] == 0
    change = feats(doc, "total", FieldResult("total", [Candidate("5.00", 0.5, [9])], 0.5))
    assert (change["amount_repeated"], change["amount_largest"], change["keyword"]) == (0, 0, 0)
    assert change["ocr_confidence"] == pytest.approx(0.6)
    assert change["margin"] == pytest.approx(0.5)
    assert amounts_on_page(doc) == {9.5, 5.0}


def test_type_check_and_absent() -> None:
    doc = _page()
    assert feats(doc, "date", FieldResult("date", [Candidate("01/02/2018", .9, [3])], .9))[
        "type_ok"] == 1
    assert feats(doc, "date", FieldResult("date", [Candidate("32/13/2018", .9)], .9))[
        "type_ok"] == 0
    absent = feats(doc, "address", None)
    assert absent["absent"] == 1 and absent["logit_confidence"] < -5


def test_readings_count_passes_and_engines() -> None:
    other = [Word("KEDAI MAJU", (10, 10, 150, 30))]
    wrong = [Word("KEDAl MAJU", (10, 10, 150, 30))]
    doc = _page("tesseract:psm6", {"tesseract:psm4": other, "paddle:v1": other,
                                   "tesseract:psm11": wrong})
    assert readings(doc, "kedai maju") == (pytest.approx(3 / 4), 2)
    f = feats(doc, "company", FieldResult("company", [Candidate("KEDAI MAJU", .9, [0, 1])], .9))
    assert f["readings"] == pytest.approx(0.75) and f["sources"] == 2 and f["given_words"] == 0


def test_memory_vote() -> None:
    doc = _page()
    memory = VendorMemory().add_all([{"company": "KEDAI MAJU", "address": "1 JALAN"}])
    fr = FieldResult("company", [Candidate("KEDAI MAJU", .9, [0, 1])], .9)
    assert feats(doc, "company", fr, memory)["memory"] == 1
    other = VendorMemory().add_all([{"company": "KEDAI", "address": "1 JALAN"}])
    assert feats(doc, "company", fr, other)["memory"] == -1
    assert feats(doc, "company", fr)["memory"] == 0
    assert feats(doc, "total", FieldResult("total", [Candidate("9.50", .9)], .9),
                 memory)["memory"] == 0  # the memory does not know totals


def _synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    names = [["company", "total"][i % 2] for i in range(n)]
    logit = 2.0 * X[:, 0] + 1.5 * X[:, 2] + np.array([0.5 if m == "total" else -0.5
                                                        for m in names])
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    return X, names, y


def test_fit_learns_the_signal_and_round_trips() -> None:
    X, names, y = _synthetic(2000)
    m = fit_correctness(X, names, y, ["company", "total"])
    p = m.predict(X, names)
    assert ((p > 0.5) == y).mean() > 0.75
    assert abs(p.mean() - y.mean()) < 0.02  # log-loss fit: calibrated in the large
    coef = dict(zip(FEATURES, m.coef))
    assert coef["logit_confidence"] > 1 and coef["margin"] > 0.8 and abs(coef["y"]) < 0.3
    again = CorrectnessModel.from_dict(m.export())
    assert np.allclose(again.predict(X, names), p)


def test_one_class_data_gives_the_constant_share() -> None:
    X, names, _ = _synthetic(50)
    m = fit_correctness(X, names, [False] * 50, ["company", "total"])
    assert np.all(m.predict(X, names) < 1e-3)
    assert m.predict(np.zeros((0, len(FEATURES))), []).shape == (0,)


def test_bad_model_dicts_are_refused() -> None:
    X, names, y = _synthetic(200)
    d = fit_correctness(X, names, y, ["company", "total"]).export()
    with pytest.raises(ValueError, match="kind"):
        CorrectnessModel.from_dict({**d, "kind": "forest"})
    with pytest.raises(ValueError, match="refit"):
        CorrectnessModel.from_dict({**d, "features": ["logit_confidence"]})
    with pytest.raises(ValueError, match="coefficient count"):
        CorrectnessModel.from_dict({**d, "coef": d["coef"][:-1]})


def test_amounts_on_page_read_inside_words_and_point_thousands() -> None:
    """``:9,000`` and ``TOTAL:60.30`` print an amount with a label; ``60.000`` is 60,000; the
    numbers of a date are not amounts on the page."""
    words = [Word(t, (0, 0, 1, 1)) for t in ("Change", ":9,000", "TOTAL:60.30", "60.000",
                                             "01/02/2018")]
    doc = Document("d", words, 10, 10)
    assert amounts_on_page(doc) == {9000.0, 60.3, 60000.0}
