"""Auto-accept thresholds with a guarantee, and the audit that can take one back.

An *item* is one (document, field) answer with a score ``s`` (the correctness model's
P(correct), ``extractor.correctness``) and whether it was right. Accepting every answer with
``s >= t`` has a risk ``R(t)``: the share of accepted answers that are wrong. A field's target
precision ``p`` is the promise ``R(t) <= alpha = 1 - p``.

Per threshold, the test of ``H0: R(t) > alpha`` uses the exact binomial tail of the errors
``k`` among the ``n`` accepted held-out items, the p-value ``P(Binom(n, alpha) <= k)``
(Clopper & Pearson 1934; Bates, Angelopoulos et al. 2021, "Distribution-Free,
Risk-Controlling Prediction Sets", Prop. 3.1 for binary losses). It rejects exactly when the
Clopper-Pearson upper confidence bound of the error rate at level ``1 - delta`` is at most
``alpha`` (``error_upper_bound``).

Choosing the threshold after looking at the data would spend that guarantee once per tried
threshold. Learn-then-Test (Angelopoulos, Bates, Candès, Jordan & Lei 2021, "Learn then Test:
Calibrating Predictive Algorithms to Achieve Risk Control", Sec. 4, fixed sequence testing)
keeps it: the thresholds of a fixed grid are tested from the highest down, and testing stops at
the first one that is not rejected. Risk grows as the threshold falls, so the order is the
natural one, and a fixed sequence controls the family-wise error at ``delta`` with no
correction: ``P(R(t_hat) > alpha) <= delta``. We chose it over a Bonferroni scan because a
Bonferroni correction over a fine grid costs a factor of the grid's size in ``delta``, while the
fixed sequence costs nothing as long as the risk is monotone in the threshold; its price is
that one bad threshold high up ends the scan. The sequence starts at the highest grid
threshold that accepts enough items for zero errors to be evidence at all
(``items_needed``): that start depends on the scores only, never on the labels.
Conformal risk control (Angelopoulos, Bates, Fisch, Lei & Schuster 2022, "Conformal Risk
Control", Thm. 1) would bound the *expected* risk instead; we want the high-probability
statement a deployment can be audited against.

The audit (``audit_estimate``) runs the other way: reviews of auto-accepted answers are fresh
items at the threshold in force; when the *upper* Clopper-Pearson bound of their precision
falls below the target, the audit has shown (at the same level) that the field misses it, and
the field goes back to review.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

LEVEL = 0.95
"""Confidence of every statement: ``delta = 1 - LEVEL`` is the chance the promise is broken."""

GRID: tuple[float, ...] = tuple(float(round(1.0 - e, 6))
                                for e in np.logspace(-4, math.log10(0.5), 120))
"""Candidate thresholds, fixed before any data is seen: 0.9999 down to 0.5, denser near 1."""


def error_upper_bound(errors: int, n: int, level: float = LEVEL) -> float:
    """One-sided Clopper-Pearson upper confidence bound on an error rate: the
    ``level`` quantile of ``Beta(errors + 1, n - errors)`` (1 when every item is wrong).

    >>> round(error_upper_bound(0, 299), 5), error_upper_bound(3, 3)
    (0.00997, 1.0)
    """
    _check_counts(errors, n)
    if errors >= n:
        return 1.0
    if errors == 0:  # closed form of the Beta(1, n) quantile
        return 1.0 - (1.0 - level) ** (1.0 / n)
    from scipy.stats import beta

    return float(beta.ppf(level, errors + 1, n - errors))


def error_lower_bound(errors: int, n: int, level: float = LEVEL) -> float:
    """One-sided Clopper-Pearson lower confidence bound on an error rate: the
    ``1 - level`` quantile of ``Beta(errors, n - errors + 1)`` (0 without errors)."""
    _check_counts(errors, n)
    if errors == 0:
        return 0.0
    if errors == n:
        return (1.0 - level) ** (1.0 / n)
    from scipy.stats import beta

    return float(beta.ppf(1.0 - level, errors, n - errors + 1))


def _check_counts(errors: int, n: int) -> None:
    if n <= 0 or not 0 <= errors <= n:
        raise ValueError(f"need n > 0 and 0 <= errors <= n, got {errors} errors of {n}")


def items_needed(target: float, level: float = LEVEL) -> int:
    """Fewest accepted items with no error whose bound reaches ``target``:
    ``ceil(log(1 - level) / log(target))`` (299 at 0.99, 59 at 0.95, 598 at 0.995)."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"target precision must be in (0, 1), got {target}")
    return math.ceil(math.log(1.0 - level) / math.log(target) - 1e-9)


