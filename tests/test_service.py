"""The review service over a real SQLite store, real Documents and a real tiny model."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from extractor.document import (
    Candidate,
    Document,
    ExtractionResult,
    FieldResult,
    FieldSpec,
    Schema,
    Word,
)
from feedback_ui.ingest import Uploader
from feedback_ui.routing import RoutingConfig
from feedback_ui.service import (
    FieldChoice,
    InvalidValueError,
    QueueFilter,
    ReviewService,
)
from feedback_ui.store import FeedbackStore, LeaseHeldError, StaleValueError

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def receipt(i: int, total_conf: float, date: str = "01/02/2018") -> tuple[Document, ExtractionResult]:
    words = [Word("KEDAI", (10, 10, 80, 30)), Word("MAJU", (90, 10, 150, 30)),
             Word(date, (10, 40, 120, 60)), Word("TOTAL", (10, 70, 70, 90)),
             Word(f"{i}.50", (100, 70, 150, 90)), Word("CASH", (10, 100, 60, 120)),
             Word("50.00", (100, 100, 150, 120))]
    doc = Document(id=f"rcpt{i}", words=words, width=200, height=300)
    res = ExtractionResult(doc.id, "m1", {
        "company": FieldResult("company", [Candidate("KEDAI MAJU", 0.99, [0, 1])], 0.99),
        "date": FieldResult("date", [Candidate(date, 0.99, [2])], 0.99),
        "address": FieldResult("address", [], 0.99),
        "total": FieldResult("total", [Candidate("50.00", total_conf, [6]),
                                       Candidate(f"{i}.50", 0.2, [4])], total_conf),
    }, doc_hash=doc.content_hash())
    return doc, res


@pytest.fixture
def svc(tmp_path: Path) -> ReviewService:
    service = ReviewService(FeedbackStore(tmp_path / "f.db"), routing=RoutingConfig(0.0))
    pairs = [receipt(1, 0.9), receipt(2, 0.3), receipt(3, 0.99), receipt(4, 0.6, "32/13/2018")]
    service.add([d for d, _ in pairs], [r for _, r in pairs])
    return service


def test_queue_most_uncertain_first_with_filters_and_progress(svc: ReviewService) -> None:
    assert [q.doc_id for q in svc.queue()] == ["rcpt2", "rcpt4", "rcpt1"]  # rcpt3 auto
    assert [q.doc_id for q in svc.queue(QueueFilter(confidence_below=0.5))] == ["rcpt2"]
    assert [q.doc_id for q in svc.queue(QueueFilter(field="date"))] == ["rcpt4"]
    assert svc.queue(QueueFilter(model_version="m2")) == []
    assert svc.progress().total == 3 and svc.progress().done == 0
    task = svc.open("rcpt2", "ann")
    svc.accept_all(task, "ann")
    assert [q.doc_id for q in svc.queue()] == ["rcpt4", "rcpt1"]
    assert [q.doc_id for q in svc.queue(QueueFilter(status="reviewed"))] == ["rcpt2"]
    assert (svc.progress().done, svc.progress().total) == (1, 3)


def test_field_states_and_candidates(svc: ReviewService) -> None:
    task = svc.open("rcpt4", "ann")
    states = {f.name: f.state for f in task.fields}
    assert states == {"company": "auto_accepted", "date": "failed_validation",
                      "address": "auto_accepted", "total": "needs_review"}
    assert "not a date" in task.field("date").problem
    assert task.field("total").word_indices == [6]
    assert [c.value for c in svc.candidates_for("rcpt4", "total")] == ["50.00", "4.50"]
    svc.save_correction(task, {"date": FieldChoice("edit", "31/12/2018")}, "ann")
    again = svc.open("rcpt4", "ann")
    assert again.field("date").state == "confirmed" and again.field("date").value == "31/12/2018"
    assert again.field("date").reviewed_by == "ann"


def test_save_pick_edit_not_present_lands_exactly_in_store(svc: ReviewService) -> None:
    task = svc.open("rcpt1", "ann")
    svc.save_correction(task, {"total": FieldChoice("pick", pick_index=1),
                               "company": FieldChoice("edit", "  KEDAI   MAJU SDN "),
                               "date": FieldChoice("not_present")}, "ann")
    assert svc.store.current_values("rcpt1") == {
        "company": "KEDAI MAJU SDN", "date": None, "address": None, "total": "1.50"}
    hist = {h.field: (h.action, h.before, h.after) for h in svc.history("rcpt1")}
    assert hist["total"] == ("pick", "50.00", "1.50")
    assert hist["date"] == ("not_present", "01/02/2018", None)
    assert hist["address"] == ("accept", None, None)
    assert svc.store.lease_of("rcpt1") is None  # save and next releases the document


def test_reject_sends_the_document_back_to_the_queue(svc: ReviewService) -> None:
    task = svc.open("rcpt1", "ann")
    svc.save_correction(task, {"total": FieldChoice("reject")}, "ann")
    cur = svc.store.current("rcpt1")["total"]
    assert (cur.value, cur.action, cur.operator) == (None, "reject", "ann")
    hist = {h.field: (h.action, h.before, h.after, h.shown_value) for h in svc.history("rcpt1")}
    assert hist["total"] == ("reject", "50.00", None, "50.00")
    assert "rcpt1" not in svc.store.reviewed_doc_ids()
    assert "rcpt1" in [q.doc_id for q in svc.queue()]  # someone else can finish it
    bob = svc.open("rcpt1", "bob")
    svc.save_correction(bob, {"total": FieldChoice("edit", "1.50")}, "bob")
    assert "rcpt1" not in [q.doc_id for q in svc.queue()]
    [fb] = svc.store.iter_feedback()
    total = fb.fields["total"]
    assert (total.final_value, total.final_span, total.operator) == ("1.50", [4], "bob")
    assert [(r.value, r.explicit) for r in total.rejected] == [("50.00", True)]


def test_nothing_shown_cannot_be_rejected(svc: ReviewService) -> None:
    task = svc.open("rcpt1", "ann")
    with pytest.raises(ValueError, match="no value is shown, so none can be marked wrong"):
        svc.save_correction(task, {"address": FieldChoice("reject")}, "ann")  # no candidate
    assert svc.history("rcpt1") == []


def test_final_spans_for_accept_pick_and_edit(svc: ReviewService) -> None:
    task = svc.open("rcpt1", "ann")
    save = svc.save_correction(task, {"total": FieldChoice("pick", pick_index=1),
                                      "company": FieldChoice("edit", "MAJU")}, "ann")
    assert save.seconds >= 0
    task = svc.open("rcpt4", "ann")
    svc.save_correction(task, {"total": FieldChoice("edit", "4.5"),  # printed as 4.50
                               "date": FieldChoice("edit", "31/12/2018")}, "ann")  # not printed
    spans = {fb.document.id: {k: f.final_span for k, f in fb.fields.items()}
             for fb in svc.store.iter_feedback()}
    assert spans["rcpt1"] == {"company": [1], "date": [2], "address": None, "total": [4]}
    assert spans["rcpt4"] == {"company": [0, 1], "date": None, "address": None, "total": [4]}


def test_an_emptied_box_saves_nothing_and_clear_is_explicit(svc: ReviewService) -> None:
    task = svc.open("rcpt1", "ann")
    with pytest.raises(InvalidValueError, match="company: its box is empty"):
        svc.save_correction(task, {"company": FieldChoice("edit", "   ")}, "ann")
    assert svc.history("rcpt1") == []
    svc.save_correction(task, {"company": FieldChoice("clear")}, "ann")
    hist = {h.field: (h.action, h.after) for h in svc.history("rcpt1")}
    assert hist["company"] == ("clear", None)


def test_a_value_longer_than_its_field_allows_is_refused_by_the_service(
        svc: ReviewService) -> None:
    task = svc.open("rcpt1", "ann")
    spec = task.field("company").spec
    with pytest.raises(InvalidValueError, match=f"company: 5000 characters long; field "
                       f"'company' holds at most {spec.max_chars}"):
        svc.save_correction(task, {"company": FieldChoice("edit", "K" * 5000)}, "ann")
    with pytest.raises(InvalidValueError, match="control or invisible characters: U\\+202E"):
        svc.save_correction(task, {"company": FieldChoice("edit", "KEDAI \u202eMAJU")}, "ann")
    assert svc.history("rcpt1") == []
    assert "holds at most" in svc.check(task, "company", "K" * 5000)
    svc.save_correction(task, {"company": FieldChoice("edit", "K" * spec.max_chars)}, "ann")
    assert svc.store.current_values("rcpt1")["company"] == "K" * spec.max_chars


def test_a_rejected_value_opens_empty_and_is_never_accepted(svc: ReviewService) -> None:
    task = svc.open("rcpt2", "ann")
    svc.save_correction(task, {"total": FieldChoice("reject")}, "ann")
    again = svc.open("rcpt2", "bob")
    total = again.field("total")
    assert total.value is None and total.rejected and total.rejected_value == "50.00"
    assert total.state == "needs_review" and total.reviewed_by == "ann"
    # Neither a plain save nor "accept all" turns the rejected value into an accept.
    for save in (lambda: svc.save_correction(again, {}, "bob"),
                 lambda: svc.accept_all(again, "bob")):
        with pytest.raises(InvalidValueError, match="total: '50.00' was marked wrong by ann"):
            save()
    assert [h.action for h in svc.history("rcpt2") if h.field == "total"] == ["reject"]
    # Marked wrong again: recorded against the same value, still open.
    svc.save_correction(again, {"total": FieldChoice("reject")}, "bob")
    hist = [(h.action, h.shown_value) for h in svc.history("rcpt2") if h.field == "total"]
    assert hist == [("reject", "50.00"), ("reject", "50.00")]
    third = svc.open("rcpt2", "cy")
    svc.save_correction(third, {"total": FieldChoice("pick", pick_index=1)}, "cy")
    assert svc.store.current_values("rcpt2")["total"] == "2.50"


def test_check_flags_typed_values_live(svc: ReviewService) -> None:
    task = svc.open("rcpt1", "ann")
    assert svc.check(task, "total", "1.50") is None
    assert svc.check(task, "total", "7.77") == "'7.77' is not printed on the page"
    assert "not a date" in svc.check(task, "date", "someday")


def test_unparsable_typed_value_saves_nothing(svc: ReviewService) -> None:
    task = svc.open("rcpt1", "ann")
    with pytest.raises(InvalidValueError) as e:
        svc.save_correction(task, {"total": FieldChoice("edit", "12,5O"),
                                   "date": FieldChoice("edit", "yesterday")}, "ann")
    assert set(e.value.problems) == {"total", "date"} and "not an amount" in str(e.value)
    assert svc.history("rcpt1") == []


def test_lease_conflict_between_operators(svc: ReviewService) -> None:
    svc.open("rcpt2", "ann")
    with pytest.raises(LeaseHeldError, match="ann"):
        svc.open("rcpt2", "bob")
    assert svc.next_document("bob").doc_id == "rcpt4"  # skips the document ann holds
    assert [q.leased_by for q in svc.queue(operator="bob")][:1] == ["another operator"]


def test_expired_lease_is_taken_over_and_stale_save_rejected(svc: ReviewService) -> None:
    store = svc.store
    now = store.clock()
    old_task = svc.open("rcpt2", "ann")
    store.clock = lambda: now + timedelta(hours=1)  # ann walked away
    bob_task = svc.open("rcpt2", "bob")
    svc.save_correction(bob_task, {"total": FieldChoice("edit", "2.50")}, "bob", release=False)
    store.release_lease("rcpt2", "bob")
    svc.open("rcpt2", "ann")  # ann comes back and takes the lease again ...
    with pytest.raises(StaleValueError, match="total"):  # ... but her form is stale
        svc.save_correction(old_task, {"total": FieldChoice("edit", "9.99")}, "ann")
    assert store.current_values("rcpt2")["total"] == "2.50"


def test_undo_reopens_with_previous_values(svc: ReviewService) -> None:
    task = svc.open("rcpt1", "ann")
    svc.save_correction(task, {"total": FieldChoice("pick", pick_index=1)}, "ann")
    reopened = svc.undo_last("ann")
    assert reopened.doc_id == "rcpt1" and reopened.field("total").value == "50.00"
    assert reopened.field("total").state == "needs_review"
    assert svc.store.current_values("rcpt1") == {}


def test_stats(svc: ReviewService) -> None:
    for doc_id in ("rcpt1", "rcpt2"):
        task = svc.open(doc_id, "ann")
        svc.save_correction(task, {"total": FieldChoice("pick", pick_index=1)}, "ann")
    s = svc.stats()
    assert s.store.docs_reviewed_since == 2 and s.store.corrections_per_field == {"total": 2}
    assert s.store.agreement_per_field["company"] == 1.0 and s.store.agreement == 0.75
    assert (s.queue_done, s.queue_total) == (2, 3)


def test_schema_comes_from_the_model_folder(tmp_path: Path) -> None:
    from extractor.document import RECEIPT_SCHEMA, FieldSpec, Schema
    from extractor.model.card import ModelCard
    from feedback_ui.service import schema_of_model

    assert schema_of_model(None) is RECEIPT_SCHEMA
    forms = Schema("forms", [FieldSpec("invoice_no", auto_accept=0.5)])
    ModelCard(forms).save(tmp_path)
    assert schema_of_model(tmp_path) == forms
    with pytest.raises(ValueError, match="missing: no such model folder"):
        schema_of_model(tmp_path / "missing")


# -- uploads: real tesseract and a real (tiny, random) model ----------------------------------

@pytest.fixture(scope="module")
def uploader(tmp_path_factory: pytest.TempPathFactory) -> Uploader:
    from extractor.model.predictor import load_predictor
    from extractor.model.zoo import build_model

    model_dir = tmp_path_factory.mktemp("model")
    build_model("tiny", seed=0).save_pretrained(model_dir)
    return Uploader(load_predictor(model_dir), tmp_path_factory.mktemp("uploads"),
                    ocr_cache=None)


def receipt_png(lines: list[str]) -> bytes:
    img = Image.new("L", (700, 90 + 60 * len(lines)), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, 36)
    for i, line in enumerate(lines):
        draw.text((40, 40 + 60 * i), line, fill=0, font=font)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.slow
def test_upload_runs_ocr_and_extraction_into_the_queue(svc: ReviewService,
                                                      uploader: Uploader) -> None:
    good = receipt_png(["KEDAI MAJU SDN BHD", "DATE 12/03/2018", "TOTAL 8.90"])
    blank = receipt_png([])
    report = uploader.ingest(svc, [("shop.png", good), ("blank.png", blank),
                                   ("junk.jpg", b"not an image at all"),
                                   ("notes.txt", b"hello"), ("empty.pdf", b"")])
    assert len(report.added) == 1 and report.added[0].startswith("shop-")
    reasons = dict(report.failures)
    assert "no words" in reasons["blank.png"]
    assert "cannot read image" in reasons["junk.jpg"]
    assert "unsupported file type .txt" in reasons["notes.txt"]
    assert reasons["empty.pdf"] == "the file is empty"
    doc = svc.store.get_document(report.added[0])
    assert "TOTAL" in doc.text and Path(doc.source).is_file()
    _, result = svc.store.latest_result(doc.id)
    assert result.model_version == uploader.predictor.version
    assert set(result.fields) == set(svc.schema.field_names)
    assert len(svc.store.document_ids()) == 5  # the 4 receipts + the one good upload
    again = uploader.ingest(svc, [("shop.png", good)])
    assert again.added == [] and again.skipped == report.added
    # The same page under another name reads to the same words: it is that document.
    renamed = uploader.ingest(svc, [("scan-0001.png", good)])
    assert renamed.added == [] and renamed.failures == []
    assert len(renamed.skipped) == 1 and renamed.skipped[0].endswith(
        f"(the same page as {report.added[0]})")
    assert len(svc.store.document_ids()) == 5


def test_rejecting_an_auto_accepted_field_sends_the_document_back(tmp_path: Path) -> None:
    """Routing had accepted every field; the operator (an audit) rejects one: it is queued
    again with that field to review, and leaves the queue once someone fixes it."""
    store = FeedbackStore(tmp_path / "f.db")
    words = [Word(t, (10 * i, 0, 10 * i + 8, 10)) for i, t in enumerate(["TOTAL", "9.00"])]
    doc = Document("auto1", words, 200, 20)
    res = ExtractionResult("auto1", "m@1", {
        "total": FieldResult("total", [Candidate("9.00", 0.999, [1])], 0.999)})
    schema = Schema("t", [FieldSpec("total", "amount", auto_accept=0.5)])
    svc = ReviewService(store, schema, routing=RoutingConfig(audit_rate=0.0))
    svc.add([doc], [res])
    assert [q.doc_id for q in svc.queue()] == []  # auto-accepted, not audited
    task = svc.open("auto1", "ann")
    svc.save_correction(task, {"total": FieldChoice("reject")}, "ann")
    queued = svc.queue()
    assert [(q.doc_id, q.review_fields) for q in queued] == [("auto1", ["total"])]
    assert svc.progress().total == 1 and svc.progress().done == 0
    task = svc.open("auto1", "bob")
    svc.save_correction(task, {"total": FieldChoice("edit", "9.00")}, "bob")
    assert svc.queue() == [] and svc.progress().done == 1
