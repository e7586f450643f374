"""eval.metrics against hand-computed values, SROIE normalisation rules included."""

from __future__ import annotations

import doctest

import pytest

import eval.metrics as metrics_mod
from eval.metrics import (
    EditSimilarity,
    FieldMatch,
    OracleRecallAtK,
    TokenBIO,
    edit_similarity,
    judge,
    levenshtein,
    prf,
)

FIELDS = ["company", "date", "address", "total"]


def test_doctests() -> None:
    res = doctest.testmod(metrics_mod)
    assert res.attempted > 0 and res.failed == 0


@pytest.mark.parametrize("gold,pred,key,expected", [
    # strict: whitespace runs collapsed and ends stripped, case and inner spacing kept
    ("27, JALAN  DEDAP 13,", " 27, JALAN DEDAP 13, ", "strict", (1, 0, 0)),
    ("27, JALAN DEDAP 13,", "27,JALAN DEDAP 13,", "strict", (0, 1, 1)),
    ("Indah Gift", "INDAH GIFT", "strict", (0, 1, 1)),
    # lenient: every whitespace removed, case folded
    ("27, JALAN DEDAP 13,", "27,JALAN DEDAP 13,", "lenient", (1, 0, 0)),
    ("Indah Gift", "INDAH  GIFT", "lenient", (1, 0, 0)),
    ("60.30", "RM60.30", "lenient", (0, 1, 1)),      # no value normalisation in the metric
    # absent gold: no prediction is nothing, a prediction is a false positive
    (None, None, "strict", (0, 0, 0)),
    ("", "   ", "strict", (0, 0, 0)),
    (None, "9.00", "strict", (0, 1, 0)),
    ("9.00", None, "strict", (0, 0, 1)),
    ("9.00", "  ", "lenient", (0, 0, 1)),
])
def test_judge_sroie_rules(gold, pred, key, expected) -> None:
    assert judge(gold, pred, metrics_mod.KEYS[key]) == expected


def test_field_match_hand_computed() -> None:
    docs: list[tuple[dict[str, str | None], dict[str, str | None]]] = [
        # doc 1: all four right (address differs only in whitespace) -> all correct
        ({"company": "ABC SDN BHD", "date": "01/02/2018", "address": "1, JALAN X,  KL",
          "total": "9.00"},
         {"company": "ABC SDN BHD", "date": "01/02/2018", "address": "1, JALAN X, KL",
          "total": "9.00"}),
        # doc 2: company right, date wrong (fp+fn), address missing (fn), total right
        ({"company": "XYZ", "date": "02/02/2018", "address": "2 JALAN Y", "total": "3.50"},
         {"company": "XYZ", "date": "02/03/2018", "address": None, "total": "3.50"}),
        # doc 3: address absent in gold but predicted (fp); other three right
        ({"company": "Q", "date": "03/02/2018", "address": None, "total": "1.00"},
         {"company": "Q", "date": "03/02/2018", "address": "somewhere", "total": "1.00"}),
    ]
    m = FieldMatch(FIELDS)
    for g, p in docs:
        m.update(g, p)
    s = m.summary()
    # tp = 4 + 2 + 3 = 9; fp = 1 (date) + 1 (address doc 3) = 2; fn = 1 (date) + 1 (address) = 2
    assert (s["overall"]["tp"], s["overall"]["fp"], s["overall"]["fn"]) == (9, 2, 2)
    assert s["overall"]["precision"] == pytest.approx(9 / 11)
    assert s["overall"]["recall"] == pytest.approx(9 / 11)
    assert s["overall"]["f1"] == pytest.approx(9 / 11)
    assert s["doc_accuracy"] == pytest.approx(1 / 3)
    assert s["fields"]["address"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5,
                                      "tp": 1, "fp": 1, "fn": 1}
    assert s["fields"]["total"]["f1"] == 1.0
    m.reset()
    assert m.summary()["docs"] == 0 and m.summary()["overall"]["tp"] == 0


