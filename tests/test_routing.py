"""Routing: thresholds per field, validation rules, the seeded audit sample, queue order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extractor.document import (
    Candidate,
    Document,
    ExtractionResult,
    FieldResult,
    FieldSpec,
    Schema,
    Word,
)
from extractor.model.card import ModelCard
from feedback_ui.checks import amounts_on_page, field_problem
from feedback_ui.routing import (
    RoutingConfig,
    Threshold,
    check_thresholds,
    in_audit_sample,
    most_uncertain_first,
    route,
    thresholds_in_force,
)
from feedback_ui.service import thresholds_of_model

SCHEMA = Schema("t", [FieldSpec("date", "date", auto_accept=0.9),
                      FieldSpec("total", "amount", auto_accept=0.5)])
DOC = Document("d1", [Word("TOTAL", (0, 0, 10, 10)), Word("RM", (12, 0, 20, 10)),
                      Word("12.50", (22, 0, 40, 10)), Word("25/12/2018", (0, 20, 40, 30))],
               100, 100)


def result(date: str, date_conf: float, total: str, total_conf: float,
           doc_id: str = "d1") -> ExtractionResult:
    return ExtractionResult(doc_id, "m1", {
        "date": FieldResult("date", [Candidate(date, date_conf)], date_conf),
        "total": FieldResult("total", [Candidate(total, total_conf)], total_conf)})


def test_fields_at_or_above_their_own_threshold_are_auto_accepted() -> None:
    r = route(result("25/12/2018", 0.9, "12.50", 0.5), SCHEMA, DOC, RoutingConfig(0.0))
    assert r.review_fields == [] and not r.needs_review
    r = route(result("25/12/2018", 0.89, "12.50", 0.99), SCHEMA, DOC, RoutingConfig(0.0))
    assert r.review_fields == ["date"] and r.needs_review and r.min_confidence == 0.89


def test_validation_failures_need_review_even_when_confident() -> None:
    r = route(result("not a date", 0.99, "99.99", 0.99), SCHEMA, DOC, RoutingConfig(0.0))
    assert r.review_fields == ["date", "total"]
    assert "not a date" in r.problems["date"]
    assert r.problems["total"] == "'99.99' is not printed on the page"


def test_missing_field_needs_review() -> None:
    res = ExtractionResult("d1", "m1", {"date": FieldResult("date", [Candidate("1/1/2019", 1.0)],
                                                            1.0)})
    assert route(res, SCHEMA, DOC, RoutingConfig(0.0)).review_fields == ["total"]


def test_field_problem_rules() -> None:
    spec = SCHEMA["total"]
    assert field_problem(None, spec, DOC) is None and field_problem("", spec, DOC) is None
    assert field_problem("RM 12.50", spec, DOC) is None
    assert "not an amount" in field_problem("twelve", spec, DOC)
    assert field_problem("13.00", spec, None) is None  # no page to look at
    assert amounts_on_page(DOC) == {12.5}


def test_audit_sample_is_seeded_and_close_to_its_rate() -> None:
    ids = [f"doc{i}" for i in range(2000)]
    picked = [i for i in ids if in_audit_sample(i, 0.1, seed=7)]
    assert picked == [i for i in ids if in_audit_sample(i, 0.1, seed=7)]
    assert picked != [i for i in ids if in_audit_sample(i, 0.1, seed=8)]
    assert 150 < len(picked) < 250
    assert not any(in_audit_sample(i, 0.0, 0) for i in ids)
    assert all(in_audit_sample(i, 1.0, 0) for i in ids)


def test_only_fully_auto_accepted_documents_are_audited() -> None:
    sure = route(result("25/12/2018", 0.99, "12.50", 0.99), SCHEMA, DOC, RoutingConfig(1.0))
    unsure = route(result("25/12/2018", 0.1, "12.50", 0.99), SCHEMA, DOC, RoutingConfig(1.0))
    assert sure.audit and sure.needs_review and sure.review_fields == []
    assert not unsure.audit


def test_queue_is_most_uncertain_first() -> None:
    routes = [route(result("25/12/2018", c, "12.50", 0.9, f"d{i}"), SCHEMA, DOC)
              for i, c in enumerate([0.7, 0.2, 0.5])]
    assert [r.doc_id for r in most_uncertain_first(routes)] == ["d1", "d2", "d0"]


def test_bad_audit_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="audit_rate"):
        RoutingConfig(audit_rate=1.5)


def test_fitted_thresholds_override_the_schema_and_none_always_reviews() -> None:
    fitted = {"date": 0.6, "total": None}  # total cannot reach the target precision
    r = route(result("25/12/2018", 0.7, "12.50", 1.0), SCHEMA, DOC, RoutingConfig(0.0), fitted)
    assert r.review_fields == ["total"]  # date 0.7 >= fitted 0.6 though < the schema's 0.9
    r = route(result("25/12/2018", 0.59, "12.50", 1.0), SCHEMA, DOC, RoutingConfig(0.0), fitted)
    assert r.review_fields == ["date", "total"]
    # a field the fitting left out keeps the schema's threshold (total: 0.5)
    r = route(result("25/12/2018", 0.6, "12.50", 0.49), SCHEMA, DOC, RoutingConfig(0.0),
              {"date": 0.6})
    assert r.review_fields == ["total"]
    # exactly at the fitted threshold is auto-accepted, as with the schema's
    assert route(result("25/12/2018", 0.6, "12.50", 0.5), SCHEMA, DOC, RoutingConfig(0.0),
                 {"date": 0.6}).review_fields == []


def test_a_document_of_always_reviewed_fields_is_never_auto_accepted_or_audited() -> None:
    r = route(result("25/12/2018", 1.0, "12.50", 1.0), SCHEMA, DOC, RoutingConfig(1.0),
              {"date": None, "total": None})
    assert r.review_fields == ["date", "total"] and not r.audit


def test_thresholds_in_force_say_where_they_come_from() -> None:
    assert thresholds_in_force(SCHEMA, {"total": None}) == [
        Threshold("date", 0.9, "schema"), Threshold("total", None, "fitted")]
    assert [t.source for t in thresholds_in_force(SCHEMA)] == ["schema", "schema"]


@pytest.mark.parametrize("bad", [{"tip": 0.5}, {"date": 1.5}, {"date": -0.1},
                                 {"date": "0.9"}, {"date": True}, {"date": float("nan")}])
def test_malformed_thresholds_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="auto-accept threshold"):
        check_thresholds(bad, SCHEMA)


def _model_dir(tmp_path: Path, **meta: object) -> Path:
    card = ModelCard(SCHEMA).export()  # a real model card, then the entries under test
    (tmp_path / "kvloop.json").write_text(json.dumps({**card, **meta}))
    return tmp_path


def test_fitted_thresholds_are_read_from_the_models_kvloop_json(tmp_path: Path) -> None:
    assert thresholds_of_model(None) is None
    assert thresholds_of_model(_model_dir(tmp_path)) is None  # saved before fitting existed
    fitted = thresholds_of_model(_model_dir(tmp_path, auto_accept={"date": 0.8, "total": None}))
    assert fitted == {"date": 0.8, "total": None}
    with pytest.raises(ValueError, match="kvloop.json.*not in schema"):
        thresholds_of_model(_model_dir(tmp_path, auto_accept={"tip": 0.8}))
    with pytest.raises(ValueError, match="must map field names"):
        thresholds_of_model(_model_dir(tmp_path, auto_accept=[0.8]))
