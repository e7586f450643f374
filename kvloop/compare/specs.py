"""What a unit of work of a comparison is given: frozen, typed, picklable (Ray ships them).

:class:`UnitContext` is what every unit of one (seed, round) shares: the start model, the
prepared data files, the run's settings; a unit adds where it writes and what it runs
(``kvloop.compare.units``). Units return JSON-able dicts, which the step records keep.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from typing_extensions import Self


@dataclass(frozen=True)
class UnitContext:
    """The seed's start model and data, the round's store (``""`` before any review)."""

    seed: int
    threads: int
    device: str
    k: int
    epochs: int
    refit_decisions: bool
    keep_models: bool
    start: str
    start_file: str
    pool_file: str
    pool_nogold_file: str
    select_file: str
    eval_files: Mapping[str, str] = field(default_factory=dict)
    trainer_options: Mapping[str, Any] = field(default_factory=dict)
    store: str = ""
    round: int = 0

    def trainer_values(self, out: Path) -> dict[str, Any]:
        """Config fields every feedback trainer of a unit gets: the start model, the round's
        store, epochs chosen on the selection pages (and decisions refitted on them), the run's
        ``trainer_options``."""
        values = {"init": self.start, "store": self.store, "out": str(out), "seed": self.seed,
                  "epochs": self.epochs, "threads": self.threads, "device": self.device,
                  "dev_data": self.select_file, "dev_split": "all", **self.trainer_options}
        if self.refit_decisions:
            values.update(calib_data=self.select_file, calib_split="all",
                          tesseract_profile=False)
        return values


@dataclass(frozen=True)
class Unit:
    """One unit of work: its context and the folder (or file) it writes."""

    ctx: UnitContext
    out: str

    def with_threads(self, threads: int) -> Self:
        """The same unit on ``threads`` CPU threads (what a Ray task was given)."""
        return replace(self, ctx=replace(self.ctx, threads=threads))


@dataclass(frozen=True)
class StartUnit(Unit):
    """The start model: base training from gold on the start documents."""

    arch: str
    epochs: int
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolUnit(Unit):
    """The start model's k best on the pool, to a JSONL file."""


@dataclass(frozen=True)
class RewardUnit(Unit):
    """The round's reward model (``options``: fields of its config)."""

    options: Mapping[str, Any] = field(default_factory=dict)