def test_field_match_rejects_unknown_key() -> None:
    with pytest.raises(ValueError, match="key must be one of"):
        FieldMatch(FIELDS, key="fuzzy")


def test_prf_undefined_is_zero() -> None:
    assert prf(0, 0, 0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert prf(1, 0, 3) == {"precision": 1.0, "recall": 0.25, "f1": pytest.approx(0.4)}


def test_levenshtein_and_similarity() -> None:
    assert levenshtein("SDN BHD", "SDN. BHD") == 1
    assert levenshtein("abc", "") == 3
    assert edit_similarity("SDN BHD", "SDN. BHD") == pytest.approx(1 - 1 / 8)
    # strict key first: whitespace differences cost nothing
    assert edit_similarity("A  B", " A B") == 1.0
    assert edit_similarity(None, "abcd") == 0.0


def test_edit_similarity_anls_threshold() -> None:
    m = EditSimilarity(["company", "total"])
    m.update({"company": "ABCDEFGHIJ", "total": "10.00"}, {"company": "ABCDEFGHIX", "total": "99"})
    m.update({"company": None, "total": None}, {"company": None, "total": "5"})
    s = m.summary()
    # company 0.9; total: lev("10.00","99") = 5 -> 0.0; absent-gold total predicted "5" -> 0.0
    assert s["fields"]["company"] == {"nes": pytest.approx(0.9), "anls": pytest.approx(0.9),
                                      "n": 1}
    assert s["fields"]["total"]["n"] == 2
    assert s["overall"]["nes"] == pytest.approx(0.3)
    m2 = EditSimilarity(["x"])
    m2.update({"x": "abcd"}, {"x": "abzz"})    # similarity 0.5: kept by ANLS (>= tau)
    m2.update({"x": "abcd"}, {"x": "azzz"})    # similarity 0.25: zeroed by ANLS
    s2 = m2.summary()["overall"]
    assert s2["nes"] == pytest.approx(0.375) and s2["anls"] == pytest.approx(0.25)


def test_oracle_recall_strict_and_lenient() -> None:
    strict, lenient = OracleRecallAtK(["company"], 5), OracleRecallAtK(["company"], 5, "lenient")
    cases = [("ABC SDN BHD", ["x", "y", "abc sdn bhd", "ABC  SDN BHD"]),
             ("Q", ["Q"]), ("Z", []), (None, ["anything"])]
    for gold, cands in cases:
        strict.update({"company": gold}, {"company": cands})
        lenient.update({"company": gold}, {"company": cands})
    # three present golds: strict finds "Q" at 1 and "ABC  SDN BHD" (whitespace) at 4
    assert strict.summary()["overall"] == pytest.approx(
        {"@1": 1 / 3, "@2": 1 / 3, "@3": 1 / 3, "@4": 2 / 3, "@5": 2 / 3})
    assert lenient.summary()["overall"]["@3"] == pytest.approx(2 / 3)
    assert lenient.summary()["overall"]["@2"] == pytest.approx(1 / 3)


def test_token_bio_hand_computed() -> None:
    m = TokenBIO()
    # gold entities: COMPANY(0-1), TOTAL(4); predicted: COMPANY(0-1), DATE(3), TOTAL(4-5)
    m.update(["B-COMPANY", "I-COMPANY", "O", "O", "B-TOTAL", "O"],
             ["B-COMPANY", "I-COMPANY", "O", "B-DATE", "B-TOTAL", "I-TOTAL"])
    s = m.summary()
    assert s["overall"]["precision"] == pytest.approx(1 / 3)
    assert s["overall"]["recall"] == pytest.approx(1 / 2)
    assert s["fields"]["COMPANY"]["f1"] == 1.0
    assert s["fields"]["TOTAL"]["f1"] == 0.0
    with pytest.raises(ValueError, match="differ in length"):
        m.update(["O"], ["O", "O"])
