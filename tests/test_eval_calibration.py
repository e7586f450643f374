"""Calibration (ECE, bins), operator savings and the paired bootstrap, by hand."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import eval.bootstrap as bootstrap_mod
import eval.calibration as calibration_mod
import eval.savings as savings_mod
from eval.bootstrap import f1_of_counts, mean_of, paired_bootstrap
from eval.calibration import Calibration, ece, reliability_bins
from eval.savings import at_threshold, coverage_curve, savings, threshold_at


@pytest.mark.parametrize("mod", [calibration_mod, savings_mod, bootstrap_mod])
def test_doctests(mod) -> None:
    res = doctest.testmod(mod)
    assert res.attempted > 0 and res.failed == 0


def test_ece_hand_computed() -> None:
    conf = [0.1, 0.3, 0.35, 0.8, 0.9, 1.0]
    ok = [False, True, False, True, True, True]
    bins = reliability_bins(conf, ok, n_bins=4)
    # bins [0,.25): {.1 F}; [.25,.5): {.3 T, .35 F}; [.5,.75): {}; [.75,1]: {.8, .9, 1.0 all T}
    assert [b.count for b in bins] == [1, 2, 0, 3]
    assert bins[1].confidence == pytest.approx(0.325) and bins[1].accuracy == 0.5
    assert bins[3].confidence == pytest.approx(0.9) and bins[3].accuracy == 1.0
    expected = (1 / 6) * 0.1 + (2 / 6) * 0.175 + (3 / 6) * 0.1
    assert ece(bins) == pytest.approx(expected)
    c = Calibration(n_bins=4)
    for i, (p, k) in enumerate(zip(conf, ok)):
        c.update("a" if i < 3 else "b", p, k)
    s = c.summary()
    assert s["overall"]["ece"] == pytest.approx(expected)
    assert s["fields"]["b"]["ece"] == pytest.approx(0.1)
    assert s["overall"]["accuracy"] == pytest.approx(4 / 6)


def test_calibration_rejects_bad_confidence() -> None:
    with pytest.raises(ValueError, match="outside"):
        Calibration().update("total", 1.5, True)


def test_perfectly_calibrated_has_zero_ece() -> None:
    conf = [0.25] * 4 + [0.75] * 4
    ok = [True, False, False, False, True, True, True, False]
    assert ece(reliability_bins(conf, ok, 2)) == pytest.approx(0.0)


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
    s = savings(conf, ok, configured=0.95)
    assert s["targets"]["0.99"]["coverage"] == pytest.approx(3 / 8)
    assert s["targets"]["0.995"]["threshold"] == 0.97
    assert s["configured"] == {"threshold": 0.95, "coverage": 3 / 8, "precision": 1.0,
                               "accepted": 3}
    assert at_threshold(conf, ok, 1.1)["coverage"] == 0.0


def test_paired_bootstrap_identical_models_is_zero() -> None:
    rng = np.random.default_rng(1)
    stats = rng.integers(0, 3, size=(30, 3))
    ci = paired_bootstrap(stats, stats, f1_of_counts, n_boot=300)
    assert (ci.diff, ci.low, ci.high) == (0.0, 0.0, 0.0)
    assert not ci.significant


def test_paired_bootstrap_seeded_and_brackets_diff() -> None:
    rng = np.random.default_rng(2)
    a = np.stack([rng.integers(0, 2, 60), np.ones(60)], axis=1)
    b = np.stack([np.maximum(a[:, 0], rng.integers(0, 2, 60)), np.ones(60)], axis=1)
    ci1 = paired_bootstrap(a, b, mean_of, n_boot=500, seed=7)
    ci2 = paired_bootstrap(a, b, mean_of, n_boot=500, seed=7)
    assert ci1 == ci2
    assert ci1.diff == pytest.approx(b[:, 0].mean() - a[:, 0].mean())
    assert ci1.low <= ci1.diff <= ci1.high
    # b is never worse than a on any document: no replicate can go below zero
    assert ci1.low >= 0.0


def test_paired_bootstrap_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same"):
        paired_bootstrap(np.zeros((3, 3)), np.zeros((4, 3)), f1_of_counts)
