"""extractor.scoring: "correct", confidence items, ECE, coverage and auto-accept thresholds."""

from __future__ import annotations

import doctest
import json
import math
import random

import pytest

import extractor.scoring as scoring_mod
from extractor.document import Candidate, ExtractionResult, FieldResult
from extractor.scoring import (
    AutoAcceptFit,
    at_threshold,
    confidence_item,
    confidence_items,
    coverage_curve,
    ece,
    expected_calibration_error,
    fit_auto_accept,
    fit_auto_accept_fields,
    is_correct,
    pool_items,
    precision_lower_bound,
    reliability_bins,
    threshold_at,
)


def test_doctests() -> None:
    res = doctest.testmod(scoring_mod)
    assert res.attempted > 0 and res.failed == 0


# -- is_correct -------------------------------------------------------------------------------

@pytest.mark.parametrize("gold, pred, expected", [
    ("27, JALAN  DEDAP", "27, JALAN DEDAP", True),      # whitespace runs collapse
    ("RM 9.00", " RM\t9.00\n", True),                   # ends stripped, tabs are whitespace
    ("ABC SDN BHD", "abc sdn bhd", False),              # case matters: it is what gets stored
    ("27, JALAN DEDAP", "27,JALAN DEDAP", False),       # lenient-only match is wrong
    ("9.00", "9.00", True),
    ("9.00", "90.0", False),
    (None, None, True),                                 # "not present" on an absent gold
    ("", None, True),                                   # empty strings are absent
    (None, "  ", True),
    ("9.00", None, False),                              # missed value
    (None, "9.00", False),                              # value for an absent field
])
def test_is_correct(gold: str | None, pred: str | None, expected: bool) -> None:
    assert is_correct(gold, pred) is expected


# -- confidence items -------------------------------------------------------------------------

def _fr(name: str, value: str | None, conf: float) -> FieldResult:
    return FieldResult(name, [Candidate(value, conf)] if value is not None else [], conf)


def _res(doc_id: str, **fields: tuple[str | None, float]) -> ExtractionResult:
    return ExtractionResult(doc_id, "m", {k: _fr(k, v, c) for k, (v, c) in fields.items()})


def test_confidence_item_clips_and_treats_missing_as_not_present() -> None:
    assert confidence_item("9", _fr("total", "9", 0.8)) == (0.8, True)
    assert confidence_item("9", _fr("total", "9", -0.2)) == (0.0, True)
    assert confidence_item("9", _fr("total", "8", float("nan"))) == (0.0, False)
    assert confidence_item(None, _fr("total", None, 0.7)) == (0.7, True)
    assert confidence_item("9", None) == (0.0, False)


def test_confidence_items_hand_built() -> None:
    golds: list[dict[str, str | None]] = [{"company": "ABC", "total": "9.00"},
                                          {"company": "X Y", "total": None}]
    results = [_res("a", company=("abc", 0.6), total=("9.00", 0.9)),
               _res("b", company=("X  Y", 0.8), total=(None, 0.95))]
    items = confidence_items(golds, results)
    assert items == {"company": ([0.6, 0.8], [False, True]),
                     "total": ([0.9, 0.95], [True, True])}
    # a fixed field list: a field a result lacks is "not present" at confidence 0
    fixed = confidence_items(golds, results, fields=["total", "date"])
    assert list(fixed) == ["total", "date"]
    assert fixed["date"] == ([0.0, 0.0], [True, True])
    assert pool_items(items) == ([0.6, 0.8, 0.9, 0.95], [False, True, True, True])
    assert confidence_items([], [], fields=["total"]) == {"total": ([], [])}
    with pytest.raises(ValueError, match="1 gold dicts but 2 results"):
        confidence_items(golds[:1], results)


# -- ECE --------------------------------------------------------------------------------------

