"""Calibration of field confidence: reliability bins and expected calibration error (ECE).

An item is one (document, field) answer: the model's confidence that its answer is right, and
whether it was (``extractor.scoring.is_correct``: the top value, or "not present", equals the
gold under the strict key). The bins and the ECE (Guo et al. 2017, Eq. 3) are
``extractor.scoring``'s, the ones the extractor's calibrator is chosen by; this module keeps
them per field for the report.
"""

from __future__ import annotations

from dataclasses import asdict

from extractor.scoring import ece, reliability_bins


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
