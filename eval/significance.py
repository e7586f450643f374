"""Significance tests for comparing models on the same documents.

* ``mcnemar``: paired binary outcomes (the same items judged right or wrong under two models);
  only the discordant pairs carry information (McNemar 1947, "Note on the sampling error of
  the difference between correlated proportions or percentages").
* ``bootstrap_ci`` (from ``eval.bootstrap``, re-exported here): a percentile bootstrap
  interval of one metric over documents; ``paired_bootstrap`` is its paired counterpart.
* ``holm``: Holm-Bonferroni adjustment, for when one table makes many comparisons at once
  (Holm 1979, "A simple sequentially rejective multiple test procedure").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from eval.bootstrap import BootstrapCI, bootstrap_ci, paired_bootstrap

__all__ = ["BootstrapCI", "McNemarResult", "bootstrap_ci", "holm", "mcnemar",
           "paired_bootstrap"]


@dataclass(frozen=True)
class McNemarResult:
    """Discordant pairs of two models on ``n`` paired items, and the two-sided p-value."""

    b: int
    """Items A got right and B got wrong."""
    c: int
    """Items A got wrong and B got right."""
    n: int
    """Paired items (concordant ones included)."""
    p_value: float
    method: str = "exact"

    @property
    def discordant(self) -> int:
        return self.b + self.c

    def export(self) -> dict:
        return {"b": self.b, "c": self.c, "n": self.n, "discordant": self.discordant,
                "p_value": self.p_value, "method": self.method}


def mcnemar(a_correct: Sequence[int | bool] | np.ndarray,
            b_correct: Sequence[int | bool] | np.ndarray, exact: bool = True) -> McNemarResult:
    """McNemar's test of "A and B are right equally often" on paired items.

    Under the null each discordant pair is A-only or B-only with probability 1/2, so the
    exact two-sided p-value is the binomial test of ``c`` successes in ``b + c`` trials
    (``scipy.stats.binomtest``). That is the default: it is valid for any number of
    discordant pairs, and with a few dozen (a small evaluation set, two close models) the
    chi-square approximation is noticeably off. ``exact=False`` gives Edwards' (1948)
    continuity-corrected chi-square ``(|b - c| - 1)^2 / (b + c)`` on one degree of freedom.

    >>> r = mcnemar([1, 1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1])
    >>> (r.b, r.c, r.n, r.p_value)
    (0, 6, 8, 0.03125)
    """
    a = np.asarray(a_correct, dtype=bool)
    bb = np.asarray(b_correct, dtype=bool)
    if a.shape != bb.shape or a.ndim != 1:
        raise ValueError(f"paired outcomes must be two 1-d arrays of the same length, got "
                         f"{a.shape} and {bb.shape}")
    b = int(np.sum(a & ~bb))
    c = int(np.sum(~a & bb))
    if b + c == 0:
        return McNemarResult(0, 0, a.size, 1.0, "exact" if exact else "chi2-cc")
    if exact:
        p = stats.binomtest(c, b + c, 0.5).pvalue
        return McNemarResult(b, c, a.size, float(min(1.0, p)), "exact")
    chi2 = max(abs(b - c) - 1, 0) ** 2 / (b + c)
    return McNemarResult(b, c, a.size, float(stats.chi2.sf(chi2, df=1)), "chi2-cc")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given.

    With ``m`` tests sorted by p-value, the ``i``-th smallest (from 0) is multiplied by
    ``m - i``, and the adjusted values are made non-decreasing in that order (and capped at
    1). Rejecting every hypothesis whose adjusted p is below ``alpha`` keeps the chance of
    *any* false rejection among the ``m`` at most ``alpha`` (family-wise error rate), under
    any dependence between the tests. So a comparison called significant after ``holm``
    survives the fact that the table made ``m`` of them; a raw p < 0.05 among a dozen arms
    would not.

    >>> holm([0.01, 0.04, 0.03, 0.005])
    [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")                        # ascending
    scaled = (m - np.arange(m)) * p[order]                      # (m,) (m - i) * p_(i)
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)   # monotone, capped
    out = np.empty(m)
    out[order] = adjusted
    return [float(x) for x in out]
