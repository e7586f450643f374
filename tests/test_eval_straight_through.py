"""``kvloop eval``'s straight-through section: coverage at a precision, the certified
thresholds' coverage and realised precision, minutes saved, and the report."""

from __future__ import annotations

import pytest

from eval.evaluate import evaluate_results
from eval.report import ReportInput, render_html, straight_through_headline
from eval.straight_through import Effort, straight_through_metrics
from extractor.document import (
    RECEIPT_SCHEMA,
    Candidate,
    Document,
    ExtractionResult,
    FieldResult,
    Word,
)
from tests.test_straight_through import FIELDS, policy


def data(n: int = 20) -> tuple[list[Document], list[ExtractionResult]]:
    """``n`` pages; every field right at confidence 0.999 except the total of the first 5
    (wrong, confidence 0.6)."""
    docs, results = [], []
    for i in range(n):
        gold = {"company": "KEDAI", "date": "01/02/2018", "address": None, "total": "9.50"}
        docs.append(Document(f"d{i}", [Word("KEDAI", (0, 0, 10, 10))], 100, 100, gold=gold))
        bad = i < 5
        conf = 0.6 if bad else 0.999
        results.append(ExtractionResult(f"d{i}", "v", {
            "company": FieldResult("company", [Candidate("KEDAI", .999)], .999),
            "date": FieldResult("date", [Candidate("01/02/2018", .999)], .999),
            "address": FieldResult("address", [], .999),
            "total": FieldResult("total", [Candidate("1.00" if bad else "9.50", conf)], conf)}))
    return docs, results


def test_coverage_certified_precision_and_minutes() -> None:
    docs, results = data()
    st = policy({"company": 0.99, "date": 0.99, "address": None, "total": 0.5})
    m = straight_through_metrics(docs, results, RECEIPT_SCHEMA, st, Effort(2.83, 2.82))
    assert m["n_docs"] == 20
    total = m["fields"]["total"]
    assert total["targets"]["0.99"]["coverage"] == pytest.approx(15 / 20)  # oracle
    assert total["certified"] == {"threshold": 0.5, "accepted": 20, "coverage": 1.0,
                                  "precision": 0.75}
    assert m["fields"]["address"]["certified"]["accepted"] == 0
    over = m["overall"]["certified"]
    assert over["accepted"] == 60 and over["precision"] == pytest.approx(55 / 60)
    assert over["documents_untouched"] == 0  # address is never accepted
    assert m["minutes_per_100"] == pytest.approx(60 * 2.83 / 20 * 100 / 60)
    every = policy({f: 0.5 for f in FIELDS})
    m2 = straight_through_metrics(docs, results, RECEIPT_SCHEMA, every, Effort(2.83, 2.82))
    assert m2["overall"]["certified"]["documents_untouched"] == 20
    assert m2["minutes_per_100"] == pytest.approx((80 * 2.83 + 20 * 2.82) / 20 * 100 / 60)
    assert "minutes_per_100" not in straight_through_metrics(docs, results, RECEIPT_SCHEMA, st)


def test_evaluate_and_report_show_both_readings() -> None:
    docs, results = data()
    st = policy({"company": 0.99, "date": 0.99, "address": None, "total": 0.5})
    run = evaluate_results(docs, results, RECEIPT_SCHEMA, model="v", data="t", acceptance=st,
                           effort=Effort(2.83, 2.82))
    assert run.metrics["savings"]["fields"]["total"]["n"] == 20  # the confidence reading stays
    assert run.metrics["straight_through"]["overall"]["certified"]["accepted"] == 60
    head = straight_through_headline(run.metrics["straight_through"])
    assert head["certified auto-accept"] == pytest.approx(60 / 80)
    page = render_html(ReportInput([run], FIELDS))
    assert "Straight-through processing" in page and "realised precision" in page
    assert "P(correct)" in page
    plain = evaluate_results(docs, results, RECEIPT_SCHEMA, model="v", data="t")
    assert plain.metrics["straight_through"] is None
    assert "Straight-through processing" not in render_html(ReportInput([plain], FIELDS))
