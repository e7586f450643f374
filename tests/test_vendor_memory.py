"""Vendor memory: remembered values come first only on the same vendor's pages that spell them."""

from __future__ import annotations

from extractor.document import Candidate, Document, ExtractionResult, FieldResult, Word
from extractor.vendor_memory import SOURCE, VendorMemory, promote


def _doc(doc_id: str, text: str) -> Document:
    words = [Word(t, (10 * i, 0, 10 * i + 8, 10)) for i, t in enumerate(text.split())]
    return Document(doc_id, words, 400, 20)


def _result(doc_id: str, **values: list[str]) -> ExtractionResult:
    fields = {n: FieldResult(n, [Candidate(v, 0.5 - 0.1 * i) for i, v in enumerate(vs)], 0.4)
              for n, vs in values.items()}
    return ExtractionResult(doc_id, "m", fields)


def test_remembered_values_come_first_on_the_vendors_pages() -> None:
    mem = VendorMemory().add_all([{"company": "KEDAI MAJU SDN BHD",
                                   "address": "NO 1 JALAN BESAR", "total": "9.00"}])
    doc = _doc("a", "KEDAI MAJU SDN BHD NO 1 JALAN BESAR TOTAL 9.00")
    res = _result("a", company=["KEDAI MAJU", "KEDAI MAJU SDN BHD"], address=["JALAN BESAR"],
                  total=["1.00"])
    out = mem.apply(doc, res)
    # the model's own candidate is moved up (its words kept), a new one is added otherwise
    assert [c.value for c in out.fields["company"].candidates] == ["KEDAI MAJU SDN BHD",
                                                                    "KEDAI MAJU"]
    assert out.fields["company"].candidates[0].source == "model"
    assert out.fields["address"].value == "NO 1 JALAN BESAR"
    assert out.fields["address"].candidates[0].source == SOURCE
    # the total is not a vendor field: never remembered, whatever the page prints
    assert out.fields["total"].value == "1.00"
    assert out.fields["company"].confidence == res.fields["company"].confidence


def test_other_vendors_and_unprinted_values_are_left_alone() -> None:
    mem = VendorMemory().add_all([{"company": "KEDAI MAJU", "address": "NO 1 JALAN BESAR"}])
    other = _doc("b", "TOKO BARU NO 1 JALAN BESAR")
    res = _result("b", company=["TOKO BARU"], address=["NO 1 JALAN"])
    assert mem.apply(other, res) == res
    moved = _doc("c", "KEDAI MAJU LOT 5 TAMAN")  # same vendor, the old address not printed
    res_c = _result("c", company=["KEDAI"], address=["LOT 5 TAMAN"])
    out = mem.apply(moved, res_c)
    assert out.fields["company"].value == "KEDAI MAJU"
    assert out.fields["address"].value == "LOT 5 TAMAN"


def test_longest_vendor_name_wins_and_later_saves_replace_earlier() -> None:
    mem = VendorMemory().add_all([
        {"company": "ABC", "address": "OLD ROAD"},
        {"company": "ABC SDN BHD", "address": "NEW ROAD"},
        {"company": "abc  sdn bhd", "address": "NEWER ROAD"},  # same vendor (lenient key)
    ])
    doc = _doc("d", "ABC SDN BHD NEWER ROAD OLD ROAD")
    assert mem.vendor_of(doc) == "abcsdnbhd"
    out = mem.apply(doc, _result("d", address=["OLD ROAD"]))
    assert out.fields["address"].value == "NEWER ROAD"
    assert len(mem.vendors) == 2


def test_no_vendor_value_remembers_nothing_and_promote_on_empty_field() -> None:
    mem = VendorMemory().add_all([{"company": None, "address": "X"}, {"company": "  "}])
    assert mem.vendors == {}
    fr = promote(FieldResult("company", [], 0.0), "ABC")
    assert [(c.value, c.score, c.source) for c in fr.candidates] == [("ABC", 0.0, SOURCE)]
