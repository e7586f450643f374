"""Calibration of field confidence: reliability bins and expected calibration error (ECE).

An item is one (document, field) answer: the model's confidence that its answer is right, and
whether it was (the top value, or "not present", matches the gold under the comparison key).
ECE follows Guo et al. 2017 ("On Calibration of Modern Neural Networks", Eq. 3):
``sum_b |B_b|/n * |acc(B_b) - conf(B_b)|`` over equal-width confidence bins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass
class ReliabilityBin:
    """One confidence bin ``[lo, hi)`` (the last bin includes 1.0)."""

    lo: float
    hi: float
    count: int
    confidence: float
    accuracy: float


def reliability_bins(conf: Sequence[float], correct: Sequence[bool],
                     n_bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1] with the mean confidence and accuracy of each.

    >>> [(b.count, b.accuracy) for b in reliability_bins([0.05, 0.95, 0.9], [0, 1, 0], 2)]
    [(1, 0.0), (2, 0.5)]
    """
    if len(conf) != len(correct):
        raise ValueError(f"{len(conf)} confidences but {len(correct)} correctness flags")
    bins = []
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        idx = [i for i, c in enumerate(conf)
               if lo <= c < hi or (b == n_bins - 1 and c >= hi)]
        n = len(idx)
        bins.append(ReliabilityBin(
            lo=lo, hi=hi, count=n,
            confidence=sum(conf[i] for i in idx) / n if n else 0.0,
            accuracy=sum(bool(correct[i]) for i in idx) / n if n else 0.0))
    return bins


def ece(bins: Sequence[ReliabilityBin]) -> float:
    """Expected calibration error from reliability bins.

    >>> round(ece(reliability_bins([0.05, 0.95, 0.9], [0, 1, 0], 2)), 4)
    0.3
    """
    n = sum(b.count for b in bins)
    return sum(b.count / n * abs(b.accuracy - b.confidence) for b in bins) if n else 0.0


class Calibration:
    """Collects (confidence, correct) items overall and per field; ``summary()`` has ECE + bins.

    >>> m = Calibration(n_bins=2)
    >>> m.update("total", 0.9, True); m.update("total", 0.8, False); m.update("date", 0.2, False)
    >>> s = m.summary(); round(s["overall"]["ece"], 4), s["fields"]["date"]["n"]
    (0.3, 1)
    """

    def __init__(self, n_bins: int = 10) -> None:
        self.n_bins = n_bins
        self.reset()

    def reset(self) -> None:
        self.items: dict[str, list[tuple[float, bool]]] = {}

    def update(self, field: str, confidence: float, correct: bool) -> None:
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"field {field!r}: confidence {confidence} is outside [0, 1]")
        self.items.setdefault(field, []).append((float(confidence), bool(correct)))

    def _stats(self, items: list[tuple[float, bool]]) -> dict:
        conf = [c for c, _ in items]
        ok = [k for _, k in items]
        bins = reliability_bins(conf, ok, self.n_bins)
        return {"ece": ece(bins), "n": len(items),
                "mean_confidence": sum(conf) / len(conf) if conf else 0.0,
                "accuracy": sum(ok) / len(ok) if ok else 0.0,
                "bins": [asdict(b) for b in bins]}

    def summary(self) -> dict:
        every = [it for f in self.items for it in self.items[f]]
        return {"overall": self._stats(every),
                "fields": {f: self._stats(v) for f, v in self.items.items()},
                "n_bins": self.n_bins}
