"""The contract every trainer keeps: a config in, ``train()`` out, one typed result.

A trainer class has a ``name`` (its registry key, ``training.registry``), takes its config
dataclass as the first argument and returns a :class:`TrainResult` from ``train()``: the
model version it wrote, that version's card, the curves and how long it took. The CLI, ``kvloop
compare`` and the benchmarks read that result and nothing else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


@dataclass(frozen=True)
class TrainResult:
    """What one ``train()`` wrote.

    ``out``: the new version's folder; ``version``: its id (``kv.ensemble.v1@...``,
    ``kv.reward.v1@...``); ``card``: its ``ModelCard`` or ``RewardCard``; ``history``: one row
    per epoch (the loop's curves); ``best_epoch``/``best_score``: the kept epoch and its
    selection score (``None`` for a trainer without epochs); ``seconds``: wall time of
    ``train()``; ``summary``: one line for the command line.
    """

    out: Path
    version: str
    card: Any = None
    history: tuple[dict[str, Any], ...] = ()
    best_epoch: int | None = None
    best_score: float | None = None
    seconds: float = 0.0
    summary: str = field(default="", compare=False)

    def describe(self) -> str:
        """``saved OUT (VERSION...)``, what ``kvloop train`` prints."""
        what = [self.version]
        if self.best_epoch is not None:
            what.append(f"best epoch {self.best_epoch}")
        if self.best_score is not None:
            what.append(f"selection score {self.best_score:.4f}")
        return f"saved {self.out} ({', '.join(what)})" + (f": {self.summary}"
                                                          if self.summary else "")


class BaseTrainer(ABC):
    """One trainer (see the module docstring)."""

    name: ClassVar[str]

    @abstractmethod
    def train(self) -> TrainResult:
        """Train and write a new model version; never overwrite an existing one."""
