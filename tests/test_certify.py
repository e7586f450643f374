"""Certified thresholds: the Clopper-Pearson bounds against scipy and a naive inversion, the
fixed-sequence scan against a plain re-implementation, and the guarantee by simulation."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy.stats import beta, binom

from extractor.certify import (
    GRID,
    audit_estimate,
    certify,
    error_lower_bound,
    error_upper_bound,
    items_needed,
)


def naive_upper(k: int, n: int, level: float) -> float:
    """The largest error rate p not rejected: P(Binom(n, p) <= k) >= 1 - level, by bisection."""
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if binom.cdf(k, n, mid) > 1 - level:
            lo = mid
        else:
            hi = mid
    return hi


@pytest.mark.parametrize("k,n", [(0, 1), (0, 59), (0, 299), (1, 10), (3, 400), (7, 50),
                                 (49, 50), (50, 50)])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_upper_bound_is_clopper_pearson(k: int, n: int, level: float) -> None:
    ub = error_upper_bound(k, n, level)
    ref = 1.0 if k == n else beta.ppf(level, k + 1, n - k)
    assert ub == pytest.approx(ref, abs=1e-9)
    assert ub == pytest.approx(naive_upper(k, n, level), abs=1e-7)


@pytest.mark.parametrize("k,n", [(0, 10), (1, 10), (5, 60), (60, 60)])
def test_lower_bound_is_clopper_pearson(k: int, n: int) -> None:
    ref = 0.0 if k == 0 else beta.ppf(0.05, k, n - k + 1)
    assert error_lower_bound(k, n) == pytest.approx(ref, abs=1e-9)


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="errors"):
        error_upper_bound(3, 2)
    with pytest.raises(ValueError, match="n > 0"):
        error_lower_bound(0, 0)


def test_items_needed() -> None:
    assert [items_needed(t) for t in (0.95, 0.99, 0.995)] == [59, 299, 598]
    n = items_needed(0.99)
    assert error_upper_bound(0, n) <= 0.01 < error_upper_bound(0, n - 1)


def naive_certify(scores: list[float], correct: list[bool], target: float, level: float
                  ) -> float | None:
    """Fixed sequence testing written out plainly: grid high to low, start where enough items
    are accepted, stop at the first threshold whose bound misses the target."""
    need = items_needed(target, level)
    if len(scores) < need:
        return None
    best = None
    for t in sorted(GRID, reverse=True):
        acc = [c for s, c in zip(scores, correct) if s >= t]
        if len(acc) < need:
            continue
        errors = sum(not c for c in acc)
        if beta.ppf(level, errors + 1, len(acc) - errors) > 1 - target and errors < len(acc):
            break
        if errors == len(acc):
            break
        best = t
    return best


@pytest.mark.parametrize("seed", range(6))
def test_certify_matches_naive_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(300, 900))
    s = rng.beta(8, 1, n)  # mostly high scores
    ok = rng.random(n) < np.clip(s + 0.02, 0, 1)  # roughly calibrated
    for target in (0.95, 0.99):
        c = certify("f", s.tolist(), ok.tolist(), target)
        assert c.threshold == naive_certify(s.tolist(), ok.tolist(), target, 0.95)
        if c.certified:
            assert c.bound <= 1 - target
            acc = s >= c.threshold
            assert (c.accepted, c.errors) == (int(acc.sum()), int((~ok[acc]).sum()))


def test_too_few_items_stay_in_review_with_the_reason() -> None:
    c = certify("date", [0.999] * 200, [True] * 200, 0.99)
    assert not c.certified and "too few items: 200" in c.reason and "299" in c.reason
    assert certify("date", [], [], 0.99).reason.startswith("too few items: 0")


def test_one_bad_threshold_high_up_ends_the_sequence() -> None:
    # 400 items at 0.9999 of which 20 are wrong: the first test fails, nothing is certified,
    # though lower thresholds would pool in 2000 right answers.
    s = [0.9999] * 400 + [0.95] * 2000
    ok = [True] * 380 + [False] * 20 + [True] * 2000
    c = certify("total", s, ok, 0.99)
    assert not c.certified and "not certified" in c.reason


def test_certify_picks_lowest_passing_threshold() -> None:
    s = [0.999] * 600 + [0.8] * 300
    ok = [True] * 600 + [True] * 270 + [False] * 30
    c = certify("total", s, ok, 0.99)
    assert c.certified and 0.8 < c.threshold <= 0.999 and c.accepted == 600
    assert c.coverage == pytest.approx(600 / 900)


def test_the_guarantee_holds_by_simulation() -> None:
    """A field whose accepted answers are 98% right must rarely be certified at 99%: the
    chance is at most 1 - level (5%); 400 draws of 700 items."""
    rng = random.Random(0)
    broken = 0
    trials = 400
    for _ in range(trials):
        scores = [rng.random() for _ in range(700)]
        ok = [rng.random() < 0.98 for _ in scores]  # precision 98% whatever the threshold
        broken += certify("f", scores, ok, 0.99).certified
    assert broken / trials <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials)


def test_audit_revokes_when_the_upper_bound_misses_the_target() -> None:
    ok = audit_estimate("total", [True] * 30, 0.99)
    assert not ok.revoked and ok.upper == 1.0 and ok.precision == 1.0
    bad = audit_estimate("total", [True] * 95 + [False] * 5, 0.99)
    assert bad.revoked and bad.upper < 0.99
    assert bad.upper == pytest.approx(1 - beta.ppf(0.05, 5, 96))
    empty = audit_estimate("total", [], 0.99)
    assert empty.upper is None and not empty.revoked
    assert empty.export()["revoked"] is False
