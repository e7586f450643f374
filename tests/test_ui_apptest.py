"""The Streamlit app driven by ``AppTest`` over a real service and a real SQLite store."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest
from test_service import receipt

from extractor.document import Candidate, FieldResult
from feedback_ui.store import FeedbackStore

APP = str(Path(__file__).resolve().parents[1] / "feedback_ui" / "app.py")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FeedbackStore:
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    s = FeedbackStore(url)
    pairs = [receipt(1, 0.9), receipt(2, 0.3), receipt(3, 0.99), receipt(4, 0.6, "32/13/2018")]
    s.add_batch([d for d, _ in pairs], [r for _, r in pairs])
    monkeypatch.setenv("KVLOOP_STORE", url)
    monkeypatch.setenv("KVLOOP_AUDIT_RATE", "0")
    return s


def start(operator: str | None = "ann") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    if operator:
        at.sidebar.text_input(key="operator").input(operator).run()
    assert not at.exception, at.exception
    return at


def shown(label: str) -> str:
    """Markdown as the browser shows it: the app escapes markdown and HTML in values."""
    return html.unescape(re.sub(r"\\(.)", r"\1", label))


def box(at: AppTest, name: str) -> Any:
    """A field's text box, by its label (its widget key changes when the page is drawn anew)."""
    return next(t for t in at.text_input if t.label == f"{name} value")


def status(at: AppTest) -> str:
    """The one-line status under the sidebar: the last confirmation, or blank."""
    return at.main.caption[0].value


def heading(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("#### "))


