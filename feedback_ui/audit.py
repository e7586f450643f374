"""Reviews as evidence for straight-through processing: refit items and the running audit.

Every field an operator reviewed on an extraction by the model version in force (or one that
scores the same way, ``StraightThrough.scores_of``) is an item: the correctness model's
P(correct) of the answer that was shown, and whether the review kept it (the operator's final
value equals the model's top value under the strict key; a reject of the model's value: wrong).
``kvloop thresholds refit`` certifies again on calibration + these items.

The audit is the running check of what is auto-accepted: the reviewed fields whose P(correct)
reaches their certified threshold (the audit sample of fully auto-accepted documents, and the
accepted fields of documents reviewed for another field) give a precision per field. When its
upper Clopper-Pearson bound falls below the target (``extractor.certify.audit_estimate``), the
field goes back to review: :func:`acceptance_policy` lists it as revoked and routing reviews it.
:func:`straight_through_status` is what the stats page shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extractor.certify import AuditEstimate, audit_estimate
from extractor.document import Schema
from extractor.model.card import ModelCard, model_version
from extractor.scoring import is_correct
from extractor.straight_through import Items, StraightThrough
from extractor.vendor_memory import VendorMemory
from feedback_ui.routing import AcceptancePolicy
from feedback_ui.store import FeedbackStore


@dataclass
class ReviewedFields:
    """Reviewed fields usable as evidence (per field), and why others were not."""

    items: dict[str, Items]
    documents: int = 0
    other_versions: dict[str, int] = field(default_factory=dict)  # version -> fields
    unusable: int = 0  # reviewed fields with no stored result or no known outcome

    @property
    def total(self) -> int:
        return sum(len(v.scores) for v in self.items.values())

    def messages(self, version: str) -> list[str]:
        out = []
        if not self.total:
            out.append(f"the store has no reviewed field of {version} (or of a version that "
                       "scores the same way): nothing to add")
        for v, k in sorted(self.other_versions.items()):
            out.append(f"{k} reviewed field(s) of another model version ({v}) ignored: the "
                       "certificates are about this model's answers")
        if self.unusable:
            out.append(f"{self.unusable} reviewed field(s) without a stored result or a known "
                       "outcome ignored")
        return out


def reviewed_fields(store: FeedbackStore, st: StraightThrough, schema: Schema, version: str
                    ) -> ReviewedFields:
    """Every reviewed field of ``store`` on an extraction by ``version`` or a version in
    ``st.scores_of``, scored by ``st`` (module docstring)."""
    versions = {version, *st.scores_of}
    out = ReviewedFields({f: Items() for f in schema.field_names})
    confirmed = _confirmed_values(store) if st.uses_memory else {}
    for fb in store.iter_feedback():
        # The vendor memory of the other reviewed documents: a page's own review is not known
        # when it is scored.
        memory = (VendorMemory().add_all(v for d, v in confirmed.items() if d != fb.document.id)
                  if st.uses_memory else None)
        used = False
        scored: dict[str, dict[str, float]] = {}
        for name, ff in fb.fields.items():
            if name not in out.items:
                continue
            if ff.model_version not in versions:
                key = ff.model_version or "(unknown)"
                out.other_versions[key] = out.other_versions.get(key, 0) + 1
                continue
            found = store.latest_result(fb.document.id, ff.model_version)
            if found is None:
                out.unusable += 1
                continue
            result = found[1]
            top = result.fields[name].value if name in result.fields else None
            if ff.has_final:
                ok = is_correct(ff.final_value, top)
            elif ff.shown and is_correct(ff.shown[0].value, top):
                ok = False  # the model's own value was rejected
            else:
                out.unusable += 1
                continue
            if ff.model_version not in scored:
                scored[ff.model_version] = st.scores(fb.document, result, schema, memory)
            out.items[name].scores.append(scored[ff.model_version][name])
            out.items[name].correct.append(ok)
            used = True
        out.documents += used
    return out


def _confirmed_values(store: FeedbackStore) -> dict[str, dict[str, str | None]]:
    return {cd.document.id: cd.values for cd in store.iter_corrected()}


def vendor_memory(store: FeedbackStore) -> VendorMemory:
    """What operators confirmed per vendor, over every reviewed document of the store."""
    return VendorMemory().add_all(_confirmed_values(store).values())


def audit(st: StraightThrough, reviewed: ReviewedFields) -> dict[str, AuditEstimate]:
    """Per certified field, the precision of its reviewed answers at or above its threshold."""
    out = {}
    for name, cert in st.certificates.items():
        if cert.threshold is None:
            continue
        its = reviewed.items.get(name, Items())
        oks = [c for s, c in zip(its.scores, its.correct) if s >= cert.threshold]
        out[name] = audit_estimate(name, oks, st.target, st.level)
    return out


def acceptance_policy(store: FeedbackStore, model_dir: str | Path) -> AcceptancePolicy | None:
    """The routing policy of a saved model with the audit's revocations (``None``: the model
    has no certified thresholds; routing then uses the confidence thresholds)."""
    card = ModelCard.load(model_dir)
    st = card.straight_through
    if st is None:
        return None
    estimates = audit(st, reviewed_fields(store, st, card.schema, model_version(model_dir)))
    return AcceptancePolicy(st, frozenset(k for k, e in estimates.items() if e.revoked),
                            vendor_memory(store) if st.uses_memory else None)


@dataclass
class FieldStatus:
    """One field on the stats page: its certificate, its audit, and whether it is accepted
    straight through now."""

    field: str
    in_force: bool
    threshold: float | None
    certified_items: int
    certified_precision: float | None
    certified_bound: float | None
    audited: int
    audited_precision: float | None
    audited_upper: float | None
    note: str

    def export(self) -> dict[str, Any]:
        return dict(self.__dict__)


def straight_through_status(store: FeedbackStore, model_dir: str | Path) -> list[FieldStatus]:
    """Per field of the model: certified threshold and evidence, the audit, and a sentence
    saying what routing does with it (what the stats page shows)."""
    card = ModelCard.load(model_dir)
    st = card.straight_through
    if st is None:
        return [FieldStatus(f, False, None, 0, None, None, 0, None, None,
                            "no certified thresholds: run kvloop thresholds fit")
                for f in card.schema.field_names]
    estimates = audit(st, reviewed_fields(store, st, card.schema, model_version(model_dir)))
    out = []
    for name in card.schema.field_names:
        cert = st.certificates.get(name)
        est = estimates.get(name)
        if cert is None or cert.threshold is None:
            note = f"always reviewed: {cert.reason if cert else 'no certificate'}"
        elif est is not None and est.revoked:
            note = (f"back in review: audited precision {est.precision:.3f} on {est.audited}, "
                    f"upper bound {est.upper:.4f} < target {st.target:g}")
        else:
            note = f"auto-accepted at P(correct) >= {cert.threshold:.4f}"
        out.append(FieldStatus(
            name, bool(cert and cert.threshold is not None and not (est and est.revoked)),
            cert.threshold if cert else None, cert.items if cert else 0,
            cert.precision if cert else None, cert.bound if cert else None,
            est.audited if est else 0, est.precision if est else None,
            est.upper if est else None, note))
    return out
