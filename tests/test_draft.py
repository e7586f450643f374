"""The review form's draft: the rules that turn a box and a pressed button into what is saved."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_service import receipt

from feedback_ui.draft import Draft, FieldDraft, describe, draft_choice
from feedback_ui.routing import RoutingConfig
from feedback_ui.service import FieldChoice, ReviewService
from feedback_ui.store import FeedbackStore


@pytest.fixture
def svc(tmp_path: Path) -> ReviewService:
    service = ReviewService(FeedbackStore(tmp_path / "f.db"), routing=RoutingConfig(0.0))
    pairs = [receipt(1, 0.9), receipt(2, 0.3)]
    service.add([d for d, _ in pairs], [r for _, r in pairs])
    return service


def test_a_pressed_answer_stands_while_the_box_shows_what_it_put_there(
        svc: ReviewService) -> None:
    fv = svc.open("rcpt1", "ann").field("total")
    pick = FieldChoice("pick", pick_index=1)
    assert draft_choice(fv, FieldDraft("1.50", pick)) == pick
    assert draft_choice(fv, FieldDraft("1.55", pick)) == FieldChoice("edit", "1.55")  # typed
    assert draft_choice(fv, FieldDraft(" 50.00 ")) == FieldChoice("accept")
    absent = FieldChoice("not_present")
    assert draft_choice(fv, FieldDraft("", absent)) == absent
    assert draft_choice(fv, FieldDraft("2.00", absent)) == FieldChoice("edit", "2.00")
    reject = FieldChoice("reject")
    assert draft_choice(fv, FieldDraft("50.00", reject)) == reject
    assert draft_choice(fv, FieldDraft("1.50", reject)) == FieldChoice("edit", "1.50")


def test_an_emptied_box_is_an_empty_edit_never_a_clear(svc: ReviewService) -> None:
    fv = svc.open("rcpt1", "ann").field("company")
    assert draft_choice(fv, FieldDraft("")) == FieldChoice("edit", "")
    assert draft_choice(fv, FieldDraft("  ", FieldChoice("accept"))) == FieldChoice("edit", "")


def test_a_field_marked_wrong_needs_a_new_answer(svc: ReviewService) -> None:
    task = svc.open("rcpt2", "ann")
    svc.save_correction(task, {"total": FieldChoice("reject")}, "ann")
    fv = svc.open("rcpt2", "bob").field("total")
    # An untouched box on a field marked wrong reads as an accept, which the service refuses.
    assert draft_choice(fv, FieldDraft("")) == FieldChoice("accept")
    assert draft_choice(fv, FieldDraft("", FieldChoice("reject"))).action == "reject"
    assert draft_choice(fv, FieldDraft("2.50", FieldChoice("pick", pick_index=1))).action == "pick"


def test_a_draft_is_restored_only_onto_the_document_as_it_was(svc: ReviewService) -> None:
    task = svc.open("rcpt1", "ann")
    draft = Draft.of(task)
    assert {n: f.text for n, f in draft.fields.items()} == {
        "company": "KEDAI MAJU", "date": "01/02/2018", "address": "", "total": "50.00"}
    draft.typed("company", "KEDAI MAJU SDN BHD")
    draft.set("total", "1.50", FieldChoice("pick", pick_index=1))
    assert draft.choices(task) == {
        "company": FieldChoice("edit", "KEDAI MAJU SDN BHD"), "date": FieldChoice("accept"),
        "address": FieldChoice("accept"), "total": FieldChoice("pick", pick_index=1)}
    svc.skip(task, "ann")
    assert draft.fits(svc.open("rcpt1", "ann"))  # nothing saved meanwhile
    svc.save_correction(svc.open("rcpt1", "ann"), {}, "ann")
    assert not draft.fits(svc.open("rcpt1", "ann"))  # reviewed since: the draft is stale


def test_describe_says_what_will_be_saved_in_words() -> None:
    assert describe(FieldChoice("not_present")) == "not present"
    assert describe(FieldChoice("pick", pick_index=1)) == "alternative #2"
    assert describe(FieldChoice("edit", "x")) == "your value"