def click(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, at.exception
    return at


def test_asks_for_operator_then_opens_most_uncertain_document(store: FeedbackStore) -> None:
    at = start(operator=None)
    assert "Enter your operator name" in at.info[0].value
    at.sidebar.text_input(key="operator").input("ann").run()
    assert heading(at).startswith("#### rcpt2")
    assert box(at, "total").value == "50.00"
    assert "Reviewed 0 of 3" in at.sidebar.get("progress")[0].proto.text
    assert store.lease_of("rcpt2").operator == "ann"


def test_pick_alternative_type_value_save_and_next(store: FeedbackStore) -> None:
    at = start()
    at.button(key="pick::total::1").click().run()
    assert box(at, "total").value == "2.50"
    box(at, "company").input("KEDAI MAJU SDN BHD")
    click(at, "Save and next")
    assert shown(status(at)) == "✓ Saved rcpt2."
    assert heading(at).startswith("#### rcpt4")
    # the text boxes (one key per field for every document) now hold rcpt4's values
    assert box(at, "company").value == "KEDAI MAJU"
    assert box(at, "date").value == "32/13/2018"
    assert store.current_values("rcpt2") == {"company": "KEDAI MAJU SDN BHD",
                                             "date": "01/02/2018", "address": None,
                                             "total": "2.50"}
    actions = {h.field: (h.action, h.operator) for h in store.history("rcpt2")}
    assert actions == {"company": ("edit", "ann"), "date": ("accept", "ann"),
                       "address": ("accept", "ann"), "total": ("pick", "ann")}
    assert store.lease_of("rcpt2") is None and store.lease_of("rcpt4").operator == "ann"


def test_not_present_and_accept_all(store: FeedbackStore) -> None:
    at = start()
    at.button(key="absent::date").click().run()
    click(at, "Save and next")
    assert store.current_values("rcpt2")["date"] is None
    click(at, "Accept all and next")  # rcpt4, with its bad date accepted as shown
    assert store.current_values("rcpt4")["date"] == "32/13/2018"
    assert heading(at).startswith("#### rcpt1")


def test_unparsable_value_is_reported_and_nothing_saved(store: FeedbackStore) -> None:
    at = start()
    box(at, "total").input("twelve").run()
    assert "'twelve' is not an amount" in " ".join(m.value for m in at.caption)  # live
    click(at, "Save and next")
    assert "total: 'twelve' is not an amount" in shown(at.error[0].value)
    assert heading(at).startswith("#### rcpt2")  # still on the same document
    assert store.history("rcpt2") == []


def test_lease_conflict_shows_holder_and_queue_moves_on(store: FeedbackStore) -> None:
    store.acquire_lease("rcpt2", "bob")
    at = start()
    assert heading(at).startswith("#### rcpt4")  # bob's document is skipped
    at.sidebar.text_input(key="goto").input("rcpt2").run()
    assert "being reviewed by 'bob'" in shown(at.error[0].value)
    assert heading(at).startswith("#### rcpt4")
    assert store.lease_of("rcpt2").operator == "bob"


def test_undo_last_save_reopens_document(store: FeedbackStore) -> None:
    at = start()
    at.button(key="pick::total::1").click().run()
    click(at, "Save and next")
    assert store.current_values("rcpt2")["total"] == "2.50"
    click(at, "Undo last save")
    assert heading(at).startswith("#### rcpt2")
    assert box(at, "total").value == "50.00"
    assert store.current_values("rcpt2") == {}
    assert all(h.undone for h in store.history("rcpt2"))
    assert store.lease_of("rcpt4") is None  # the document that was open is given back


def test_stats_and_history_pages(store: FeedbackStore) -> None:
    at = start()
    at.button(key="pick::total::1").click().run()
    click(at, "Save and next")
    at.sidebar.radio(key="page").set_value("Stats").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Reviewed today"] == "1" and metrics["Queue progress"] == "1 / 3"
    assert metrics["Agreement with model"] == "75.0%"
    at.sidebar.radio(key="page").set_value("History").run()
    at.text_input(key="hist_doc").input("rcpt2").run()
    table = at.dataframe[0].value
    row = table[table["field"] == "total"].iloc[0]
    assert (row["before"], row["after"], row["action"]) == ("50.00", "2.50", "pick")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from extractor.model.zoo import build_model

    model_dir = tmp_path_factory.mktemp("tiny-model")
    build_model("tiny", seed=0).save_pretrained(model_dir)
    return model_dir


@pytest.mark.slow
def test_upload_page_queues_good_files_and_explains_bad_ones(
        store: FeedbackStore, tiny_model_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from test_service import receipt_png

    monkeypatch.setenv("KVLOOP_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("KVLOOP_UPLOAD_DIR", str(tmp_path / "uploads"))
    at = start()
    at.sidebar.radio(key="page").set_value("Upload").run()
    uploader = at.get("file_uploader")[0]
    uploader.upload("shop.png", receipt_png(["KEDAI MAJU SDN BHD", "TOTAL 8.90"]), "image/png")
    uploader.upload("broken.jpg", b"\xff\xd8 definitely not a jpeg", "image/jpeg")
    at.run()
    click(at, "Run OCR and extraction")
    assert shown(at.success[0].value).startswith("Added 1 page(s) to the queue: shop-")
    assert shown(at.error[0].value).startswith("broken.jpg: cannot read image")
    new = [d for d in store.document_ids() if d.startswith("shop-")]
    assert len(new) == 1 and store.latest_result(new[0]) is not None
    assert not any(d.startswith("broken") for d in store.document_ids())


def test_filters_pick_the_queue_and_progress(store: FeedbackStore) -> None:
    at = start()
    assert heading(at).startswith("#### rcpt2")
    at.sidebar.selectbox(key="f_field").set_value("date").run()
    assert heading(at).startswith("#### rcpt4")  # the only document whose date needs review
    assert store.lease_of("rcpt2") is None  # the document left is given back
    assert "Reviewed 0 of 1" in at.sidebar.get("progress")[0].proto.text
    click(at, "Accept all and next")
    assert "Nothing left to review" in at.success[-1].value
    at.sidebar.selectbox(key="f_field").set_value("").run()
    at.sidebar.checkbox(key="f_below_on").check().run()
    at.sidebar.slider(key="f_below").set_value(0.65).run()
    assert heading(at).startswith("#### rcpt2")  # 0.3 < 0.65; rcpt1 (0.9) is filtered out
    at.sidebar.radio(key="f_status").set_value("reviewed").run()
    assert heading(at).startswith("#### rcpt4")
    assert "confirmed" in " ".join(m.value for m in at.markdown)


def test_queue_page_lists_most_uncertain_first(store: FeedbackStore) -> None:
    at = start()
    at.sidebar.radio(key="page").set_value("Queue").run()
    table = at.dataframe[0].value
    assert list(table["document"]) == ["rcpt2", "rcpt4", "rcpt1"]
    assert list(table["fields to review"])[:2] == ["total", "date, total"]
    assert any("reviewed 0 of 3" in c.value for c in at.main.caption)


def test_skip_gives_the_document_back(store: FeedbackStore) -> None:
    at = start()
    click(at, "Skip")
    assert heading(at).startswith("#### rcpt4")
    assert store.lease_of("rcpt2") is None and store.history("rcpt2") == []
    click(at, "Save and next")
    assert heading(at).startswith("#### rcpt1")  # the skipped rcpt2 does not come back
    click(at, "Save and next")
    # Only the skipped document is left, and the page says so.
    assert "but the 1 document(s) you skipped: Refresh queue" in at.info[-1].value
    click(at, "Refresh queue")
    assert heading(at).startswith("#### rcpt2")


def test_encoded_page_is_handed_to_the_image_component_as_is() -> None:
    """The drawn page is JPEG-encoded once; the component copies those bytes, never re-encodes."""
    import base64
    import io

    from PIL import Image
    from streamlit_image_coordinates import streamlit_image_coordinates

    from feedback_ui.imaging import EncodedImage

    enc = EncodedImage.of(Image.new("RGB", (70, 99), "white"), quality=85)
    assert (enc.width, enc.height) == (70, 99) and enc.to_pil().format == "JPEG"
    buf = io.BytesIO()
    enc.save(buf, format="JPEG", quality=10)  # what the component calls: quality is ignored
    assert buf.getvalue() == enc.data
    with pytest.raises(ValueError):
        enc.save(io.BytesIO(), format="PNG")
    sent: dict[str, str] = {}
    import streamlit_image_coordinates as sic

    orig = sic._component_func
    sic._component_func = lambda **kw: sent.update(kw)
    try:
        streamlit_image_coordinates(enc, key="x", image_format="JPEG", jpeg_quality=85)
    finally:
        sic._component_func = orig
    assert sent["src"] == "data:image/jpeg;base64," + base64.b64encode(enc.data).decode()


LONG_ADDRESSES = ["NO. 2 & 4, JALAN BAYU 4, BANDAR SERI ALAM, 81750 MASAI, JOHOR DARUL TAKZIM",
                  ("LOT 1851-A & 1851-B, JALAN KPB 6, KAWASAN PERINDUSTRIAN BALAKONG, 43300 "
                   "SERI KEMBANGAN, SELANGOR"),
                  "*PRICE $12.50* :smile: [not a link](x) <b>not bold</b> #7"]


def test_alternatives_show_their_whole_values_and_scores(store: FeedbackStore) -> None:
    doc, res = receipt(0, 0.1)  # the least confident: opened first
    res.fields["address"] = FieldResult("address", [
        Candidate(a, s) for a, s in zip(LONG_ADDRESSES, (0.4, 0.35, 0.01))], 0.4)
    store.add_batch([doc], [res])
    at = start()
    assert heading(at).startswith("#### rcpt0")
    for i, (value, score) in enumerate(zip(LONG_ADDRESSES, (0.4, 0.35, 0.01))):
        button = at.button(key=f"pick::address::{i}")
        assert shown(button.label) == f"{i + 1}: {value} ({score:.2f})"
        assert button.proto.wrap  # wrapped over lines, never cut with an ellipsis
    at.button(key="pick::address::2").click().run()
    assert box(at, "address").value == LONG_ADDRESSES[2]  # the raw value


def test_reject_marks_the_field_wrong_and_it_stays_open(store: FeedbackStore) -> None:
    at = start()
    assert heading(at).startswith("#### rcpt2")
    assert at.button(key="reject::total").proto.shortcut == "alt+x"  # total is under edit
    at.button(key="reject::total").click().run()
    assert "**rejected:** 50.00" in shown(" ".join(m.value for m in at.caption))
    assert box(at, "total").value == "50.00"  # shows what is rejected
    click(at, "Save and next")
    assert heading(at).startswith("#### rcpt4")
    actions = {h.field: h.action for h in store.history("rcpt2")}
    assert actions["total"] == "reject" and actions["company"] == "accept"
    assert store.current_values("rcpt2")["total"] is None  # known wrong, right one unknown
    # The document is back in the queue with its rejected field to review.
    at.sidebar.radio(key="page").set_value("Queue").run()
    table = at.dataframe[0].value
    row = table[table["document"] == "rcpt2"].iloc[0]
    assert "total" in row["fields to review"] and not row["reviewed"]
    at.sidebar.radio(key="page").set_value("Review").run()
    at.sidebar.text_input(key="goto").input("rcpt2").run()
    assert heading(at).startswith("#### rcpt2")
    total_head = next(m.value for m in at.markdown if m.value.startswith("**total**"))
    assert "needs review" in total_head and "rejected by ann" in total_head
    # It opens empty, the rejected value struck out of the alternatives and named.
    assert box(at, "total").value == ""
    assert at.button(key="pick::total::0").disabled
    assert shown(at.button(key="pick::total::0").label) == "~~1: 50.00 (0.30)~~"
    assert "**rejected:** ~~50.00~~" in shown(" ".join(m.value for m in at.caption))


def test_reject_pressed_twice_stands_and_accept_or_typing_takes_it_back(
        store: FeedbackStore) -> None:
    at = start()
    at.button(key="reject::total").click().run()
    at.button(key="reject::total").click().run()  # a double click: still marked wrong
    assert "**rejected:** 50.00" in shown(" ".join(m.value for m in at.caption))
    at.button(key="accept::total").click().run()
    assert "rejected" not in " ".join(m.value for m in at.caption)
    at.button(key="reject::total").click().run()
    box(at, "total").input("2.50").run()  # typing the right value replaces it
    assert "will save: **your value**" in " ".join(m.value for m in at.caption)
    click(at, "Save and next")
    assert {h.field: h.action for h in store.history("rcpt2")}["total"] == "edit"


def model_dir_with(tmp_path: Path, auto_accept: dict | None) -> Path:
    from extractor.document import RECEIPT_SCHEMA
    from extractor.model.card import ModelCard

    (tmp_path / "model").mkdir()
    ModelCard(RECEIPT_SCHEMA, auto_accept=dict(auto_accept or {})).save(tmp_path / "model")
    return tmp_path / "model"


@pytest.mark.parametrize(("fitted", "queued", "said"), [
    (None, ["rcpt2", "rcpt4", "rcpt1"], "schema defaults (none fitted with the model): company"),
    ({"total": 0.5}, ["rcpt2", "rcpt4"], ("fitted with the model: company ≥ 0.95 (schema "
                                          "default) · date ≥ 0.95 (schema default) · address "
                                          "≥ 0.95 (schema default) · total ≥ 0.50")),
    ({"date": None}, ["rcpt2", "rcpt4", "rcpt1", "rcpt3"], "date always reviewed"),
])
def test_queue_follows_the_models_fitted_thresholds_and_says_so(
        store: FeedbackStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fitted: dict | None, queued: list[str], said: str) -> None:
    monkeypatch.setenv("KVLOOP_MODEL", str(model_dir_with(tmp_path, fitted)))
    at = start()
    at.sidebar.radio(key="page").set_value("Queue").run()
    assert list(at.dataframe[0].value["document"]) == queued
    assert said in at.main.caption[-1].value
    at.sidebar.radio(key="page").set_value("Stats").run()
    assert said in at.main.caption[-1].value


def test_a_box_edited_as_the_last_document_closes_does_not_crash(store: FeedbackStore) -> None:
    """A text box's change reaches the server with the next click; when that click saved the
    last document, the box's callback finds no document open and must do nothing (and the
    change is in the save)."""
    at = start()
    at.sidebar.selectbox(key="f_field").set_value("date").run()  # one document queued: rcpt4
    assert heading(at).startswith("#### rcpt4")
    box(at, "total").input("4.50")  # sent with the click below
    box(at, "date").input("01/02/2018")
    click(at, "Save and next")
    assert "Nothing left to review" in at.success[-1].value
    assert store.current_values("rcpt4")["total"] == "4.50"




# -- no value is lost or silently changed (drafts outlive the widgets) ------------------------

@pytest.mark.parametrize("other_page", ["History", "Stats", "Queue", "Upload"])
def test_another_page_and_back_keeps_every_value_and_saves_accepts(
        store: FeedbackStore, other_page: str) -> None:
    at = start()
    assert heading(at).startswith("#### rcpt2")
    box(at, "company").input("KEDAI MAJU SDN BHD")  # typed, not yet sent
    at.sidebar.radio(key="page").set_value(other_page).run()
    at.sidebar.radio(key="page").set_value("Review").run()
    assert heading(at).startswith("#### rcpt2")
    assert {k: box(at, k).value for k in ("company", "date", "total")} == {
        "company": "KEDAI MAJU SDN BHD", "date": "01/02/2018", "total": "50.00"}
    assert "will save: **edit**" not in " ".join(c.value for c in at.caption)
    click(at, "Save and next")
    actions = {h.field: (h.action, h.after) for h in store.history("rcpt2")}
    assert actions == {"company": ("edit", "KEDAI MAJU SDN BHD"), "date": ("accept", "01/02/2018"),
                       "address": ("accept", None), "total": ("accept", "50.00")}


def test_a_pick_survives_a_page_switch(store: FeedbackStore) -> None:
    at = start()
    at.button(key="pick::total::1").click().run()
    at.sidebar.radio(key="page").set_value("History").run()
    at.sidebar.radio(key="page").set_value("Review").run()
    assert box(at, "total").value == "2.50"
    assert at.button(key="pick::total::1").proto.type == "primary"  # shown as pressed
    click(at, "Save and next")
    assert {h.field: h.action for h in store.history("rcpt2")}["total"] == "pick"


def test_a_rejected_value_is_never_accepted_by_the_next_plain_save(
        store: FeedbackStore) -> None:
    at = start()
    at.button(key="reject::total").click().run()
    click(at, "Save and next")
    at.sidebar.text_input(key="goto").input("rcpt2").run()
    assert heading(at).startswith("#### rcpt2")
    for label in ("Save and next", "Accept all and next"):
        click(at, label)
        assert heading(at).startswith("#### rcpt2")  # not saved: still open
        assert "total: '50.00' was marked wrong by ann" in shown(at.error[0].value)
    assert [h.action for h in store.history("rcpt2") if h.field == "total"] == ["reject"]
    assert at.button(key="accept::total").disabled
    box(at, "total").input("2.50").run()
    click(at, "Save and next")
    assert store.current_values("rcpt2")["total"] == "2.50"


def test_pick_keys_hold_alt_so_typing_in_a_box_never_presses_them(
        store: FeedbackStore) -> None:
    at = start()  # total is under edit
    keys = [at.button(key=f"pick::total::{i}").proto.shortcut for i in range(2)]
    assert keys == ["alt+1", "alt+2"]
    assert at.button(key="absent::total").proto.shortcut == "alt+n"
    assert at.button(key="accept::total").proto.shortcut == "alt+a"
    assert at.button(key="pick::company::0").proto.shortcut == ""  # not under edit


def test_a_value_too_long_for_its_field_is_refused_with_a_message(
        store: FeedbackStore) -> None:
    at = start()
    box(at, "company").input("K" * 5000).run()
    assert "5000 characters long; field 'company' holds at most 300" in shown(
        " ".join(c.value for c in at.caption))
    click(at, "Save and next")
    assert heading(at).startswith("#### rcpt2")
    assert "5000 characters long" in shown(at.error[0].value)
    assert store.history("rcpt2") == []


def test_an_emptied_box_asks_for_not_present_instead_of_clearing(store: FeedbackStore) -> None:
    at = start()
    box(at, "company").input("").run()
    assert "the box is empty" in " ".join(c.value for c in at.caption)
    click(at, "Save and next")
    assert store.history("rcpt2") == [] and "its box is empty" in shown(at.error[0].value)
    at.button(key="absent::company").click().run()
    at.button(key="absent::company").click().run()  # a double click does not undo it
    assert at.button(key="absent::company").proto.type == "primary"
    click(at, "Save and next")
    assert {h.field: h.action for h in store.history("rcpt2")}["company"] == "not_present"


def test_accept_all_does_not_throw_away_typed_answers(store: FeedbackStore) -> None:
    at = start()
    box(at, "company").input("KEDAI MAJU SDN BHD").run()
    click(at, "Accept all and next")
    assert heading(at).startswith("#### rcpt2") and store.history("rcpt2") == []
    assert "you changed company" in shown(at.error[0].value)


def test_undo_is_offered_only_after_a_save(store: FeedbackStore) -> None:
    at = start()
    assert next(b for b in at.button if b.label == "Undo last save").disabled
    click(at, "Save and next")
    assert not next(b for b in at.button if b.label == "Undo last save").disabled


def test_stats_page_says_which_fields_go_straight_through(
        store: FeedbackStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVLOOP_MODEL", str(model_dir_with(tmp_path, {"total": 0.5})))
    at = start()
    at.sidebar.radio(key="page").set_value("Stats").run()
    assert not at.exception
    table = at.dataframe[-1].value
    assert list(table["field"]) == ["company", "date", "address", "total"]
    assert not table["auto-accepted now"].any()
    assert set(table["status"]) == {"no certified thresholds: run kvloop thresholds fit"}
