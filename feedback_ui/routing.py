"""Routing: which fields are auto-accepted, which documents need review, the audit sample.

A field is auto-accepted when its calibrated confidence reaches its ``FieldSpec.auto_accept``
threshold and its value passes the validation rules. A document needs review when any field is
not auto-accepted; a seeded random share of fully auto-accepted documents is audited anyway so
the thresholds stay honest. Pure functions: no store, no UI.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from extractor.document import Document, ExtractionResult, Schema
from feedback_ui.checks import field_problem


@dataclass(frozen=True)
class RoutingConfig:
    """``audit_rate``: share of fully auto-accepted documents queued anyway (seeded)."""

    audit_rate: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.audit_rate <= 1.0:
            raise ValueError(f"audit_rate must be in [0, 1], got {self.audit_rate}")


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
          config: RoutingConfig = RoutingConfig()) -> Route:
    """Decide which fields of ``result`` need an operator."""
    r = Route(doc_id=result.doc_id, model_version=result.model_version, confidences={})
    for spec in schema.fields:
        fr = result.fields.get(spec.name)
        conf = fr.confidence if fr else 0.0
        r.confidences[spec.name] = conf
        problem = field_problem(fr.value if fr else None, spec, doc)
        if problem:
            r.problems[spec.name] = problem
        if fr is None or conf < spec.auto_accept or problem:
            r.review_fields.append(spec.name)
    r.audit = not r.review_fields and in_audit_sample(result.doc_id, config.audit_rate,
                                                      config.seed)
    return r


def most_uncertain_first(routes: list[Route]) -> list[Route]:
    """Queue order: lowest field confidence first, ties by document id."""
    return sorted(routes, key=lambda r: (r.min_confidence, r.doc_id))
