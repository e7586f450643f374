"""Operator savings: how many fields could be auto-accepted, and at what precision.

Auto-accepting every answer whose confidence is at or above a threshold ``t`` gives a
*coverage* (share of all answers nobody has to look at) and a *precision* (share of those
accepted answers that are right, ``extractor.scoring.is_correct``). Sweeping ``t`` over the
observed confidences gives the coverage-vs-precision curve; for a target precision (99%, 99.5%)
we report the lowest threshold that still reaches it on these answers, i.e. the largest
coverage at that precision: what an oracle that knew the gold would choose, an upper bound on
what a threshold fitted beforehand (``extractor.scoring.fit_auto_accept``) gets. The curve and
the operating points are ``extractor.scoring``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from extractor.scoring import at_threshold, coverage_curve, threshold_at

TARGETS: tuple[float, ...] = (0.99, 0.995)


def savings(conf: Sequence[float], correct: Sequence[bool],
            targets: Sequence[float] = TARGETS,
            configured: float | None = None) -> dict:
    """Curve, per-target operating points and (optionally) the schema's configured threshold.

    >>> s = savings([0.9, 0.5, 0.9, 0.1], [1, 1, 1, 0], targets=(0.99,), configured=0.8)
    >>> s["targets"]["0.99"]["threshold"], s["configured"]["coverage"], len(s["curve"])
    (0.5, 0.5, 3)
    >>> savings([0.9], [0], targets=(0.99,))["targets"]["0.99"]["threshold"] is None
    True
    """
    curve = coverage_curve(conf, correct)
    out: dict = {"n": len(conf), "curve": [asdict(p) for p in curve], "targets": {}}
    for t in targets:
        p = threshold_at(curve, t)
        out["targets"][f"{t:g}"] = (asdict(p) if p else
                                    {"threshold": None, "coverage": 0.0, "precision": None,
                                     "accepted": 0})
    if configured is not None:
        out["configured"] = at_threshold(conf, correct, configured)
    return out