@dataclass
class Certificate:
    """The certified auto-accept threshold of one field and the evidence behind it.

    ``threshold`` ``None``: nothing certified, the field is always reviewed (``reason``
    says why). ``bound``: the Clopper-Pearson upper bound of the error rate of the accepted
    items at ``level``; certified means ``bound <= 1 - target``.
    """

    field: str
    threshold: float | None
    target: float
    level: float
    items: int
    accepted: int = 0
    errors: int = 0
    precision: float | None = None
    bound: float | None = None
    reason: str = ""

    @property
    def certified(self) -> bool:
        return self.threshold is not None

    @property
    def coverage(self) -> float:
        return self.accepted / self.items if self.items else 0.0

    def export(self) -> dict[str, Any]:
        return {**asdict(self), "coverage": self.coverage}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Certificate:
        thr = d.get("threshold")
        return cls(str(d["field"]), None if thr is None else float(thr), float(d["target"]),
                   float(d["level"]), int(d["items"]), int(d.get("accepted", 0)),
                   int(d.get("errors", 0)),
                   None if d.get("precision") is None else float(d["precision"]),
                   None if d.get("bound") is None else float(d["bound"]),
                   str(d.get("reason", "")))


def certify(field: str, scores: Sequence[float], correct: Sequence[bool], target: float,
            level: float = LEVEL, grid: Sequence[float] = GRID) -> Certificate:
    """The lowest threshold of ``grid`` reached by fixed sequence testing (module docstring).

    ``scores``/``correct`` are held-out items of one field. Never raises on thin data: too few
    items, or none passing, gives ``threshold=None`` with the reason.

    >>> c = certify("total", [0.999] * 300 + [0.6] * 100, [True] * 300 + [False] * 100, 0.99)
    >>> c.threshold > 0.6, c.accepted, round(c.bound, 4)
    (True, 300, 0.0099)
    >>> certify("total", [0.999] * 100, [True] * 100, 0.99).reason
    'too few items: 100, certifying 99% precision at 95% confidence needs at least 299'
    """
    if len(scores) != len(correct):
        raise ValueError(f"{field}: {len(scores)} scores but {len(correct)} correctness flags")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    alpha, need = 1.0 - target, items_needed(target, level)
    n_items = len(scores)
    if n_items < need:
        return Certificate(field, None, target, level, n_items, reason=(
            f"too few items: {n_items}, certifying {target:.1%} precision at {level:.0%} "
            f"confidence needs at least {need}").replace(".0%", "%"))
    s = np.asarray(scores, dtype=float)
    wrong = ~np.asarray(correct, dtype=bool)
    best: Certificate | None = None
    started = False
    reason = f"no threshold accepts {need} items (the fewest that can certify {target:g})"
    for t in sorted(grid, reverse=True):
        accepted = s >= t
        n = int(accepted.sum())
        if n < need:  # too few to be evidence yet: the sequence has not started
            continue
        started = True
        k = int(wrong[accepted].sum())
        bound = error_upper_bound(k, n, level)
        if bound > alpha:  # not rejected: the fixed sequence stops here
            reason = (f"at threshold {t:.4f}: {k} errors in {n} accepted, error bound "
                      f"{bound:.4f} > {alpha:.4f}")
            break
        best = Certificate(field, t, target, level, n_items, n, k, 1.0 - k / n, bound)
    if best is not None:
        return best
    if not started:
        return Certificate(field, None, target, level, n_items, reason=reason)
    return Certificate(field, None, target, level, n_items, reason=f"not certified: {reason}")


# -- the audit ---------------------------------------------------------------------------------

@dataclass
class AuditEstimate:
    """A field's audited precision: reviews of answers that were auto-accepted.

    ``upper`` is the one-sided Clopper-Pearson upper bound of the precision at ``level``;
    ``revoked`` when it is below ``target`` (the audit shows the field misses the target).
    """

    field: str
    audited: int
    errors: int
    target: float
    level: float = LEVEL

    @property
    def precision(self) -> float | None:
        return 1.0 - self.errors / self.audited if self.audited else None

    @property
    def upper(self) -> float | None:
        if not self.audited:
            return None
        return 1.0 - error_lower_bound(self.errors, self.audited, self.level)

    @property
    def revoked(self) -> bool:
        return self.upper is not None and self.upper < self.target

    def export(self) -> dict[str, Any]:
        return {**asdict(self), "precision": self.precision, "upper": self.upper,
                "revoked": self.revoked}


def audit_estimate(field: str, correct: Sequence[bool], target: float,
                   level: float = LEVEL) -> AuditEstimate:
    """The audit of ``field`` from the review outcomes of its auto-accepted answers.

    >>> audit_estimate("total", [True] * 50, 0.99).revoked
    False
    >>> audit_estimate("total", [True] * 45 + [False] * 5, 0.99).revoked
    True
    """
    return AuditEstimate(field, len(correct), sum(not c for c in correct), target, level)
