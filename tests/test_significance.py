"""``eval.significance``: McNemar, Holm and the one-sample bootstrap against known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from eval.bootstrap import f1_of_counts, mean_of, paired_bootstrap
from eval.significance import bootstrap_ci, holm, mcnemar


def _pairs(both: int, a_only: int, b_only: int, neither: int) -> tuple[list[int], list[int]]:
    """Paired outcomes with the given cells of the 2x2 table (b = ``a_only``, c = ``b_only``)."""
    a = [1] * both + [1] * a_only + [0] * b_only + [0] * neither
    b = [1] * both + [0] * a_only + [1] * b_only + [0] * neither
    return a, b


def _exact_two_sided(b: int, c: int) -> float:
    """Naive reference: twice the smaller binomial tail of Binomial(b + c, 1/2), capped at 1."""
    n, k = b + c, min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize("b, c, p", [
    (0, 6, 0.03125),          # 2 / 2^6
    (6, 0, 0.03125),
    (0, 5, 0.0625),
    (3, 3, 1.0),
    (0, 0, 1.0),              # no discordant pair: nothing to tell the models apart
    (1, 9, 0.021484375),      # 2 * (1 + 10) / 1024
])
def test_mcnemar_exact_hand_cases(b: int, c: int, p: float) -> None:
    r = mcnemar(*_pairs(both=7, a_only=b, b_only=c, neither=4))
    assert (r.b, r.c, r.n, r.discordant) == (b, c, 11 + b + c, b + c)
    assert r.p_value == pytest.approx(p, abs=1e-12)
    assert r.method == "exact"


@pytest.mark.parametrize("b, c", [(2, 11), (5, 8), (0, 1), (17, 30), (40, 12)])
def test_mcnemar_exact_matches_naive_binomial(b: int, c: int) -> None:
    r = mcnemar(*_pairs(3, b, c, 2))
    assert r.p_value == pytest.approx(_exact_two_sided(b, c), rel=1e-9)


def test_mcnemar_continuity_corrected() -> None:
    r = mcnemar(*_pairs(10, 10, 25, 5), exact=False)
    chi2 = (abs(10 - 25) - 1) ** 2 / 35                       # Edwards 1948
    assert r.method == "chi2-cc"
    assert r.p_value == pytest.approx(stats.chi2.sf(chi2, 1))
    # with many discordant pairs the approximation is close to the exact test
    assert r.p_value == pytest.approx(mcnemar(*_pairs(10, 10, 25, 5)).p_value, rel=0.15)


def test_mcnemar_is_symmetric_and_exports() -> None:
    a, b = _pairs(4, 2, 7, 1)
    ab, ba = mcnemar(a, b), mcnemar(b, a)
    assert (ab.b, ab.c) == (ba.c, ba.b) and ab.p_value == ba.p_value
    assert ab.export() == {"b": 2, "c": 7, "n": 14, "discordant": 9,
                           "p_value": ab.p_value, "method": "exact"}


def test_mcnemar_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same length"):
        mcnemar([1, 0], [1, 0, 1])


def test_holm_textbook_example() -> None:
    # Four tests: sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04,
    # made monotone -> 0.02, 0.03, 0.06, 0.06; at alpha 0.05 only the two smallest are rejected
    # (Bonferroni, x4 each, would reject only 0.005).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_edge_cases() -> None:
    assert holm([]) == []
    assert holm([0.2]) == [0.2]
    assert holm([0.5, 0.6, 0.9]) == [1.0, 1.0, 1.0]           # capped at 1, monotone
    assert holm([0.3, 0.4, 0.2]) == pytest.approx([0.6, 0.6, 0.6])
    assert holm([0.01, 0.01]) == [0.02, 0.02]                  # ties


def test_holm_never_below_raw_and_at_most_bonferroni() -> None:
    p = np.random.default_rng(0).uniform(0, 0.2, 12)
    adj = np.array(holm(p))
    assert np.all(adj >= p) and np.all(adj <= np.minimum(p * len(p), 1) + 1e-15)


def test_bootstrap_ci_of_a_constant_is_the_constant() -> None:
    ci = bootstrap_ci(np.array([[1, 0, 0]] * 25), f1_of_counts, n_boot=200, seed=3)
    assert (ci.value, ci.low, ci.high) == (1.0, 1.0, 1.0)
    ci = bootstrap_ci(np.array([[0.7, 1.0]] * 25), mean_of, n_boot=200)
    assert ci.value == pytest.approx(0.7)
    assert ci.low == pytest.approx(0.7) and ci.high == pytest.approx(0.7)
    assert ci.export()["n_docs"] == 25


def test_bootstrap_ci_seeded_and_brackets_value() -> None:
    stats_ = np.random.default_rng(4).integers(0, 4, size=(60, 3))
    a = bootstrap_ci(stats_, f1_of_counts, n_boot=400, seed=11)
    assert a == bootstrap_ci(stats_, f1_of_counts, n_boot=400, seed=11)
    assert a != bootstrap_ci(stats_, f1_of_counts, n_boot=400, seed=12)
    assert a.value == pytest.approx(f1_of_counts(stats_.sum(0)))
    assert a.low < a.value < a.high


def test_bootstrap_ci_shares_paired_bootstraps_draws() -> None:
    """Against an all-zero model (metric 0 on every draw) the paired interval of B - A is
    B's own interval: both use the same resampling."""
    b = np.random.default_rng(5).integers(0, 2, size=(40, 2)).astype(float)
    b[:, 1] = 1
    one = bootstrap_ci(b, mean_of, n_boot=300, seed=2)
    two = paired_bootstrap(np.zeros_like(b), b, mean_of, n_boot=300, seed=2)
    assert (one.value, one.low, one.high) == (two.diff, two.low, two.high)


def test_bootstrap_ci_empty_and_bad_shape() -> None:
    ci = bootstrap_ci(np.zeros((0, 3)), f1_of_counts)
    assert (ci.value, ci.low, ci.high, ci.n_docs) == (0.0, 0.0, 0.0, 0)
    with pytest.raises(ValueError, match="shape"):
        bootstrap_ci(np.zeros(3), f1_of_counts)
