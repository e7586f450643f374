"""Straight-through processing: which fields of a result can go out with nobody looking.

A :class:`StraightThrough` is saved in the model card (``kvloop.json["straight_through"]``):
the correctness model (``extractor.correctness``), one certificate per field
(``extractor.certify``: the threshold on P(correct) whose accepted answers reach the target
precision with the stated confidence, and the evidence) and the calibration split's held-out
items, so a refit can add a store's reviews to them without re-reading those pages (the store's
own items are read from the store at each refit, never saved here, so none counts twice).

:meth:`StraightThrough.decide` says per field whether the answer would be auto-accepted and
why; ``kvloop extract`` writes it on every line and the review queue routes by it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from extractor.certify import LEVEL, Certificate
from extractor.correctness import CorrectnessModel, field_features
from extractor.document import Document, ExtractionResult, Schema
from extractor.vendor_memory import VendorMemory

TARGET = 0.99
SCOPES: tuple[str, ...] = ("field", "pooled")


@dataclass
class Items:
    """Held-out items of one field: P(correct) scores and whether each answer was right."""

    scores: list[float] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)

    def export(self) -> dict[str, Any]:
        return {"scores": [round(s, 6) for s in self.scores],
                "correct": [int(c) for c in self.correct]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Items:
        scores, correct = [float(s) for s in d["scores"]], [bool(c) for c in d["correct"]]
        if len(scores) != len(correct):
            raise ValueError("items: scores and correct differ in length")
        return cls(scores, correct)

    def __add__(self, other: Items) -> Items:
        return Items(self.scores + other.scores, self.correct + other.correct)


@dataclass
class AcceptDecision:
    """Whether one field of one result would be auto-accepted, and why."""

    field: str
    accept: bool
    p_correct: float
    threshold: float | None
    model_version: str
    reason: str

    def export(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StraightThrough:
    """The correctness model, per-field certificates and their evidence (module docstring).

    ``scope``: ``field`` certifies each field on its own items (the promise holds per field);
    ``pooled`` certifies one threshold on every field's items together (the promise is about
    all auto-accepted answers together: a weak field may sit below the target while strong ones
    carry it, so the audit watches each field). ``sources``: per field, how many items came
    from the calibration split and from reviews in a store. ``scores_of``: model versions whose results score the same way as this one
    (same weights, decisions and correctness model: a threshold refit only), so their reviews
    count as evidence for this one.
    """

    model: CorrectnessModel
    certificates: dict[str, Certificate]
    items: dict[str, Items] = field(default_factory=dict)
    target: float = TARGET
    level: float = LEVEL
    sources: dict[str, dict[str, int]] = field(default_factory=dict)
    scores_of: list[str] = field(default_factory=list)
    uses_memory: bool = False
    scope: str = "field"

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {self.scope!r}")

    def scores(self, doc: Document, result: ExtractionResult, schema: Schema,
               memory: VendorMemory | None = None) -> dict[str, float]:
        """P(correct) of each schema field of ``result``."""
        X = np.array([field_features(doc, result.fields.get(s.name), s,
                                     memory if self.uses_memory else None)
                      for s in schema.fields])
        p = self.model.predict(X, schema.field_names)
        return {name: float(v) for name, v in zip(schema.field_names, p)}

    def decide(self, doc: Document, result: ExtractionResult, schema: Schema,
               memory: VendorMemory | None = None, revoked: Collection[str] = ()
               ) -> dict[str, AcceptDecision]:
        """Per schema field: accepted when its certificate has a threshold, the audit has not
        revoked it and P(correct) reaches the threshold."""
        out = {}
        for name, p in self.scores(doc, result, schema, memory).items():
            cert = self.certificates.get(name)
            thr = cert.threshold if cert is not None else None
            if cert is None:
                reason, ok = "no certificate for this field", False
            elif thr is None:
                reason, ok = f"not certified: {cert.reason}", False
            elif name in revoked:
                reason, ok = "back in review: the audit shows precision below the target", False
            elif p >= thr:
                reason, ok = (f"P(correct) {p:.4f} >= {thr:.4f}, certified for "
                              f"{cert.target:g} precision at {cert.level:g} confidence on "
                              f"{cert.items} items"), True
            else:
                reason, ok = f"P(correct) {p:.4f} < {thr:.4f}", False
            out[name] = AcceptDecision(name, ok, p, thr, result.model_version, reason)
        return out

    def export(self) -> dict[str, Any]:
        return {"model": self.model.export(), "target": self.target, "level": self.level,
                "certificates": {k: c.export() for k, c in self.certificates.items()},
                "items": {k: v.export() for k, v in self.items.items()},
                "sources": self.sources, "scores_of": list(self.scores_of),
                "uses_memory": self.uses_memory, "scope": self.scope}

    def summary(self) -> dict[str, Any]:
        """What the version hash needs: everything that changes a decision (not the items)."""
        d = self.export()
        d.pop("items")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "straight_through") -> StraightThrough:
        try:
            return cls(CorrectnessModel.from_dict(d["model"]),
                       {k: Certificate.from_dict(v) for k, v in d["certificates"].items()},
                       {k: Items.from_dict(v) for k, v in d.get("items", {}).items()},
                       float(d.get("target", TARGET)), float(d.get("level", LEVEL)),
                       {k: {s: int(n) for s, n in v.items()}
                        for k, v in d.get("sources", {}).items()},
                       [str(v) for v in d.get("scores_of", [])], bool(d.get("uses_memory")),
                       str(d.get("scope", "field")))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: not a valid straight-through section "
                             f"({type(e).__name__}: {e})") from e
