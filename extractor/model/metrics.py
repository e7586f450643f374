"""Field scores for early stopping and the extractor benchmark, on ``eval.metrics``.

One scoring implementation serves training, benchmarks and reports: this adapter feeds
``ExtractionResult`` objects to ``eval.metrics.FieldMatch`` (SROIE task-3 P/R/F1, strict and
lenient) and ``OracleRecallAtK`` (lenient), and keeps the (confidence, correct) pairs that
calibration and ECE need.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eval.metrics import FieldMatch, OracleRecallAtK
from extractor.document import ExtractionResult
from extractor.normalize import lenient_key


class FieldScores:
    """Accumulates field-level scores; ``update`` per document, ``summary`` at the end.

    >>> from extractor.document import FieldResult, Candidate, ExtractionResult
    >>> s = FieldScores(k_max=2)
    >>> r = ExtractionResult("1", "v", {"total": FieldResult("total", [Candidate("9.00", .6),
    ...     Candidate("10.00", .4)], .6)})
    >>> s.update({"total": "10.00"}, r)
    >>> s.summary()["lenient"]["f1"], s.summary()["recall_at"][2]
    (0.0, 1.0)
    """

    def __init__(self, k_max: int = 5) -> None:
        self.k_max = k_max
        self.reset()

    def reset(self) -> None:
        self.fields: list[str] = []
        self.matches: dict[str, FieldMatch] = {}
        self.recall: OracleRecallAtK | None = None
        self.confidences: list[float] = []
        self.correct: list[bool] = []

    def _ensure_fields(self, names: Sequence[str]) -> None:
        if not self.fields:  # the schema is known from the first result
            self.fields = list(names)
            self.matches = {k: FieldMatch(self.fields, key=k) for k in ("lenient", "strict")}
            self.recall = OracleRecallAtK(self.fields, max_k=self.k_max, key="lenient")

    def update(self, gold: dict[str, str | None], result: ExtractionResult) -> None:
        self._ensure_fields(list(result.fields))
        gold = {k: (v if v is not None and lenient_key(v) else None) for k, v in gold.items()}
        for m in self.matches.values():
            m.update(gold, result.values())
        assert self.recall is not None
        self.recall.update(gold, {n: [c.value for c in fr.candidates]
                                  for n, fr in result.fields.items()})
        for name, fr in result.fields.items():
            g = gold.get(name)
            if fr.value is not None or g is not None:  # (absent, absent) says nothing
                self.confidences.append(fr.confidence)
                self.correct.append(lenient_key(fr.value) == lenient_key(g) if g is not None
                                    else fr.value is None)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for mode, m in self.matches.items():
            s = m.summary()
            out[mode] = dict(s["overall"])
            out[mode]["per_field"] = {n: f["f1"] for n, f in s["fields"].items()}
        rec = self.recall.summary()["overall"] if self.recall else {}
        out["recall_at"] = {k: rec.get(f"@{k}", 0.0) for k in range(1, self.k_max + 1)}
        return out


def score_results(golds: Sequence[dict[str, str | None]], results: Sequence[ExtractionResult],
                  k_max: int = 5) -> FieldScores:
    s = FieldScores(k_max=k_max)
    for g, r in zip(golds, results):
        s.update(g, r)
    return s
