"""What a comparison measures, as plain records: one ``ArmResult`` per (arm, seed, round,
evaluation set), written to ``OUT/results.jsonl`` as soon as it is known.

Everything the report and the statistics need is here, per document, so intervals and tests
can be recomputed from the file alone (``kvloop compare --report-only``):

* ``doc_ids`` and, per document and field, ``correct`` (1 when the top value equals gold
  under SROIE's lenient key, ``eval.metrics.judge`` with no false positive and no false
  negative; "not present" on an absent gold field counts as correct) and ``counts``
  (lenient ``[tp, fp, fn]`` per document: the SROIE metric's statistics, summed over
  documents for micro F1);
* the budget the arm learnt from: ``reviewed_docs`` (documents the simulated operator saved
  up to this round) and ``operator_seconds`` (what those reviews cost under the effort model);
* what the arm cost and measured while learning: ``train_seconds`` and ``extras`` (for
  example ``reward_pair_acc``, ``mean_reward``, ``kl``, ``dev_f1_by_epoch``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_REGIME = "default"  # the regime of rows that record none


@dataclass
class ArmResult:
    """One arm's model after one round of one seed, scored on one evaluation set."""

    arm: str
    seed: int
    round: int  # 0 = before any feedback (every arm equals the start model there)
    eval_set: str  # "dev", "unseen-vendor", or a name from the config's extra sets
    fields: list[str]
    doc_ids: list[str]
    correct: list[list[int]]  # (docs, fields): 1 right, 0 wrong
    counts: list[list[int]]  # (docs, 3): lenient [tp, fp, fn] of each document
    reviewed_docs: int
    operator_seconds: float
    train_seconds: float = 0.0
    model_version: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.doc_ids)
        if len(self.correct) != n or len(self.counts) != n:
            raise ValueError(f"{self.arm}/{self.seed}/{self.round}/{self.eval_set}: "
                             f"{n} documents but {len(self.correct)} correct rows and "
                             f"{len(self.counts)} count rows")
        if any(len(r) != len(self.fields) for r in self.correct):
            raise ValueError(f"{self.arm}/{self.seed}/{self.round}/{self.eval_set}: a "
                             f"correct row does not have one entry per field {self.fields}")

    @property
    def regime(self) -> str:
        """The feedback regime the row learnt under (``extras["regime"]``), ``default`` if
        unset (rows written before regimes were recorded)."""
        v = self.extras.get("regime")
        return str(v) if v not in (None, "") else DEFAULT_REGIME

    @property
    def key(self) -> tuple[str, str, int, int, str]:
        """(regime, arm, seed, round, eval_set): rows of two regimes never replace each other."""
        return (self.regime, self.arm, self.seed, self.round, self.eval_set)

    @property
    def f1(self) -> float:
        """Lenient micro F1 over the documents: ``2tp / (2tp + fp + fn)``."""
        tp = sum(c[0] for c in self.counts)
        fp = sum(c[1] for c in self.counts)
        fn = sum(c[2] for c in self.counts)
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0

    def export(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArmResult:
        return cls(**d)


def append_result(path: str | Path, result: ArmResult) -> None:
    """Add one line to ``results.jsonl`` (flushed and synced: a kill loses no finished row)."""
    import os

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(result.export()) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_results(path: str | Path) -> list[ArmResult]:
    """Every row of ``results.jsonl``; a later row with the same key replaces an earlier one,
    and a torn last line (a kill mid-write) is ignored."""
    p = Path(path)
    if not p.is_file():
        return []
    rows: dict[tuple[str, str, int, int, str], ArmResult] = {}
    lines = p.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            r = ArmResult.from_dict(json.loads(line))
        except (json.JSONDecodeError, TypeError) as e:
            if i == len(lines) - 1:
                break  # torn by a kill while writing
            raise ValueError(f"{p}:{i + 1}: not a result row ({e})") from e
        rows[r.key] = r
    return list(rows.values())
