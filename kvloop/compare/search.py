"""Search spaces of the arms' main settings, and the trials drawn from them.

A space maps a trainer config field to a range: :class:`IntRange` (an integer drawn
uniformly, e.g. epochs) or :class:`Scale` (a multiplier of the arm's default drawn
log-uniformly, e.g. a learning rate, a KL coefficient; a range relative to the default fits
a tiny random model's large steps and a pretrained model's small ones alike). Trial 0 is
always the arm's default settings, so "default vs tuned" compares two of the trials; trials
1..N-1 are seeded random draws (random search, Bergstra & Bengio 2012, "Random Search for
Hyper-Parameter Optimization", JMLR 13: for the same number of trials it covers each
setting as well as a grid over that setting alone, whatever the number of settings, so arms
with 2 and with 4 settings get the same N).

Pure and light (no torch): ``kvloop.compare.arms`` declares each trainer's space here.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class IntRange:
    """An integer in ``[low, high]``, uniform."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high:
            raise ValueError(f"IntRange needs 1 <= low <= high, got [{self.low}, {self.high}]")

    def draw(self, rng: np.random.Generator, default: Any) -> int:
        return int(rng.integers(self.low, self.high + 1))


@dataclass(frozen=True)
class Scale:
    """The default times a multiplier in ``[low, high]``, log-uniform, rounded to 3
    significant digits; ``tied_fields`` (e.g. ``head_lr`` beside ``lr``: one step size) get
    their own defaults times the same multiplier."""

    low: float
    high: float
    tied_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.low <= 1 <= self.high:
            raise ValueError(f"Scale needs 0 < low <= 1 <= high, got [{self.low}, {self.high}]")

    def draw(self, rng: np.random.Generator, default: Any) -> float:
        m = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return _sig3(float(default) * m)


Range = IntRange | Scale
SearchSpace = Mapping[str, Range]


def _sig3(x: float) -> float:
    return float(f"{x:.3g}")


def tied_defaults(space: SearchSpace) -> tuple[str, ...]:
    """The fields tied to a setting of ``space`` (their defaults are needed too)."""
    return tuple(f for r in space.values() if isinstance(r, Scale) for f in r.tied_fields)


def draw_trials(space: SearchSpace, defaults: Mapping[str, Any], n: int, seed: int,
                key: str) -> list[dict[str, Any]]:
    """``n`` trials of ``space``: the ``defaults`` first, then ``n - 1`` seeded draws (seeded
    by ``seed`` and ``key``, the arm's name, so two arms draw independently and a rerun draws
    the same). Each trial maps every setting (and tied field) to its value."""
    if n < 1:
        raise ValueError(f"trials must be >= 1, got {n}")
    missing = [f for f in (*space, *tied_defaults(space)) if f not in defaults]
    if missing:
        raise ValueError(f"no default for {missing} (arm {key!r})")
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    names = list(space) + [f for f in tied_defaults(space) if f not in space]
    trials = [{f: defaults[f] for f in names}]
    for _ in range(n - 1):
        trial: dict[str, Any] = {}
        for name, rng_range in space.items():
            value = rng_range.draw(rng, defaults[name])
            trial[name] = value
            if isinstance(rng_range, Scale) and rng_range.tied_fields:
                ratio = value / float(defaults[name]) if defaults[name] else 1.0
                trial.update({f: _sig3(float(defaults[f]) * ratio)
                              for f in rng_range.tied_fields})
        trials.append({f: trial[f] for f in names})
    return trials


def best_trial(scores: Sequence[float]) -> int:
    """The trial with the highest score; a tie goes to the earlier trial (the default first:
    a setting is only called tuned when it scored strictly better)."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))
