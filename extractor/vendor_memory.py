"""Vendor memory: values operators saved for a vendor, offered again on its next documents.

What commercial extractors do with corrections instead of retraining: remember, per vendor,
the values people confirmed, and when a new document of that vendor arrives, put the
remembered value first if the page actually shows it. No weights change, so it helps only
fields that repeat across a vendor's documents (on receipts: the company name and address;
never the date or the total) and only vendors someone has already reviewed.

A document's vendor is found from its words, not from the model's answer: the remembered
vendor name (the ``vendor_field`` value) must occur in the page's text, compared with
``lenient_key`` (whitespace and case ignored). When several remembered vendors occur, the
longest name wins (``"ABC SDN BHD"`` before ``"ABC"``). A remembered value is put first only
when the page spells it too (so an address the vendor moved away from is not forced onto a
new receipt); it keeps the model's score for that value when the model had it among its
candidates, and otherwise gets the top candidate's score, with the field's confidence
unchanged (a memory hit is not calibrated; the review queue should still see it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from extractor.document import Candidate, Document, ExtractionResult, FieldResult
from extractor.normalize import lenient_key

SOURCE = "vendor-memory"
RECEIPT_VENDOR_FIELDS: tuple[str, ...] = ("company", "address")


def _page_key(doc: Document) -> str:
    return lenient_key(" ".join(w.text for w in doc.words))


@dataclass
class VendorMemory:
    """Per vendor (``lenient_key`` of its ``vendor_field`` value): the last saved value of each
    of ``fields``."""

    vendor_field: str = "company"
    fields: tuple[str, ...] = RECEIPT_VENDOR_FIELDS
    vendors: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, values: Mapping[str, str | None]) -> None:
        """Remember one reviewed document's final values (a later save of a vendor wins)."""
        name = values.get(self.vendor_field)
        key = lenient_key(name)
        if not key:
            return
        kept = {f: v for f in self.fields if (v := values.get(f)) and lenient_key(v)}
        self.vendors.setdefault(key, {}).update(kept)

    def add_all(self, documents: Iterable[Mapping[str, str | None]]) -> VendorMemory:
        for values in documents:
            self.add(values)
        return self

    def vendor_of(self, doc: Document) -> str | None:
        """The remembered vendor whose name the page shows (the longest such name)."""
        page = _page_key(doc)
        hits = [v for v in self.vendors if v and v in page]
        return max(hits, key=len) if hits else None

    def apply(self, doc: Document, result: ExtractionResult) -> ExtractionResult:
        """``result`` with each remembered value of the page's vendor first, where the page
        spells it (see the module docstring)."""
        vendor = self.vendor_of(doc)
        if vendor is None:
            return result
        page = _page_key(doc)
        fields = dict(result.fields)
        for name, value in self.vendors[vendor].items():
            fr = fields.get(name)
            if fr is None or lenient_key(value) not in page:
                continue
            fields[name] = promote(fr, value)
        return replace(result, fields=fields)

    def apply_all(self, docs: Sequence[Document], results: Sequence[ExtractionResult]
                  ) -> list[ExtractionResult]:
        by_id = {d.id: d for d in docs}
        return [self.apply(by_id[r.doc_id], r) if r.doc_id in by_id else r for r in results]


def promote(fr: FieldResult, value: str) -> FieldResult:
    """``fr`` with ``value`` as its first candidate (the model's own candidate for it, moved,
    when it has one; else a new candidate sourced ``vendor-memory``)."""
    key = lenient_key(value)
    same = [c for c in fr.candidates if lenient_key(c.value) == key]
    rest = [c for c in fr.candidates if lenient_key(c.value) != key]
    if same:
        first = same[0]
    else:
        score = fr.candidates[0].score if fr.candidates else 0.0
        first = Candidate(value=value, score=score, source=SOURCE)
    return replace(fr, candidates=[first, *rest])
