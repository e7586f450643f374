"""Field scores (SROIE task-3 style) used for early stopping and the benchmark."""

from __future__ import annotations

import doctest

import pytest

import eval.field_scores
from eval.field_scores import score_results
from extractor.document import Candidate, ExtractionResult, FieldResult
from extractor.scoring import confidence_items, pool_items


def _res(values: dict[str, list[str]], conf: float = 0.5) -> ExtractionResult:
    return ExtractionResult("d", "v", {k: FieldResult(k, [Candidate(x, 0.5) for x in v], conf)
                                       for k, v in values.items()})


def test_doctests() -> None:
    res = doctest.testmod(eval.field_scores)
    assert res.attempted > 0 and res.failed == 0


def test_strict_vs_lenient_and_missing_predictions() -> None:
    golds = [{"address": "27, JALAN DEDAP", "total": "9.00"}, {"address": "A B", "total": "1.00"}]
    results = [_res({"address": ["27,JALAN DEDAP"], "total": ["9.00"]}),
               _res({"address": ["a b"], "total": []})]
    s = score_results(golds, results).summary()
    assert s["lenient"]["precision"] == 1.0 and s["lenient"]["recall"] == 0.75
    assert s["strict"]["f1"] == 2 * (1 / 3 * 1 / 4) / (1 / 3 + 1 / 4)
    assert s["lenient"]["per_field"]["total"] == 2 * 0.5 / 1.5
    assert s["recall_at"][1] == 0.75


def test_items_are_strict_and_count_absent_absent() -> None:
    golds: list[dict[str, str | None]] = [{"company": "ABC SDN BHD", "total": None},
                                          {"company": "X", "total": ""}]
    results = [_res({"company": ["abc sdnbhd"], "total": []}, 0.7),   # lenient-only match
               _res({"company": ["X"], "total": ["3.00"]}, 0.9)]
    fs = score_results(golds, results)
    assert fs.items == {"company": ([0.7, 0.9], [False, True]),
                        "total": ([0.7, 0.9], [True, False])}
    # the items kvloop eval and the trainer collect, not a look-alike
    assert fs.items == confidence_items(golds, results)
    assert (fs.confidences, fs.correct) == pool_items(fs.items)
    fs.reset()
    assert fs.items == {} and fs.confidences == []


@pytest.mark.parametrize("conf", [1.5, float("nan")])
def test_items_clip_confidence(conf: float) -> None:
    fs = score_results([{"total": "1"}], [_res({"total": ["1"]}, conf)])
    assert fs.confidences == [1.0 if conf > 1 else 0.0]
