"""What "a field is correct" means, and the confidence statistics built on it.

An *item* is one (document, field) answer of the extractor: its confidence that the top value
(or "not present") is right, and whether it is (``is_correct``). Everything that judges
confidences collects items with ``confidence_items`` and reads them with the functions below,
so that training (the calibrator, the auto-accept thresholds), ``kvloop eval`` (ECE, operator
savings) and the benchmarks measure the same thing:

* calibration: reliability bins and expected calibration error (Guo et al. 2017, "On
  Calibration of Modern Neural Networks", Eq. 3): ``sum_b |B_b|/n * |acc(B_b) - conf(B_b)|``
  over equal-width confidence bins;
* auto-accept: accepting every answer whose confidence is at or above ``t`` gives a
  *coverage* (share of answers nobody looks at) and a *precision* (share of accepted answers
  that are right); ``fit_auto_accept`` picks the per-field ``t`` that the review queue uses.

This is the lowest layer that needs the definition (the extractor's calibration is fitted on
it); ``eval`` imports it from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from extractor.certify import LEVEL, error_upper_bound
from extractor.document import ExtractionResult, FieldResult
from extractor.normalize import strict_key

Items = dict[str, tuple[list[float], list[bool]]]
"""Per field: the confidences of its answers and whether each was correct (same order)."""


# -- correctness ------------------------------------------------------------------------------

def is_correct(gold: str | None, pred: str | None) -> bool:
    """Whether the answer ``pred`` (``None``: "not present") is right for gold ``gold``.

    The comparison is the strict key (``extractor.normalize.strict_key``: whitespace runs
    collapsed, ends stripped). What an operator accepts, or what is auto-accepted, is the
    string that gets stored, so ``abc sdnbhd`` is a wrong answer for ``ABC SDN BHD``. Equality
    up to whitespace and case stays a *metric* (SROIE's lenient F1, ``eval.metrics``), not the
    meaning of "correct".

    ``None`` and blank strings are absent. "Not present" on an absent gold is correct: the
    review queue auto-accepts an empty answer like any other, so that decision is calibrated
    and counted too.

    >>> is_correct("27, JALAN  DEDAP", "27, JALAN DEDAP "), is_correct("ABC SDN BHD", "abc sdnbhd")
    (True, False)
    >>> is_correct(None, None), is_correct("", None), is_correct(None, "9.00")
    (True, True, False)
    """
    return strict_key(gold) == strict_key(pred)


def confidence_item(gold: str | None, answer: FieldResult | None) -> tuple[float, bool]:
    """The (confidence, correct) item of one answer.

    A field missing from the result is "not present" with confidence 0. Confidences are
    clipped into [0, 1] (NaN becomes 0), so every consumer bins the same numbers; callers that
    must report such values check ``answer.confidence`` themselves.

    >>> from extractor.document import Candidate
    >>> confidence_item("9.00", FieldResult("total", [Candidate("9.00", .7)], 1.2))
    (1.0, True)
    >>> confidence_item(None, None), confidence_item("9.00", None)
    ((0.0, True), (0.0, False))
    """
    if answer is None:
        return 0.0, is_correct(gold, None)
    conf = float(answer.confidence)
    conf = 0.0 if math.isnan(conf) else min(max(conf, 0.0), 1.0)
    return conf, is_correct(gold, answer.value)


def confidence_items(golds: Sequence[Mapping[str, str | None]],
                     results: Sequence[ExtractionResult],
                     fields: Sequence[str] | None = None) -> Items:
    """Per-field items of ``results`` against the gold values at the same positions.

    ``fields`` given: every document contributes one item per field (absent from a result:
    "not present" at confidence 0; absent from the gold: an absent gold). ``None``: the fields
    each result has. (absent, absent) answers are items (see ``is_correct``).

    >>> from extractor.document import Candidate
    >>> r = ExtractionResult("1", "v", {"total": FieldResult("total", [Candidate("9", .8)], .8),
    ...                                 "date": FieldResult("date", [], .9)})
    >>> confidence_items([{"total": "9 ", "date": None}], [r])
    {'total': ([0.8], [True]), 'date': ([0.9], [True])}
    >>> confidence_items([{"total": "9"}], [r], fields=["total", "company"])["company"]
    ([0.0], [True])
    """
    if len(golds) != len(results):
        raise ValueError(f"{len(golds)} gold dicts but {len(results)} results")
    items: Items = {f: ([], []) for f in fields or ()}
    for gold, res in zip(golds, results):
        for f in (fields if fields is not None else list(res.fields)):
            conf, ok = confidence_item(gold.get(f), res.fields.get(f))
            confs, oks = items.setdefault(f, ([], []))
            confs.append(conf)
            oks.append(ok)
    return items


def pool_items(items: Mapping[str, tuple[Sequence[float], Sequence[bool]]]
               ) -> tuple[list[float], list[bool]]:
    """Every field's items in one list pair (field by field).

    >>> pool_items({"a": ([0.9], [True]), "b": ([0.2, 0.4], [False, True])})
    ([0.9, 0.2, 0.4], [True, False, True])
    """
    return ([c for confs, _ in items.values() for c in confs],
            [bool(k) for _, oks in items.values() for k in oks])


# -- calibration ------------------------------------------------------------------------------

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
    """Expected calibration error from reliability bins (Guo et al. 2017, Eq. 3).

    >>> round(ece(reliability_bins([0.05, 0.95, 0.9], [0, 1, 0], 2)), 4)
    0.3
    """
    n = sum(b.count for b in bins)
    return sum(b.count / n * abs(b.accuracy - b.confidence) for b in bins) if n else 0.0


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool],
                               n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-width bins.

    >>> round(expected_calibration_error([0.9, 0.9, 0.1, 0.1], [True, True, False, False]), 3)
    0.1
    """
    return ece(reliability_bins(list(confidences), list(correct), n_bins))


# -- coverage and thresholds ------------------------------------------------------------------

@dataclass
class CurvePoint:
    """Accepting every answer with confidence >= ``threshold``: how many, what share, how right."""

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


# -- fitting auto-accept thresholds -----------------------------------------------------------

MIN_ACCEPTED = 30
"""Fewest accepted held-out items a threshold may rest on.

Below that an accepted set is a handful of receipts: one item moves its precision by more than
3 points, and the threshold (the confidence of its lowest item) is an order statistic of a few
points that does not carry over to new documents. At the default level the bound alone needs
more than this for every target above 0.9 (no error: ``n >= log(0.05) / log(target)``, 29 at
0.9, 59 at 0.95, 299 at 0.99), so the floor matters for low targets and for ``level=None``."""


def precision_lower_bound(correct: int, accepted: int, level: float = LEVEL) -> float:
    """Clopper-Pearson one-sided lower confidence bound of a binomial proportion.

    The largest ``p`` with ``P(X >= correct | accepted, p) <= 1 - level``, i.e. the
    ``1 - level`` quantile of ``Beta(correct, accepted - correct + 1)`` (Clopper & Pearson
    1934); 0 when nothing is correct. With no errors it is ``(1 - level) ** (1 / accepted)``.

    >>> round(precision_lower_bound(59, 59), 4), round(precision_lower_bound(299, 299), 4)
    (0.9505, 0.99)
    """
    if not 0 <= correct <= accepted or accepted == 0:
        raise ValueError(f"need 0 <= correct <= accepted and accepted > 0, got "
                         f"{correct}/{accepted}")
    return 1.0 - error_upper_bound(accepted - correct, accepted, level)


@dataclass
class AutoAcceptFit:
    """The auto-accept threshold of one field and how it did on the items it was fitted on.

    ``threshold`` ``None``: never auto-accept (no threshold was safe). ``coverage`` and
    ``precision`` are those of the accepted set on the fitting items (0 and ``None`` without a
    threshold); ``lower_bound`` is the Clopper-Pearson bound at ``level`` that had to reach
    ``target`` (``None`` with ``level=None``: the plain precision had to).
    """

    threshold: float | None
    coverage: float
    precision: float | None
    n: int
    target: float
    accepted: int = 0
    lower_bound: float | None = None
    level: float | None = LEVEL
    min_accepted: int = MIN_ACCEPTED

    def export(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AutoAcceptFit:
        def opt(k: str, default: float | None = None) -> float | None:
            v = d.get(k, default)
            return None if v is None else float(v)

        return cls(threshold=opt("threshold"), coverage=float(d.get("coverage", 0.0)),
                   precision=opt("precision"), n=int(d.get("n", 0)), target=float(d["target"]),
                   accepted=int(d.get("accepted", 0)), lower_bound=opt("lower_bound"),
                   level=opt("level", LEVEL), min_accepted=int(d.get("min_accepted",
                                                                     MIN_ACCEPTED)))


def fit_auto_accept(conf: Sequence[float], correct: Sequence[bool], target: float = 0.99,
                    min_accepted: int = MIN_ACCEPTED,
                    level: float | None = LEVEL) -> AutoAcceptFit:
    """The lowest confidence threshold whose accepted set can be trusted to reach ``target``.

    ``conf``/``correct`` are held-out items of one field (calibrated confidences; the
    calibration split, which the model never trained on). Candidate thresholds are the
    observed confidences; items tied in confidence are accepted together. A threshold
    qualifies when it accepts at least ``min_accepted`` items and the Clopper-Pearson lower
    bound (one-sided, ``level``) of their precision reaches ``target``; the lowest qualifying
    threshold (largest coverage) is returned, ``threshold=None`` when none qualifies.

    Why a lower bound rather than the plain precision: the threshold is chosen as the lowest
    one whose precision *on these items* reaches the target, which selects for lucky sets;
    and at 99% the plain rule on 100 items means "no error among the accepted ones", which
    a field with true precision 95% passes on 60 items about once in twenty. The bound asks
    for evidence instead: with no error, ``log(1 - level) / log(target)`` accepted items
    (299 at 0.99, 59 at 0.95). Clopper-Pearson rather than Wilson: it never covers less than
    its nominal level, while Wilson's coverage dips below it near a proportion of 1 on few
    items (Brown, Cai & DasGupta 2001), which is where auto-accept thresholds live. It is still
    one bound per candidate threshold, not a simultaneous one, so it tempers the selection
    rather than removing it. ``level=None`` falls back to the plain precision (with the
    ``min_accepted`` floor).

    >>> conf = [0.99] * 40 + [0.9] * 40 + [0.5] * 20
    >>> ok = [True] * 40 + [True] * 39 + [False] + [True] * 10 + [False] * 10
    >>> fit = fit_auto_accept(conf, ok, target=0.9)
    >>> fit.threshold, fit.accepted, round(fit.precision, 4), round(fit.lower_bound, 4)
    (0.9, 80, 0.9875, 0.9421)
    >>> fit_auto_accept(conf, ok, target=0.99).threshold is None
    True
    """
    if len(conf) != len(correct):
        raise ValueError(f"{len(conf)} confidences but {len(correct)} correctness flags")
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target precision must be in (0, 1], got {target}")
    if level is not None and not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1) or None, got {level}")
    if min_accepted < 1:
        raise ValueError(f"min_accepted must be at least 1, got {min_accepted}")
    best: tuple[CurvePoint, float | None] | None = None
    for p in coverage_curve(conf, correct):  # highest threshold first: keep the last that passes
        if p.accepted < min_accepted or p.precision < target:  # the bound is <= the precision
            continue
        bound = (None if level is None
                 else precision_lower_bound(round(p.precision * p.accepted), p.accepted, level))
        if bound is None or bound >= target:
            best = (p, bound)
    if best is None:
        return AutoAcceptFit(None, 0.0, None, len(conf), target, level=level,
                             min_accepted=min_accepted)
    p, bound = best
    return AutoAcceptFit(p.threshold, p.coverage, p.precision, len(conf), target, p.accepted,
                         bound, level, min_accepted)


def fit_auto_accept_fields(items: Mapping[str, tuple[Sequence[float], Sequence[bool]]],
                           target: float = 0.99, min_accepted: int = MIN_ACCEPTED,
                           level: float | None = LEVEL) -> dict[str, AutoAcceptFit]:
    """``fit_auto_accept`` per field of ``items`` (as ``confidence_items`` returns them).

    The model's ``kvloop.json`` stores ``{"auto_accept": {field: fit.threshold}}`` (``None``:
    the field is always reviewed).
    """
    return {f: fit_auto_accept(c, k, target, min_accepted, level) for f, (c, k) in items.items()}
