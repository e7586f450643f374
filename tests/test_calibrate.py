"""Temperature scaling of the top-1 confidence, and ECE."""

from __future__ import annotations

import random

import pytest

from extractor.model.calibrate import Calibrator, expected_calibration_error, fit_calibrator


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


def test_perfect_calibration_has_zero_ece() -> None:
    assert expected_calibration_error([1.0, 1.0, 0.5, 0.5], [True, True, True, False]) == 0.0


def test_fit_reduces_ece_of_overconfident_scores() -> None:
    rng = random.Random(1)
    true_p = [rng.uniform(0.3, 0.95) for _ in range(2000)]
    correct = [rng.random() < p for p in true_p]
    # an overconfident model: logits three times too large (temperature 3 fixes it)
    conf = [1 / (1 + ((1 - p) / p) ** 3) for p in true_p]
    cal = fit_calibrator(conf, correct)
    after = [cal(c) for c in conf]
    assert expected_calibration_error(after, correct) < 0.5 * expected_calibration_error(
        conf, correct)
    assert cal.temperature == pytest.approx(3.0, rel=0.25)


def test_degenerate_data_gives_identity() -> None:
    assert fit_calibrator([0.9] * 20, [True] * 20) == Calibrator(n=20)
    assert fit_calibrator([0.9] * 3, [True, False, True]).temperature == 1.0
    with pytest.raises(ValueError):
        fit_calibrator([0.5], [True, False])


def test_calibrator_round_trip_and_monotone() -> None:
    cal = Calibrator(2.0, -0.3, 50)
    assert Calibrator.from_dict(cal.export()) == cal
    assert cal(0.2) < cal(0.5) < cal(0.9)
    assert Calibrator()(0.73) == pytest.approx(0.73)
