"""Reviews in a real SQLite store as evidence: ``kvloop thresholds refit``, its bad inputs, the
audit that sends a field back to review, and routing by the certified policy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from extractor.document import (
    RECEIPT_SCHEMA,
    Candidate,
    Document,
    ExtractionResult,
    FieldResult,
    Word,
)
from extractor.model.card import ModelCard, model_version
from extractor.straight_through import Items
from feedback_ui.audit import acceptance_policy, reviewed_fields, straight_through_status
from feedback_ui.routing import RoutingConfig, route
from feedback_ui.service import FieldChoice, ReviewService
from feedback_ui.store import FeedbackStore
from kvloop.cli import main
from tests.test_straight_through import FIELDS, policy
from training.straight_through import refit_from_store, save_with


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from extractor.model.zoo import build_model

    d = tmp_path_factory.mktemp("m") / "tiny"
    build_model("tiny", seed=0).save_pretrained(d)
    return d


def model_with(tmp_path: Path, base: Path, thresholds: dict[str, float | None],
               calib_items: int = 200) -> tuple[Path, str]:
    st = policy(thresholds)
    st.items = {f: Items([0.999] * calib_items, [True] * calib_items) for f in FIELDS}
    return save_with(base, st, tmp_path / "model")


def receipt(i: int, version: str, conf: float = 0.999) -> tuple[Document, ExtractionResult]:
    words = [Word(f"KEDAI{i}", (10, 10, 80, 30)), Word("01/02/2018", (10, 40, 120, 60)),
             Word("TOTAL", (10, 70, 70, 90)), Word("9.50", (100, 70, 150, 90)),
             Word("1.00", (100, 100, 150, 120))]
    doc = Document(f"r{i}", words, 200, 300)
    res = ExtractionResult(doc.id, version, {
        "company": FieldResult("company", [Candidate(f"KEDAI{i}", conf, [0])], conf),
        "date": FieldResult("date", [Candidate("01/02/2018", conf, [1])], conf),
        "address": FieldResult("address", [], conf),
        "total": FieldResult("total", [Candidate("9.50", conf, [3])], conf)},
        doc_hash=doc.content_hash())
    return doc, res


def review(store: FeedbackStore, version: str, n: int, wrong: dict[str, int],
           start: int = 0) -> None:
    """``n`` documents extracted by ``version`` and reviewed; the first ``wrong[f]`` of them
    have field ``f`` corrected (the model was wrong), every other field is accepted."""
    svc = ReviewService(store, routing=RoutingConfig(0.0))
    pairs = [receipt(i, version) for i in range(start, start + n)]
    svc.add([d for d, _ in pairs], [r for _, r in pairs])
    fixes = {"company": FieldChoice("edit", value="TOKO"), "total": FieldChoice("edit",
             value="1.00"), "date": FieldChoice("edit", value="02/02/2018")}
    for k, (d, _) in enumerate(pairs):
        task = svc.open(d.id, "ann")
        svc.save_correction(task, {f: fixes[f] if k < wrong.get(f, 0) else FieldChoice()
                                   for f in FIELDS}, "ann")


def test_refit_grows_certified_coverage(tmp_path: Path, tiny_base: Path) -> None:
    model, version = model_with(tmp_path, tiny_base, {f: None for f in FIELDS})
    store = FeedbackStore(tmp_path / "f.db")
    review(store, version, 120, {"total": 10})
    rep = refit_from_store(model, store, tmp_path / "v2")
    assert rep.out == tmp_path / "v2" and rep.version == model_version(rep.out)
    certs = rep.straight_through.certificates
    assert {f for f, c in certs.items() if c.certified} == {"company", "date", "address"}
    assert certs["company"].items == 320 and certs["company"].errors == 0
    assert certs["company"].bound <= 0.01
    assert not certs["total"].certified
    assert any(m.startswith("total: stays in review") for m in rep.messages)
    card = ModelCard.load(rep.out)
    st = card.straight_through
    assert st.sources["company"] == {"calibration": 200, "store": 120}
    assert version in st.scores_of and rep.version != version
    assert ModelCard.load(model).straight_through.certificates["company"].threshold is None
    # A refit of the refit reads the same store: each review counts once.
    again = refit_from_store(rep.out, store, tmp_path / "v3")
    assert again.straight_through.sources["company"] == {"calibration": 200, "store": 120}


def test_refit_bad_inputs_never_certify(tmp_path: Path, tiny_base: Path, capsys) -> None:
    model, version = model_with(tmp_path, tiny_base, {f: None for f in FIELDS})
    empty = tmp_path / "empty.db"
    FeedbackStore(empty).close()
    rc = main(["thresholds", "refit", "--store", str(empty), "--model", str(model), "--out",
               str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 1 and "no reviewed field" in err and "nothing written" in err
    assert not (tmp_path / "x").exists()
    other = FeedbackStore(tmp_path / "other.db")
    review(other, "kv.ensemble.v1@another", 5, {})
    rep = refit_from_store(model, other, tmp_path / "y")
    assert rep.straight_through is None
    assert any("another model version (kv.ensemble.v1@another)" in m for m in rep.messages)
    # Too few items: reviews added, still under 299 for 99%: every field stays in review.
    few = FeedbackStore(tmp_path / "few.db")
    review(few, version, 20, {})
    small, _ = model_with(tmp_path / "s", tiny_base, {f: None for f in FIELDS}, calib_items=10)
    rc = main(["thresholds", "refit", "--store", str(tmp_path / "few.db"), "--model",
               str(small), "--out", str(tmp_path / "z")])
    out = capsys.readouterr()
    assert rc == 0 and "in review (too few items: 30" in out.out
    plain = tmp_path / "plain"
    shutil.copytree(tiny_base, plain)
    rc = main(["thresholds", "refit", "--store", str(empty), "--model", str(plain), "--out",
               str(tmp_path / "w")])
    assert rc == 2 and "kvloop thresholds fit" in capsys.readouterr().err


def test_reviews_are_scored_and_judged(tmp_path: Path, tiny_base: Path) -> None:
    model, version = model_with(tmp_path, tiny_base, {f: None for f in FIELDS})
    store = FeedbackStore(tmp_path / "f.db")
    review(store, version, 6, {"company": 2})
    st = ModelCard.load(model).straight_through
    found = reviewed_fields(store, st, RECEIPT_SCHEMA, version)
    assert found.documents == 6 and found.total == 24
    assert found.items["company"].correct == [False, False, True, True, True, True]
    assert found.items["company"].scores == pytest.approx([0.999] * 6, abs=1e-6)


def test_audit_sends_a_field_back_to_review(tmp_path: Path, tiny_base: Path) -> None:
    model, version = model_with(tmp_path, tiny_base, {"company": 0.99, "date": 0.99,
                                                      "address": None, "total": None})
    store = FeedbackStore(tmp_path / "f.db")
    review(store, version, 60, {"company": 6})
    policy_now = acceptance_policy(store, model)
    assert policy_now.revoked == frozenset({"company"})
    status = {s.field: s for s in straight_through_status(store, model)}
    assert not status["company"].in_force and "back in review" in status["company"].note
    assert status["company"].audited == 60 and status["company"].audited_upper < 0.99
    assert status["date"].in_force and status["date"].audited == 60
    assert "always reviewed" in status["total"].note
    doc, res = receipt(999, version)
    r = route(res, RECEIPT_SCHEMA, doc, RoutingConfig(0.0), acceptance=policy_now)
    assert r.review_fields == ["company", "address", "total"]
    svc = ReviewService(store, routing=RoutingConfig(0.0), acceptance=policy_now)
    svc.add([doc], [res])
    assert "company" in {q.doc_id: q for q in svc.queue()}["r999"].review_fields
    from dataclasses import replace

    svc.set_acceptance(replace(policy_now, revoked=frozenset()))
    assert {q.doc_id: q for q in svc.queue()}["r999"].review_fields == ["address", "total"]
    assert route(res, RECEIPT_SCHEMA, None, acceptance=policy_now).review_fields == FIELDS


def test_policy_of_a_model_without_certificates(tmp_path: Path, tiny_base: Path) -> None:
    store = FeedbackStore(tmp_path / "f.db")
    assert acceptance_policy(store, tiny_base) is None
    notes = {s.note for s in straight_through_status(store, tiny_base)}
    assert notes == {"no certified thresholds: run kvloop thresholds fit"}


def test_memory_models_read_the_stores_confirmed_values(tmp_path: Path, tiny_base: Path
                                                        ) -> None:
    st = policy({f: None for f in FIELDS})
    st.uses_memory = True
    model, version = save_with(tiny_base, st, tmp_path / "model")
    store = FeedbackStore(tmp_path / "f.db")
    review(store, version, 3, {})
    pol = acceptance_policy(store, model)
    assert pol.memory is not None and pol.memory.vendors["kedai0"]["company"] == "KEDAI0"
    assert reviewed_fields(store, ModelCard.load(model).straight_through, RECEIPT_SCHEMA,
                           version).total == 12
