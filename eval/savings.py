"""Operator savings: how many fields could be auto-accepted, and at what precision.

Auto-accepting every answer whose confidence is at or above a threshold ``t`` gives a
*coverage* (share of all answers nobody has to look at) and a *precision* (share of those
accepted answers that are right). Sweeping ``t`` over the observed confidences gives the
coverage-vs-precision curve; for a target precision (99%, 99.5%) we report the lowest
threshold that still reaches it, i.e. the largest coverage at that precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

TARGETS: tuple[float, ...] = (0.99, 0.995)


@dataclass
class CurvePoint:
    threshold: float
    coverage: float
    precision: float
    accepted: int


def coverage_curve(conf: Sequence[float], correct: Sequence[bool]) -> list[CurvePoint]:
    """One point per distinct confidence, highest threshold first.

    >>> [(p.threshold, p.coverage, p.precision) for p in coverage_curve([0.9, 0.5, 0.9, 0.1],
    ...                                                                  [1, 1, 1, 0])]
    [(0.9, 0.5, 1.0), (0.5, 0.75, 1.0), (0.1, 1.0, 0.75)]
    """
    if len(conf) != len(correct):
        raise ValueError(f"{len(conf)} confidences but {len(correct)} correctness flags")
    order = sorted(range(len(conf)), key=lambda i: -conf[i])
    n = len(order)
    points: list[CurvePoint] = []
    ok = 0
    for rank, i in enumerate(order, 1):
        ok += bool(correct[i])
        # Items tied in confidence are accepted together: emit a point after the last of them.
        if rank == n or conf[order[rank]] != conf[i]:
            points.append(CurvePoint(float(conf[i]), rank / n, ok / rank, rank))
    return points


def threshold_at(curve: Sequence[CurvePoint], target: float) -> CurvePoint | None:
    """The point with the largest coverage whose precision reaches ``target`` (or ``None``).

    >>> curve = coverage_curve([0.9, 0.5, 0.9, 0.1], [1, 1, 1, 0])
    >>> threshold_at(curve, 0.99).threshold, threshold_at(curve, 0.5).coverage
    (0.5, 1.0)
    """
    ok = [p for p in curve if p.precision >= target]
    return max(ok, key=lambda p: p.coverage) if ok else None


def at_threshold(conf: Sequence[float], correct: Sequence[bool], t: float) -> dict[str, float]:
    """Coverage and precision when accepting everything with confidence >= ``t``.

    >>> at_threshold([0.9, 0.5, 0.96], [1, 1, 0], 0.9)
    {'threshold': 0.9, 'coverage': 0.6666666666666666, 'precision': 0.5, 'accepted': 2}
    """
    acc = [bool(k) for c, k in zip(conf, correct) if c >= t]
    return {"threshold": t, "coverage": len(acc) / len(conf) if len(conf) else 0.0,
            "precision": sum(acc) / len(acc) if acc else 0.0, "accepted": len(acc)}


def savings(conf: Sequence[float], correct: Sequence[bool],
            targets: Sequence[float] = TARGETS,
            configured: float | None = None) -> dict:
    """Curve, per-target operating points and (optionally) the schema's configured threshold."""
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
