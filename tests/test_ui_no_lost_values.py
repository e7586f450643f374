"""No operator's value is lost or silently changed: a real browser (Debian's chromium through
Playwright) drives ``kvloop review`` on loopback over SQLite and PostgreSQL, visiting other
pages between actions, and every save is checked in the store's history."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_ui_browser import ARGS, CHROMIUM, result_for, review_server

from extractor.document import Document, ExtractionResult
from extractor.loaders.sroie import load_sroie_document
from feedback_ui.store import FeedbackStore, pgtemp

pytestmark = pytest.mark.slow
OTHER_PAGES = {"Queue": "Queue", "Upload": "Upload images or PDFs", "History": "Document history",
               "Stats": "Stats"}
FIELDS = ("company", "date", "address", "total")
MS = 30000  # a loaded 2-core machine takes seconds per rerun


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    return pgtemp.create_database(request.getfixturevalue("pg_server"),
                                  f"ui_{request.node.name.split('[')[0][-30:].lower()}")


@pytest.fixture
def browser_page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser.new_page(viewport={"width": 1500, "height": 1700})
        browser.close()


def sign_in(page: Any, base: str) -> None:
    page.goto(base)
    page.get_by_label("Operator name").fill("ann")
    page.get_by_label("Operator name").press("Enter")


def settled(page: Any) -> None:
    """Wait until the app's run is over and no element of an earlier run is left on the page,
    as an operator looks at the page before acting: while a run draws the next document, the
    last one's elements are still there (e.g. its "will save: not present" caption), and a
    check on them would pass before the operator's own click is answered."""
    running = page.locator("[data-stale='true'], [data-testid^='stStatusWidgetRunning']")
    for _ in range(MS // 100):
        if not running.count():
            return
        page.wait_for_timeout(100)
    pytest.fail(f"the app was still running {MS} ms later")


def open_doc(page: Any) -> str:
    """The id of the document the Review page shows (waits for it, drawn in full)."""
    from playwright.sync_api import expect

    h4 = page.locator("h4")
    expect(h4).to_contain_text(" · model", timeout=MS)
    settled(page)
    return h4.inner_text().split(" · model")[0].strip()


def box(page: Any, field: str) -> Any:
    """A field's text box, once the page shows one (each document's boxes are new widgets:
    while a rerun replaces them, the old ones are still on the page)."""
    from playwright.sync_api import expect

    loc = page.get_by_label(f"{field} value", exact=True)
    expect(loc).to_have_count(1, timeout=MS)
    return loc


def visit_and_return(page: Any, other: str, doc_id: str) -> None:
    """Another page of the sidebar, then Review again, on the same open document."""
    from playwright.sync_api import expect

    page.locator("[data-testid='stSidebar']").get_by_text(other, exact=True).click()
    expect(page.get_by_role("heading", name=OTHER_PAGES[other])).to_be_visible(timeout=MS)
    expect(page.locator("h4")).to_have_count(0, timeout=MS)
    page.locator("[data-testid='stSidebar']").get_by_text("Review", exact=True).click()
    expect(page.locator("h4")).to_contain_text(f"{doc_id} · model", timeout=MS)
    settled(page)


def save_and_wait(page: Any, doc_id: str) -> None:

    page.get_by_role("button", name="Save and next").click()
    gone = page.locator("h4", has_text=f"{doc_id} · model")
    refused = page.locator("[data-testid='stAlert']", has_text="not saved")
    for _ in range(MS // 250):
        if refused.count():
            pytest.fail(f"{doc_id} not saved: {refused.first.inner_text()}")
        if not gone.count():
            return
        page.wait_for_timeout(250)
    pytest.fail(f"{doc_id}: still open {MS} ms after Save and next")


def last_save(store: FeedbackStore, doc_id: str) -> dict[str, tuple[str, str | None]]:
    rows = store.history(doc_id)
    last = max(h.save_id for h in rows)
    return {h.field: (h.action, h.after) for h in rows if h.save_id == last}


def sroie_docs(sroie_dir: Path, n: int) -> tuple[list[Document], list[ExtractionResult]]:
    ids = sorted(p.stem for p in (sroie_dir / "img").glob("*.jpg"))[:n]
    docs = [load_sroie_document(sroie_dir, i) for i in ids]
    return docs, [result_for(d) for d in docs]


# -- the four breaks an operator found, each on SQLite and PostgreSQL -------------------------

def test_another_page_and_back_keeps_every_value_and_a_save_records_accepts(
        sroie_dir: Path, tmp_path: Path, store_url: str, browser_page: Any,
        artifacts_dir: Path) -> None:
    from playwright.sync_api import expect

    docs, results = sroie_docs(sroie_dir, 2)
    with review_server(tmp_path, docs, results, url=store_url) as (base, store, _):
        page = browser_page
        sign_in(page, base)
        doc_id = open_doc(page)
        shown = {f: box(page, f).input_value() for f in FIELDS}
        assert shown["company"] and shown["date"]
        for other in ("History", "Stats", "Queue"):
            visit_and_return(page, other, doc_id)
            for f in FIELDS:
                expect(box(page, f)).to_have_value(shown[f], timeout=MS)
        expect(page.get_by_text("will save:")).to_have_count(0)
        page.screenshot(path=str(artifacts_dir / "review_ui_after_page_switch.png"))
        save_and_wait(page, doc_id)
    res = next(r for r in results if r.doc_id == doc_id)
    assert last_save(store, doc_id) == {f: ("accept", res.fields[f].value) for f in FIELDS}


def test_a_rejected_value_is_not_accepted_by_the_next_save(
        sroie_dir: Path, tmp_path: Path, store_url: str, browser_page: Any,
        artifacts_dir: Path) -> None:
    from playwright.sync_api import expect

    docs, results = sroie_docs(sroie_dir, 1)
    wrong, right = (c.value for c in results[0].fields["total"].candidates[:2])
    with review_server(tmp_path, docs, results, url=store_url) as (base, store, _):
        page = browser_page
        sign_in(page, base)
        doc_id = open_doc(page)
        page.get_by_role("button", name="Wrong value").nth(3).click()  # total's
        expect(page.get_by_text(f"rejected: {wrong}")).to_be_visible(timeout=MS)
        save_and_wait(page, doc_id)
        assert last_save(store, doc_id)["total"] == ("reject", None)
        # It comes back (a field is open) with total empty and the rejected value struck out.
        page.get_by_role("button", name="Refresh queue").click()
        assert open_doc(page) == doc_id
        expect(box(page, "total")).to_have_value("", timeout=MS)
        struck = page.get_by_role("button", name=re.compile(rf"^1: {re.escape(wrong)}"))
        expect(struck).to_be_disabled()
        page.screenshot(path=str(artifacts_dir / "review_ui_rejected_comes_back.png"))
        page.get_by_role("button", name="Save and next").click()
        expect(page.get_by_text(f"'{wrong}' was marked wrong by ann")).to_be_visible(timeout=MS)
        assert [h.action for h in store.history(doc_id) if h.field == "total"] == ["reject"]
        page.get_by_role("button", name=re.compile(rf"^2: {re.escape(right)}")).click()
        expect(box(page, "total")).to_have_value(right, timeout=MS)
        save_and_wait(page, doc_id)
    assert last_save(store, doc_id)["total"] == ("pick", right)
    assert store.current_values(doc_id)["total"] == right


def test_a_key_pressed_in_a_box_never_replaces_its_value(
        sroie_dir: Path, tmp_path: Path, store_url: str, browser_page: Any) -> None:
    from playwright.sync_api import expect

    docs, results = sroie_docs(sroie_dir, 1)
    right = results[0].fields["total"].candidates[1].value
    with review_server(tmp_path, docs, results, url=store_url) as (base, store, _):
        page = browser_page
        sign_in(page, base)
        doc_id = open_doc(page)
        company, total = box(page, "company"), box(page, "total")
        typed = company.input_value() + " GIFT"
        company.fill(typed)
        company.press("Enter")  # the app moves the keyboard to total's box, nothing selected
        expect(total).to_be_focused(timeout=MS)
        # Alt+2 picks alternative 2 from the box the app focused.
        page.keyboard.press("Alt+2")
        expect(total).to_have_value(right, timeout=MS)
        expect(company).to_be_focused(timeout=MS)  # the keyboard moves on with the answer
        # The operator goes back to total and types: "1" is typing, never a key that
        # replaces the value, and an answer key pressed after typing keeps the typed text.
        total.click()
        expect(page.get_by_text("Click a word to fill total")).to_be_visible(timeout=MS)
        page.keyboard.press("End")
        page.keyboard.press("1")
        expect(total).to_have_value(right + "1")
        page.keyboard.press("Alt+1")
        # The key sent the typed text (total's card now checks it: the amount is not printed
        # on the page) and picked nothing.
        expect(page.get_by_text(f"'{right}1'")).to_be_visible(timeout=MS)
        expect(total).to_have_value(right + "1")
        expect(company).to_have_value(typed)
        total.fill(right)
        total.press("Enter")
        expect(page.get_by_text(f"'{right}1'")).to_have_count(0, timeout=MS)
        save_and_wait(page, doc_id)
    # Typed back to alternative 2's text, the box holds what the pick put there: a pick.
    assert last_save(store, doc_id)["total"] == ("pick", right)
    assert last_save(store, doc_id)["company"] == ("edit", typed)


def test_a_value_longer_than_its_field_allows_is_refused_with_a_message(
        sroie_dir: Path, tmp_path: Path, store_url: str, browser_page: Any) -> None:
    from playwright.sync_api import expect

    docs, results = sroie_docs(sroie_dir, 1)
    with review_server(tmp_path, docs, results, url=store_url) as (base, store, _):
        page = browser_page
        sign_in(page, base)
        doc_id = open_doc(page)
        box(page, "company").fill("K" * 5000)
        box(page, "company").press("Tab")
        expect(page.get_by_text("5000 characters long; field 'company' holds at most 300")
               .first).to_be_visible(timeout=MS)
        page.get_by_role("button", name="Save and next").click()
        expect(page.locator("[data-testid='stAlert']", has_text="not saved")).to_be_visible(
            timeout=MS)
        assert open_doc(page) == doc_id
    assert store.history(doc_id) == []


# -- a scripted session: 10 documents, another page between every two actions ----------------

def test_a_session_with_page_visits_between_every_action_loses_no_value(
        sroie_dir: Path, tmp_path: Path, store_url: str, browser_page: Any) -> None:
    """Random answers (typed company, picked total, address not present, total marked wrong),
    each followed by a visit to a random other page; each save is compared with what the
    operator did. A document whose total was marked wrong comes back; it is then answered by
    picking the right total, and every other field must keep what was saved."""
    from playwright.sync_api import expect

    rng = random.Random(7)
    docs, results = sroie_docs(sroie_dir, 10)
    res = {r.doc_id: r for r in results}
    saved: dict[str, dict[str, str | None]] = {}
    with review_server(tmp_path, docs, results, url=store_url) as (base, store, _):
        page = browser_page
        sign_in(page, base)
        for _ in range(20):
            done = page.get_by_text("Nothing left to review", exact=False)
            expect(page.locator("h4").or_(done)).to_be_visible(timeout=MS)
            if done.count():
                break
            doc_id = open_doc(page)
            r = res[doc_id]
            wrong, right = (c.value for c in r.fields["total"].candidates[:2])
            again = doc_id in saved
            expected = {f: ("accept", (saved[doc_id] if again else
                                        {k: v.value for k, v in r.fields.items()})[f])
                        for f in FIELDS}
            actions = (["pick_total"] if again else
                       rng.sample(["type_company", "pick_total", "absent_address",
                                   "reject_total"], k=rng.randint(1, 3)))
            for action in actions:
                if action == "type_company":
                    value = f"{r.fields['company'].value} BRANCH {rng.randint(1, 99)}"
                    box(page, "company").fill(value)
                    box(page, "company").press("Tab")
                    expect(page.get_by_text("will save: your value")).to_be_visible(timeout=MS)
                    expected["company"] = ("edit", value)
                elif action == "pick_total":
                    page.get_by_role("button", name=re.compile(rf"^2: {re.escape(right)}")
                                     ).click()
                    expect(box(page, "total")).to_have_value(right, timeout=MS)
                    expected["total"] = ("pick", right)
                elif action == "absent_address":
                    page.get_by_role("button", name="Not present").nth(2).click()
                    expect(page.get_by_text("will save: not present")).to_be_visible(timeout=MS)
                    expected["address"] = ("not_present", None)
                else:
                    page.get_by_role("button", name="Wrong value").nth(3).click()
                    expect(page.get_by_text(f"rejected: {wrong}")).to_be_visible(timeout=MS)
                    expected["total"] = ("reject", None)
                visit_and_return(page, rng.choice(list(OTHER_PAGES)), doc_id)
            save_and_wait(page, doc_id)
            assert last_save(store, doc_id) == expected, doc_id
            saved[doc_id] = {f: a[1] for f, a in expected.items()}
            if expected["total"][0] == "reject":
                saved[doc_id]["total"] = None
        else:
            pytest.fail("the queue never emptied")
    assert set(saved) == {d.id for d in docs}
    for doc_id, values in saved.items():
        assert store.current_values(doc_id) == values, doc_id
