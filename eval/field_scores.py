"""Field scores of ``ExtractionResult``s, for early stopping and the extractor benchmark.

An adapter from results to ``eval.metrics``: ``FieldMatch`` (SROIE task-3 P/R/F1, strict and
lenient) and ``OracleRecallAtK`` (lenient), plus the (confidence, correct) items of
``extractor.scoring`` (strict ``is_correct``, (absent, absent) answers counted), the same
items ``kvloop eval`` bins for ECE and sweeps for savings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eval.metrics import FieldMatch, OracleRecallAtK
from extractor.document import ExtractionResult
from extractor.normalize import lenient_key
from extractor.scoring import Items, confidence_item, pool_items


class FieldScores:
    """Accumulates field-level scores; ``update`` per document, ``summary`` at the end.

    >>> from extractor.document import FieldResult, Candidate, ExtractionResult
    >>> s = FieldScores(k_max=2)
    >>> r = ExtractionResult("1", "v", {"total": FieldResult("total", [Candidate("9.00", .6),
    ...     Candidate("10.00", .4)], .6), "date": FieldResult("date", [], .8)})
    >>> s.update({"total": "10.00"}, r)
    >>> s.summary()["lenient"]["f1"], s.summary()["recall_at"][2]
    (0.0, 1.0)
    >>> s.items
    {'total': ([0.6], [False]), 'date': ([0.8], [True])}
    """

    def __init__(self, k_max: int = 5) -> None:
        self.k_max = k_max
        self.reset()

    def reset(self) -> None:
        self.fields: list[str] = []
        self.matches: dict[str, FieldMatch] = {}
        self.recall: OracleRecallAtK | None = None
        self.items: Items = {}

    @property
    def confidences(self) -> list[float]:
        """Every field's item confidences (field by field)."""
        return pool_items(self.items)[0]

    @property
    def correct(self) -> list[bool]:
        """Whether each item of ``confidences`` was correct (``extractor.scoring.is_correct``)."""
        return pool_items(self.items)[1]

    def _ensure_fields(self, names: Sequence[str]) -> None:
        if not self.fields:  # the schema is known from the first result
            self.fields = list(names)
            self.matches = {k: FieldMatch(self.fields, key=k) for k in ("lenient", "strict")}
            self.recall = OracleRecallAtK(self.fields, max_k=self.k_max, key="lenient")

    def update(self, gold: Mapping[str, str | None], result: ExtractionResult) -> None:
        self._ensure_fields(list(result.fields))
        gold = {k: (v if v is not None and lenient_key(v) else None) for k, v in gold.items()}
        for m in self.matches.values():
            m.update(gold, result.values())
        assert self.recall is not None
        self.recall.update(gold, {n: [c.value for c in fr.candidates]
                                  for n, fr in result.fields.items()})
        for name, fr in result.fields.items():
            conf, ok = confidence_item(gold.get(name), fr)
            confs, oks = self.items.setdefault(name, ([], []))
            confs.append(conf)
            oks.append(ok)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for mode, m in self.matches.items():
            s = m.summary()
            out[mode] = dict(s["overall"])
            out[mode]["per_field"] = {n: f["f1"] for n, f in s["fields"].items()}
        rec = self.recall.summary()["overall"] if self.recall else {}
        out["recall_at"] = {k: rec.get(f"@{k}", 0.0) for k in range(1, self.k_max + 1)}
        return out


def score_results(golds: Sequence[Mapping[str, str | None]],
                  results: Sequence[ExtractionResult], k_max: int = 5) -> FieldScores:
    """``FieldScores`` of ``results`` against the gold values at the same positions."""
    s = FieldScores(k_max=k_max)
    for g, r in zip(golds, results):
        s.update(g, r)
    return s
