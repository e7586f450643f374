"""Routing: which fields are auto-accepted, which documents need review, the audit sample.

A field is auto-accepted when its calibrated confidence reaches its auto-accept threshold and
its value passes the validation rules. The threshold is the one fitted on held-out data for a
target precision (saved with the model, ``kvloop.json["auto_accept"]``) when there is one, else
the schema's ``FieldSpec.auto_accept``; a field fitted to ``None`` cannot reach the target and
is always reviewed. A document needs review when any field is not auto-accepted; a seeded
random share of fully auto-accepted documents is audited anyway so the thresholds stay honest.

With an :class:`AcceptancePolicy` (the model card's certified straight-through thresholds,
``extractor.straight_through``, and the fields the audit has sent back to review,
``feedback_ui.audit``), a field is auto-accepted when its P(correct) reaches its certified
threshold and its value passes the validation rules; the confidence thresholds are not used.
Pure functions: no store, no UI.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from extractor.document import Document, ExtractionResult, FieldSpec, Schema
from extractor.straight_through import AcceptDecision, StraightThrough
from extractor.vendor_memory import VendorMemory
from feedback_ui.checks import field_problem


@dataclass(frozen=True)
class RoutingConfig:
    """``audit_rate``: share of fully auto-accepted documents queued anyway (seeded)."""

    audit_rate: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.audit_rate <= 1.0:
            raise ValueError(f"audit_rate must be in [0, 1], got {self.audit_rate}")


Thresholds = Mapping[str, float | None]  # field -> fitted threshold; None = always review


@dataclass(frozen=True)
class Threshold:
    """The auto-accept threshold in force for one field and where it comes from."""

    field: str
    value: float | None  # None: the field is always reviewed
    source: Literal["fitted", "schema"]


def check_thresholds(thresholds: Thresholds, schema: Schema) -> None:
    """Raise ``ValueError`` unless every entry names a schema field and is in [0, 1] or None."""
    unknown = sorted(set(thresholds) - set(schema.field_names))
    if unknown:
        raise ValueError(f"auto-accept thresholds for fields not in schema {schema.name!r}: "
                         f"{unknown}")
    for name, value in thresholds.items():
        if value is None:
            continue
        # bool is an int: refuse it rather than read true as a threshold of 1.0.
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or not 0.0 <= value <= 1.0):
            raise ValueError(f"auto-accept threshold of field {name!r} must be a number in "
                             f"[0, 1] or null, got {value!r}")


def threshold_for(spec: FieldSpec, thresholds: Thresholds | None = None) -> Threshold:
    """The threshold routing applies to ``spec``: the fitted one if any, else the schema's."""
    if thresholds is not None and spec.name in thresholds:
        value = thresholds[spec.name]
        return Threshold(spec.name, None if value is None else float(value), "fitted")
    return Threshold(spec.name, spec.auto_accept, "schema")


def thresholds_in_force(schema: Schema, thresholds: Thresholds | None = None) -> list[Threshold]:
    """Every field's threshold, in schema order (what the UI reports)."""
    return [threshold_for(spec, thresholds) for spec in schema.fields]


@dataclass(frozen=True)
class AcceptancePolicy:
    """Certified auto-accept: the card's straight-through section, the fields the audit
    revoked (always reviewed) and, optionally, the vendor memory it reads."""

    straight_through: StraightThrough
    revoked: frozenset[str] = frozenset()
    memory: VendorMemory | None = None

    def decide(self, result: ExtractionResult, schema: Schema, doc: Document | None
               ) -> dict[str, AcceptDecision]:
        """Per field, the decision; without the page nothing can be scored or accepted."""
        if doc is None:
            return {f: AcceptDecision(f, False, float("nan"), None, result.model_version,
                                      "the page is not in the store") for f in schema.field_names}
        return self.straight_through.decide(doc, result, schema, self.memory, self.revoked)


@dataclass
class Route:
    """The routing decision for one document's extraction result."""

    doc_id: str
    model_version: str
    confidences: dict[str, float]
    review_fields: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    audit: bool = False

    @property
    def needs_review(self) -> bool:
        return bool(self.review_fields) or self.audit

    @property
    def min_confidence(self) -> float:
        return min(self.confidences.values(), default=0.0)


def in_audit_sample(doc_id: str, rate: float, seed: int) -> bool:
    """Deterministic per document: the same seed always audits the same documents."""
    h = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < rate


def route(result: ExtractionResult, schema: Schema, doc: Document | None = None,
          config: RoutingConfig = RoutingConfig(), thresholds: Thresholds | None = None,
          acceptance: AcceptancePolicy | None = None) -> Route:
    """Decide which fields of ``result`` need an operator.

    ``thresholds`` (fitted, per field) override the schema's ``auto_accept``; a field mapped to
    ``None`` is always reviewed. ``acceptance`` replaces both by certified P(correct)
    thresholds (module docstring).
    """
    r = Route(doc_id=result.doc_id, model_version=result.model_version, confidences={})
    decisions = acceptance.decide(result, schema, doc) if acceptance is not None else None
    for spec in schema.fields:
        fr = result.fields.get(spec.name)
        conf = fr.confidence if fr else 0.0
        r.confidences[spec.name] = conf
        problem = field_problem(fr.value if fr else None, spec, doc)
        if problem:
            r.problems[spec.name] = problem
        if decisions is not None:
            accepted = fr is not None and decisions[spec.name].accept
        else:
            limit = threshold_for(spec, thresholds).value
            accepted = fr is not None and limit is not None and conf >= limit
        if not accepted or problem:
            r.review_fields.append(spec.name)
    r.audit = not r.review_fields and in_audit_sample(result.doc_id, config.audit_rate,
                                                      config.seed)
    return r


def most_uncertain_first(routes: list[Route]) -> list[Route]:
    """Queue order: lowest field confidence first, ties by document id."""
    return sorted(routes, key=lambda r: (r.min_confidence, r.doc_id))