def naive_ece(conf: list[float], correct: list[bool], n_bins: int) -> float:
    bins: dict[int, list[int]] = {}
    for i, c in enumerate(conf):
        bins.setdefault(min(n_bins - 1, max(0, int(-(-c * n_bins // 1)) - 1)), []).append(i)
    return sum(len(ix) / len(conf) * abs(sum(correct[i] for i in ix) / len(ix)
                                         - sum(conf[i] for i in ix) / len(ix))
               for ix in bins.values())


def test_ece_matches_naive_binning() -> None:
    rng = random.Random(0)
    conf = [rng.random() for _ in range(300)]
    correct = [rng.random() < c ** 2 for c in conf]
    assert expected_calibration_error(conf, correct, 10) == pytest.approx(
        naive_ece(conf, correct, 10), abs=1e-9)


def test_ece_hand_computed() -> None:
    conf = [0.1, 0.3, 0.35, 0.8, 0.9, 1.0]
    ok = [False, True, False, True, True, True]
    bins = reliability_bins(conf, ok, n_bins=4)
    # bins [0,.25): {.1 F}; [.25,.5): {.3 T, .35 F}; [.5,.75): {}; [.75,1]: {.8, .9, 1.0 all T}
    assert [b.count for b in bins] == [1, 2, 0, 3]
    assert bins[1].confidence == pytest.approx(0.325) and bins[1].accuracy == 0.5
    assert bins[3].confidence == pytest.approx(0.9) and bins[3].accuracy == 1.0
    assert ece(bins) == pytest.approx((1 / 6) * 0.1 + (2 / 6) * 0.175 + (3 / 6) * 0.1)


def test_perfect_calibration_has_zero_ece() -> None:
    assert expected_calibration_error([1.0, 1.0, 0.5, 0.5], [True, True, True, False]) == 0.0
    conf = [0.25] * 4 + [0.75] * 4
    ok = [True, False, False, False, True, True, True, False]
    assert ece(reliability_bins(conf, ok, 2)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="correctness flags"):
        reliability_bins([0.5], [True, False])


# -- coverage curve ---------------------------------------------------------------------------

def test_coverage_curve_and_targets() -> None:
    conf = [0.99, 0.98, 0.97, 0.9, 0.9, 0.5, 0.2, 0.1]
    ok = [True, True, True, True, False, True, False, False]
    curve = coverage_curve(conf, ok)
    # the two 0.9s are accepted together
    assert [(p.threshold, p.accepted) for p in curve] == [
        (0.99, 1), (0.98, 2), (0.97, 3), (0.9, 5), (0.5, 6), (0.2, 7), (0.1, 8)]
    assert curve[3].precision == pytest.approx(4 / 5)
    assert curve[4].precision == pytest.approx(5 / 6)
    p99 = threshold_at(curve, 0.99)
    assert p99 is not None and (p99.threshold, p99.coverage) == (0.97, 3 / 8)
    p80 = threshold_at(curve, 0.8)
    assert p80 is not None and p80.threshold == 0.5 and p80.coverage == pytest.approx(6 / 8)
    assert threshold_at(coverage_curve([0.9], [False]), 0.99) is None
    assert at_threshold(conf, ok, 0.95) == {"threshold": 0.95, "coverage": 3 / 8,
                                            "precision": 1.0, "accepted": 3}
    assert at_threshold(conf, ok, 1.1)["coverage"] == 0.0


# -- auto-accept ------------------------------------------------------------------------------

def naive_lower_bound(k: int, n: int, level: float) -> float:
    """The p where P(X >= k | n, p) = 1 - level, by bisection on the binomial tail."""
    def tail(p: float) -> float:
        return sum(math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(k, n + 1))

    if k == 0:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tail(mid) < 1 - level else (lo, mid)
    return lo


@pytest.mark.parametrize("k, n, level", [(0, 5, 0.95), (1, 1, 0.95), (59, 59, 0.95),
                                         (79, 80, 0.95), (95, 100, 0.95), (30, 60, 0.9),
                                         (99, 100, 0.5)])
def test_lower_bound_matches_binomial_tail(k: int, n: int, level: float) -> None:
    assert precision_lower_bound(k, n, level) == pytest.approx(naive_lower_bound(k, n, level),
                                                               abs=1e-9)
    with pytest.raises(ValueError):
        precision_lower_bound(3, 2)


def naive_fit(conf: list[float], ok: list[bool], target: float, min_accepted: int,
              level: float | None) -> float | None:
    """Every observed confidence as a threshold, each accepted set judged from scratch."""
    good = []
    for t in set(conf):
        acc = [k for c, k in zip(conf, ok) if c >= t]
        bound = (sum(acc) / len(acc) if level is None
                 else naive_lower_bound(sum(acc), len(acc), level))
        if len(acc) >= min_accepted and sum(acc) / len(acc) >= target and bound >= target:
            good.append(t)
    return min(good) if good else None


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("target, level", [(0.9, 0.95), (0.85, 0.9), (0.9, None),
                                           (0.8, 0.5)])
def test_fit_auto_accept_matches_naive_search(seed: int, target: float,
                                              level: float | None) -> None:
    rng = random.Random(seed)
    conf = [round(rng.random() ** 0.3, 2) for _ in range(200)]   # ties: two decimals
    ok = [rng.random() < c for c in conf]
    fit = fit_auto_accept(conf, ok, target, min_accepted=30, level=level)
    assert fit.threshold == naive_fit(conf, ok, target, 30, level)
    if fit.threshold is not None:   # what routing will do with it (confidence >= threshold)
        at = at_threshold(conf, ok, fit.threshold)
        assert (at["accepted"], at["coverage"]) == (fit.accepted, fit.coverage)
        assert fit.precision == pytest.approx(at["precision"])


def _known() -> tuple[list[float], list[bool]]:
    """40 right at 0.99, 30 right at 0.97, then 30 at 0.9 of which 5 are wrong."""
    return [0.99] * 40 + [0.97] * 30 + [0.9] * 30, [True] * 95 + [False] * 5


def test_fit_auto_accept_known_threshold() -> None:
    conf, ok = _known()
    fit = fit_auto_accept(conf, ok, target=0.95)
    # 0.99: 40 right, bound 0.05 ** (1/40) = 0.928 < 0.95; 0.97: 70 right, 0.05 ** (1/70) =
    # 0.958; 0.9: precision 95/100 = 0.95 but its bound is below
    assert (fit.threshold, fit.accepted, fit.coverage, fit.precision) == (0.97, 70, 0.7, 1.0)
    assert fit.lower_bound == pytest.approx(0.05 ** (1 / 70))
    assert (fit.n, fit.target, fit.level) == (100, 0.95, 0.95)
    # the plain precision would go down to 0.9, where it is exactly 0.95
    plain = fit_auto_accept(conf, ok, target=0.95, level=None)
    assert (plain.threshold, plain.precision, plain.lower_bound) == (0.9, 0.95, None)


def test_fit_auto_accept_unreachable_target_gives_none() -> None:
    conf, ok = _known()
    # 100 items without an error cannot show 99% at 95%: 0.05 ** (1/100) = 0.970
    none = fit_auto_accept(conf[:70], ok[:70], target=0.99)
    assert none == AutoAcceptFit(None, 0.0, None, 70, 0.99)
    assert fit_auto_accept([0.9] * 50, [False] * 50, target=0.5).threshold is None
    assert fit_auto_accept([], [], target=0.9).threshold is None
    # ... but 300 can
    assert fit_auto_accept([0.99] * 300, [True] * 300, target=0.99).threshold == 0.99


def test_fit_auto_accept_accepts_ties_together() -> None:
    # the wrong 0.9 item comes last: splitting the tie would accept 79 right ones at 0.9
    conf = [0.99] * 60 + [0.9] * 20
    ok = [True] * 79 + [False]
    fit = fit_auto_accept(conf, ok, target=0.99, level=None)
    assert (fit.threshold, fit.accepted) == (0.99, 60)
    first = [True] * 60 + [False] + [True] * 19   # the wrong one first among the ties
    assert fit_auto_accept(conf, first, target=0.99, level=None) == fit


def test_fit_auto_accept_min_accepted() -> None:
    conf = [0.99] * 20 + [0.5] * 80
    ok = [True] * 20 + [False] * 80
    assert fit_auto_accept(conf, ok, target=0.5, level=None).threshold is None   # 20 < 30
    fit = fit_auto_accept(conf, ok, target=0.5, min_accepted=10, level=None)
    assert (fit.threshold, fit.min_accepted) == (0.99, 10)


@pytest.mark.parametrize("kwargs", [{"target": 0.0}, {"target": 1.5}, {"level": 1.0},
                                    {"level": 0.0}, {"min_accepted": 0}])
def test_fit_auto_accept_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        fit_auto_accept([0.9], [True], **kwargs)
    with pytest.raises(ValueError, match="correctness flags"):
        fit_auto_accept([0.9], [True, False])


def test_auto_accept_fit_round_trip() -> None:
    conf, ok = _known()
    for fit in (fit_auto_accept(conf, ok, 0.95), fit_auto_accept(conf, ok, 0.99),
                fit_auto_accept(conf, ok, 0.95, level=None)):
        assert AutoAcceptFit.from_dict(json.loads(json.dumps(fit.export()))) == fit


def test_fit_auto_accept_fields_from_items() -> None:
    conf, ok = _known()
    golds = [{"total": "1", "date": "d"} for _ in conf]
    results = [_res(str(i), total=("1" if k else "2", c), date=("x", c))
               for i, (c, k) in enumerate(zip(conf, ok))]
    fits = fit_auto_accept_fields(confidence_items(golds, results), target=0.95)
    assert set(fits) == {"total", "date"}
    assert fits["total"] == fit_auto_accept(conf, ok, 0.95)
    assert fits["total"].threshold == 0.97 and fits["date"].threshold is None
    assert {f: fit.threshold for f, fit in fits.items()} == {"total": 0.97, "date": None}
