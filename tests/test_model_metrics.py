"""Field scores (SROIE task-3 style) used for early stopping and the benchmark."""

from __future__ import annotations

import doctest

import extractor.model.calibrate
import extractor.model.metrics
from extractor.document import Candidate, ExtractionResult, FieldResult
from extractor.model.metrics import score_results


def _res(values: dict[str, list[str]]) -> ExtractionResult:
    return ExtractionResult("d", "v", {k: FieldResult(k, [Candidate(x, 0.5) for x in v], 0.5)
                                       for k, v in values.items()})


def test_doctests() -> None:
    for mod in (extractor.model.metrics, extractor.model.calibrate):
        assert doctest.testmod(mod).failed == 0


def test_strict_vs_lenient_and_missing_predictions() -> None:
    golds = [{"address": "27, JALAN DEDAP", "total": "9.00"}, {"address": "A B", "total": "1.00"}]
    results = [_res({"address": ["27,JALAN DEDAP"], "total": ["9.00"]}),
               _res({"address": ["a b"], "total": []})]
    s = score_results(golds, results).summary()
    assert s["lenient"]["precision"] == 1.0 and s["lenient"]["recall"] == 0.75
    assert s["strict"]["f1"] == 2 * (1 / 3 * 1 / 4) / (1 / 3 + 1 / 4)
    assert s["lenient"]["per_field"]["total"] == 2 * 0.5 / 1.5
    assert s["recall_at"][1] == 0.75
