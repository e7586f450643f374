"""The deployment split of a comparison: a start model that knows some vendors, a pool of
vendors it never saw, evaluation on both kinds separately.

The question it serves: an extractor already trained on many receipts meets new vendors; do
the arms learn the new layouts from the reviews, and do they forget the vendors the start
knew? A document's vendor is its gold ``company`` under ``lenient_key`` (the definition of
``kvloop.compare.data.unseen_vendor`` and ``extractor.vendor_memory``).

* **source**: the documents the start model and the pool may come from (the runner gives
  ``train`` minus the selection pages, so calibration pages the selection does not read are
  used too);
* **seen vendors**: the vendors of the start's training receipts. Either the start model is
  given (``start``: its training receipts, read from its card) or they are drawn here: the
  source's vendors in a seeded random order, taken while fewer than ``start_docs`` of their
  source documents are picked; the start is the first ``start_docs`` of those documents (in
  id order), and the other documents of the seen vendors are used by nothing;
* **pool**: source documents of every other vendor (the first ``pool_docs``), so no pool
  document's vendor was in the start's training data;
* **evaluation**: the evaluation documents (not the start's own) split into ``seen-vendor``
  (a seen vendor) and ``new-vendor`` (any other vendor; some of those vendors also have pool
  documents, counted in :attr:`VendorSplit.new_eval_in_pool`).

A document without a vendor cannot be called seen or new: it is left out and counted.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from extractor.document import Document
from extractor.normalize import lenient_key

VENDOR_FIELD = "company"
SEEN, NEW = "seen-vendor", "new-vendor"


def vendor_of(doc: Document, vendor_field: str = VENDOR_FIELD) -> str:
    """The document's vendor key (``""``: no vendor in its gold)."""
    return lenient_key((doc.gold or {}).get(vendor_field))


@dataclass(frozen=True)
class VendorSplit:
    """Start, pool and the two evaluation sets (see the module docstring)."""

    start: list[Document]
    pool: list[Document]
    seen_eval: list[Document]
    new_eval: list[Document]
    seen_vendors: frozenset[str]
    unused: int
    """Source documents of seen vendors beyond the start (trained on by nothing)."""
    no_vendor: int
    """Source and evaluation documents left out because their gold names no vendor."""

    @property
    def new_eval_in_pool(self) -> int:
        """New-vendor evaluation documents whose vendor has pool documents."""
        pooled = {vendor_of(d) for d in self.pool}
        return sum(vendor_of(d) in pooled for d in self.new_eval)

    def counts(self) -> dict[str, int]:
        vendors = (lambda docs: len({vendor_of(d) for d in docs}))
        return {"start": len(self.start), "start_vendors": len(self.seen_vendors),
                "pool": len(self.pool), "pool_vendors": vendors(self.pool),
                SEEN: len(self.seen_eval), NEW: len(self.new_eval),
                "new_eval_vendors": vendors(self.new_eval),
                "new_eval_in_pool": self.new_eval_in_pool, "unused": self.unused,
                "no_vendor": self.no_vendor}

    def describe(self) -> str:
        c = self.counts()
        return (f"vendor-disjoint split: start {c['start']} receipts of {c['start_vendors']} "
                f"vendors; pool {c['pool']} receipts of {c['pool_vendors']} vendors the start "
                f"never saw; evaluation {c[SEEN]} seen-vendor and {c[NEW]} new-vendor receipts "
                f"({c['new_eval_vendors']} vendors, {c['new_eval_in_pool']} receipts of a "
                f"vendor with pool receipts); {c['unused']} seen-vendor receipts unused, "
                f"{c['no_vendor']} without a vendor left out")


def draw_seen_vendors(source: Sequence[Document], start_docs: int, seed: int) -> list[str]:
    """Vendors in a seeded random order, taken while they hold fewer than ``start_docs``
    source documents."""
    vendors = sorted({v for d in source if (v := vendor_of(d))})
    random.Random(seed).shuffle(vendors)
    per_vendor = {v: 0 for v in vendors}
    for d in source:
        if (v := vendor_of(d)) in per_vendor:
            per_vendor[v] += 1
    seen, n = [], 0
    for v in vendors:
        if n >= start_docs:
            break
        seen.append(v)
        n += per_vendor[v]
    return seen


def vendor_split(source: Sequence[Document], evaluation: Sequence[Document], *,
                 start_docs: int, pool_docs: int | None, seed: int,
                 start: Sequence[Document] | None = None) -> VendorSplit:
    """The deployment split (module docstring). ``start``: the given start model's training
    receipts (then ``start_docs`` and ``seed`` are not used)."""
    if start is None:
        seen = frozenset(draw_seen_vendors(source, start_docs, seed))
        start = [d for d in source if vendor_of(d) in seen][:start_docs]
    else:
        seen = frozenset(v for d in start if (v := vendor_of(d)))
    start_ids = {d.id for d in start}
    rest = [d for d in source if d.id not in start_ids]
    pool = [d for d in rest if vendor_of(d) and vendor_of(d) not in seen]
    pool = pool[:pool_docs] if pool_docs is not None else pool
    unused = sum(vendor_of(d) in seen for d in rest)
    ev = [d for d in evaluation if d.id not in start_ids]
    no_vendor = sum(not vendor_of(d) for d in [*rest, *ev])
    return VendorSplit(
        start=list(start), pool=pool,
        seen_eval=[d for d in ev if vendor_of(d) in seen],
        new_eval=[d for d in ev if vendor_of(d) and vendor_of(d) not in seen],
        seen_vendors=seen, unused=unused, no_vendor=no_vendor)
