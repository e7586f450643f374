"""Bootstrap over documents: how sure is a metric, and is model B really better than A?

Each document contributes a row of additive statistics (for example tp, fp, fn) for each
model. One bootstrap replicate draws documents with replacement, sums the rows over the draw
and applies the metric to the sums (``_resampled_sums``). ``bootstrap_ci`` does this for one
model; ``paired_bootstrap`` sums both models' rows over the same draw (that is what makes it
*paired*) and takes the difference. The 95% interval is the 2.5th and 97.5th percentile of
the replicates (Efron & Tibshirani 1993, percentile method).

When the rows come from several seeds that each trained their own model (a start model per
seed), the seeds are a sample too: ``crossed_bootstrap_ci`` and ``crossed_paired_bootstrap``
take ``(seeds, docs, k)`` statistics and draw seeds and documents independently, each with
replacement, summing ``w_s * v_d * stats[s, d]`` (the pigeonhole bootstrap for a crossed
design, Owen 2007, "The pigeonhole bootstrap", Ann. Appl. Stat. 1(2), Sec. 2). The interval
then holds the seed-to-seed variance as well as the document sampling; with few seeds it is
coarse (3 seeds give 10 distinct seed draws).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Metric = Callable[[np.ndarray], np.ndarray]
"""Maps summed statistics of shape ``(..., k)`` to a metric of shape ``(...)``."""


def f1_of_counts(s: np.ndarray) -> np.ndarray:
    """Micro F1 from summed ``[tp, fp, fn]`` columns: ``2tp / (2tp + fp + fn)``.

    >>> float(f1_of_counts(np.array([3, 1, 1])))
    0.75
    """
    tp, fp, fn = s[..., 0], s[..., 1], s[..., 2]
    den = 2 * tp + fp + fn
    return np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)


def mean_of(s: np.ndarray) -> np.ndarray:
    """Mean from summed ``[value, count]`` columns (e.g. all-fields-correct, ANLS)."""
    return np.where(s[..., 1] > 0, s[..., 0] / np.maximum(s[..., 1], 1), 0.0)


@dataclass
class BootstrapCI:
    """``metric`` on all documents, and its bootstrap interval."""

    value: float
    low: float
    high: float
    n_docs: int
    n_boot: int

    def export(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high,
                "n_docs": self.n_docs, "n_boot": self.n_boot}


@dataclass
class PairedCI:
    """Difference ``metric(b) - metric(a)`` on all documents, and its bootstrap interval."""

    diff: float
    low: float
    high: float
    n_docs: int
    n_boot: int
    p_le_zero: float
    """Share of replicates where B did not beat A (a one-sided bootstrap p-value)."""

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0

    def export(self) -> dict:
        return {"diff": self.diff, "low": self.low, "high": self.high, "n_docs": self.n_docs,
                "n_boot": self.n_boot, "p_le_zero": self.p_le_zero,
                "significant": self.significant}


def _resampled_sums(n_boot: int, seed: int, *stats: np.ndarray) -> list[np.ndarray]:
    """Each of ``stats`` (docs, k) summed over the same ``n_boot`` draws of documents with
    replacement: one (n_boot, k) array per input. Seeded, so a rerun gives the same draws."""
    n = stats[0].shape[0]
    # How often each replicate drew each document; summing through these weights keeps memory
    # at (n_boot, n) + (n_boot, k) rather than (n_boot, n, k).
    counts = _draw_counts(np.random.default_rng(seed), n_boot, n)  # (n_boot, n)
    return [counts @ s for s in stats]                          # each (n_boot, k)


def _draw_counts(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """How often each of ``n`` items is drawn in each of ``n_boot`` draws of ``n`` with
    replacement: (n_boot, n) floats."""
    idx = rng.integers(0, n, size=(n_boot, n))                  # (n_boot, n) item draws
    flat = (np.arange(n_boot)[:, None] * n + idx).ravel()       # (n_boot * n,)
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(float)


def _crossed_sums(n_boot: int, seed: int, *stats: np.ndarray) -> list[np.ndarray]:
    """Each of ``stats`` (seeds, docs, k) summed over the same ``n_boot`` independent draws of
    seeds and of documents: one (n_boot, k) array per input."""
    n_seeds, n_docs = stats[0].shape[:2]
    rng = np.random.default_rng(seed)
    w = _draw_counts(rng, n_boot, n_seeds)                      # (n_boot, seeds)
    v = _draw_counts(rng, n_boot, n_docs)                       # (n_boot, docs)
    return [np.einsum("bs,sdk,bd->bk", w, s, v) for s in stats]  # each (n_boot, k)


def _percentiles(reps: np.ndarray, alpha: float) -> tuple[float, float]:
    low, high = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _as_stats(stats: np.ndarray) -> np.ndarray:
    a = np.asarray(stats, dtype=float)
    if a.ndim != 2:
        raise ValueError(f"statistics must have a (docs, k) shape, got {a.shape}")
    return a


def bootstrap_ci(stats: np.ndarray, metric: Metric, n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> BootstrapCI:
    """Percentile bootstrap CI of ``metric`` over documents (rows of ``stats``).

    >>> ci = bootstrap_ci(np.array([[1, 0, 0], [0, 1, 1]] * 20), f1_of_counts, n_boot=200)
    >>> ci.value, ci.low < ci.value < ci.high
    (0.5, True)
    """
    s = _as_stats(stats)
    value = float(metric(s.sum(0)))
    if s.shape[0] == 0:
        return BootstrapCI(value, value, value, 0, n_boot)
    (sums,) = _resampled_sums(n_boot, seed, s)
    low, high = _percentiles(metric(sums), alpha)                # metric: (n_boot,)
    return BootstrapCI(value, low, high, s.shape[0], n_boot)


def paired_bootstrap(stats_a: np.ndarray, stats_b: np.ndarray, metric: Metric,
                     n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> PairedCI:
    """Bootstrap CI of ``metric(B) - metric(A)``; rows of ``stats_*`` are the same documents.

    >>> a = np.array([[1, 0, 0], [0, 1, 1]] * 20); b = np.array([[1, 0, 0]] * 40)
    >>> ci = paired_bootstrap(a, b, f1_of_counts, n_boot=200)
    >>> round(ci.diff, 3), ci.significant
    (0.5, True)
    """
    a, b = np.asarray(stats_a, dtype=float), np.asarray(stats_b, dtype=float)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"paired statistics must have the same (docs, k) shape, got "
                         f"{a.shape} and {b.shape}")
    n = a.shape[0]
    diff = float(metric(b.sum(0)) - metric(a.sum(0)))
    if n == 0:
        return PairedCI(diff, diff, diff, 0, n_boot, 1.0)
    sums_a, sums_b = _resampled_sums(n_boot, seed, a, b)
    reps = metric(sums_b) - metric(sums_a)                       # (n_boot,)
    low, high = _percentiles(reps, alpha)
    return PairedCI(diff, low, high, n, n_boot, float(np.mean(reps <= 0)))


def _as_crossed(stats: np.ndarray) -> np.ndarray:
    a = np.asarray(stats, dtype=float)
    if a.ndim != 3:
        raise ValueError(f"crossed statistics must have a (seeds, docs, k) shape, got {a.shape}")
    return a


def crossed_bootstrap_ci(stats: np.ndarray, metric: Metric, n_boot: int = 1000,
                         seed: int = 0, alpha: float = 0.05) -> BootstrapCI:
    """Percentile bootstrap CI of ``metric`` drawing seeds and documents (rows ``[s, d]`` of
    ``stats``, zeros where a seed did not score a document) independently (module docstring).

    >>> same = np.array([[[1, 0, 0], [0, 1, 1]] * 20] * 3)
    >>> ci = crossed_bootstrap_ci(same, f1_of_counts, n_boot=200)
    >>> ci.value, ci.low < ci.value < ci.high, ci.n_docs
    (0.5, True, 40)
    """
    s = _as_crossed(stats)
    value = float(metric(s.sum((0, 1))))
    if s.shape[0] == 0 or s.shape[1] == 0:
        return BootstrapCI(value, value, value, s.shape[1], n_boot)
    (sums,) = _crossed_sums(n_boot, seed, s)
    low, high = _percentiles(metric(sums), alpha)                # metric: (n_boot,)
    return BootstrapCI(value, low, high, s.shape[1], n_boot)


def crossed_paired_bootstrap(stats_a: np.ndarray, stats_b: np.ndarray, metric: Metric,
                             n_boot: int = 1000, seed: int = 0,
                             alpha: float = 0.05) -> PairedCI:
    """Bootstrap CI of ``metric(B) - metric(A)`` drawing seeds and documents independently;
    ``stats_*`` are (seeds, docs, k) over the same seeds and documents, and both models are
    summed over the same draw.

    >>> a = np.array([[[1, 0, 0], [0, 1, 1]] * 20] * 2); b = np.array([[[1, 0, 0]] * 40] * 2)
    >>> ci = crossed_paired_bootstrap(a, b, f1_of_counts, n_boot=200)
    >>> round(ci.diff, 3), ci.significant
    (0.5, True)
    """
    a, b = _as_crossed(stats_a), _as_crossed(stats_b)
    if a.shape != b.shape:
        raise ValueError(f"paired statistics must have the same (seeds, docs, k) shape, got "
                         f"{a.shape} and {b.shape}")
    diff = float(metric(b.sum((0, 1))) - metric(a.sum((0, 1))))
    if a.shape[0] == 0 or a.shape[1] == 0:
        return PairedCI(diff, diff, diff, a.shape[1], n_boot, 1.0)
    sums_a, sums_b = _crossed_sums(n_boot, seed, a, b)
    reps = metric(sums_b) - metric(sums_a)                       # (n_boot,)
    low, high = _percentiles(reps, alpha)
    return PairedCI(diff, low, high, a.shape[1], n_boot, float(np.mean(reps <= 0)))
