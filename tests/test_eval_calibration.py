"""Per-field calibration, operator savings and the paired bootstrap, by hand.

The bins, ECE and coverage curve under them are ``extractor.scoring``'s (tests/test_scoring.py).
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import eval.bootstrap as bootstrap_mod
import eval.calibration as calibration_mod
import eval.savings as savings_mod
from eval.bootstrap import f1_of_counts, mean_of, paired_bootstrap
from eval.calibration import Calibration
from eval.savings import savings


@pytest.mark.parametrize("mod", [calibration_mod, savings_mod, bootstrap_mod])
def test_doctests(mod) -> None:
    res = doctest.testmod(mod)
    assert res.attempted > 0 and res.failed == 0


def test_calibration_hand_computed() -> None:
    conf = [0.1, 0.3, 0.35, 0.8, 0.9, 1.0]
    ok = [False, True, False, True, True, True]
    # bins [0,.25): {.1 F}; [.25,.5): {.3 T, .35 F}; [.5,.75): {}; [.75,1]: {.8, .9, 1.0 all T}
    expected = (1 / 6) * 0.1 + (2 / 6) * 0.175 + (3 / 6) * 0.1
    c = Calibration(n_bins=4)
    for i, (p, k) in enumerate(zip(conf, ok)):
        c.update("a" if i < 3 else "b", p, k)
    s = c.summary()
    assert s["overall"]["ece"] == pytest.approx(expected)
    assert [b["count"] for b in s["overall"]["bins"]] == [1, 2, 0, 3]
    assert s["fields"]["b"]["ece"] == pytest.approx(0.1)
    assert s["overall"]["accuracy"] == pytest.approx(4 / 6)
    c.reset()
    assert c.summary()["overall"]["n"] == 0


def test_calibration_rejects_bad_confidence() -> None:
    with pytest.raises(ValueError, match="outside"):
        Calibration().update("total", 1.5, True)


def test_savings_targets_and_configured() -> None:
    conf = [0.99, 0.98, 0.97, 0.9, 0.9, 0.5, 0.2, 0.1]
    ok = [True, True, True, True, False, True, False, False]
    s = savings(conf, ok, configured=0.95)
    assert s["n"] == 8 and [p["accepted"] for p in s["curve"]] == [1, 2, 3, 5, 6, 7, 8]
    assert s["targets"]["0.99"]["coverage"] == pytest.approx(3 / 8)
    assert s["targets"]["0.995"]["threshold"] == 0.97
    assert s["configured"] == {"threshold": 0.95, "coverage": 3 / 8, "precision": 1.0,
                               "accepted": 3}
    assert savings([0.9], [False])["targets"]["0.99"] == {
        "threshold": None, "coverage": 0.0, "precision": None, "accepted": 0}


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
