"""SROIE task-3 style field scores used for early stopping and the extractor benchmark.

Micro-averaged over (document, field) pairs: a prediction is a non-empty top value, a gold is
a non-null gold value, a hit is a prediction equal to the gold under the comparison key
(``strict_key`` or ``lenient_key``). Oracle recall@k asks whether the gold value is among the
first k candidates (lenient).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from extractor.document import ExtractionResult
from extractor.normalize import lenient_key, strict_key

KEYS: dict[str, Callable[[str | None], str]] = {"lenient": lenient_key, "strict": strict_key}


def prf(hits: int, n_pred: int, n_gold: int) -> dict[str, float]:
    p = hits / n_pred if n_pred else 0.0
    r = hits / n_gold if n_gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


@dataclass
class FieldScores:
    """Accumulates field-level hits; ``update`` per document, ``summary`` at the end.

    >>> from extractor.document import FieldResult, Candidate, ExtractionResult
    >>> s = FieldScores(k_max=2)
    >>> r = ExtractionResult("1", "v", {"total": FieldResult("total", [Candidate("9.00", .6),
    ...     Candidate("10.00", .4)], .6)})
    >>> s.update({"total": "10.00"}, r)
    >>> s.summary()["lenient"]["f1"], s.summary()["recall_at"][2]
    (0.0, 1.0)
    """

    k_max: int = 5
    counts: dict[str, dict[str, list[int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: [0, 0, 0])))
    recall_hits: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    n_gold: int = 0
    confidences: list[float] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)

    def reset(self) -> None:
        self.__init__(self.k_max)  # type: ignore[misc]

    def update(self, gold: dict[str, str | None], result: ExtractionResult) -> None:
        for name, fr in result.fields.items():
            g = gold.get(name)
            has_gold = g is not None and bool(lenient_key(g))
            for mode, key in KEYS.items():
                c = self.counts[mode][name]
                c[1] += fr.value is not None
                c[2] += has_gold
                c[0] += bool(has_gold and fr.value is not None and key(fr.value) == key(g))
            if fr.value is not None or has_gold:
                self.confidences.append(fr.confidence)
                self.correct.append(lenient_key(fr.value) == lenient_key(g) if has_gold
                                    else fr.value is None)
            if has_gold:
                self.n_gold += 1
                keys = [lenient_key(c.value) for c in fr.candidates]
                for k in range(1, self.k_max + 1):
                    self.recall_hits[k] += lenient_key(g) in keys[:k]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for mode in KEYS:
            tot = [sum(c[i] for c in self.counts[mode].values()) for i in range(3)]
            out[mode] = prf(*tot)
            out[mode]["per_field"] = {n: prf(*c)["f1"] for n, c in self.counts[mode].items()}
        out["recall_at"] = {k: (self.recall_hits[k] / self.n_gold if self.n_gold else 0.0)
                            for k in range(1, self.k_max + 1)}
        return out


def score_results(golds: Sequence[dict[str, str | None]], results: Sequence[ExtractionResult],
                  k_max: int = 5) -> FieldScores:
    s = FieldScores(k_max=k_max)
    for g, r in zip(golds, results):
        s.update(g, r)
    return s
