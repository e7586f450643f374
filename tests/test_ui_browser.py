"""A real browser (Debian's chromium via Playwright) drives ``kvloop review`` on loopback."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from extractor.document import Candidate, Document, ExtractionResult, FieldResult
from extractor.loaders.sroie import load_sroie_document
from extractor.normalize import parse_amount
from feedback_ui.store import FeedbackStore

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def words_of(doc: Document, value: str) -> list[int]:
    """Indices of the words that spell ``value`` in order (first match)."""
    target = value.split()
    texts = [w.text for w in doc.words]
    for i in range(len(texts) - len(target) + 1):
        if texts[i:i + len(target)] == target:
            return list(range(i, i + len(target)))
    return []


def result_for(doc: Document) -> ExtractionResult:
    """A result whose top total is a wrong amount of the page and whose 2nd is the gold one."""
    gold = doc.gold or {}
    amounts = [i for i, w in enumerate(doc.words) if parse_amount(w.text) is not None]
    total_i = max(words_of(doc, gold["total"]) or amounts[-1:])
    wrong_i = next(i for i in amounts if doc.words[i].text != doc.words[total_i].text)
    company = gold["company"]
    return ExtractionResult(doc.id, "browser-test", doc_hash=doc.content_hash(), fields={
        "company": FieldResult("company", [Candidate(company, 0.7, words_of(doc, company))], 0.7),
        "date": FieldResult("date", [Candidate(gold["date"], 0.99, words_of(doc, gold["date"]))],
                            0.99),
        "address": FieldResult("address", [], 0.99),
        "total": FieldResult("total", [Candidate(doc.words[wrong_i].text, 0.55, [wrong_i]),
                                       Candidate(doc.words[total_i].text, 0.3, [total_i])], 0.55),
    })


@pytest.fixture
def server(sroie_dir: Path, tmp_path: Path) -> Iterator[tuple[str, FeedbackStore, list[Document]]]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (Debian package chromium)")
    pytest.importorskip("playwright")
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    store = FeedbackStore(url)
    docs = [load_sroie_document(sroie_dir, i) for i in ("001", "002")]
    store.add_batch(docs, [result_for(d) for d in docs])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "streamlit.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "kvloop.cli", "review", "--store", url,
                                 "--port", str(port), "--audit-rate", "0"],
                                stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        try:
            for _ in range(120):
                try:
                    with urllib.request.urlopen(f"{base}/_stcore/health", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.5)
            else:
                pytest.fail("kvloop review did not come up: "
                            + (tmp_path / "streamlit.log").read_text())
            yield base, store, docs
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def test_operator_corrects_fields_in_a_real_browser(server, artifacts_dir: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, store, docs = server
    first = min(docs, key=lambda d: result_for(d).fields["total"].confidence)
    res = result_for(first)
    right_total = res.fields["total"].candidates[1].value
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(base)
        page.get_by_label("Operator name").fill("ann")
        page.get_by_label("Operator name").press("Enter")
        expect(page.get_by_text(f"{first.id} · model", exact=False)).to_be_visible(timeout=30000)
        # Put "total" under edit, then pick its second alternative with the number key 2.
        edit_total = page.get_by_role("button", name="Edit").nth(3)
        edit_total.click()
        expect(edit_total).to_be_disabled()
        # The number key is bound once the button shows its key hint ("... (0.30) 2").
        expect(page.get_by_role("button", name=f"2: {right_total} (0.30)")).to_have_text(
            re.compile(r"\(0\.30\)\s*2\s*$"), timeout=15000)
        page.mouse.click(5, 5)  # focus on the page, not in a text box
        page.keyboard.press("2")
        expect(page.get_by_label("total value")).to_have_value(right_total, timeout=15000)
        # Fill "company" by clicking a word box on the page image.
        edit_company = page.get_by_role("button", name="Edit").first
        if edit_company.is_enabled():  # after the pick, focus may already be on company
            edit_company.click()
        expect(edit_company).to_be_disabled()
        frame = page.frame_locator("iframe[title*='image_coordinates']")
        img = frame.locator("img")
        expect(img).to_be_visible(timeout=15000)
        shown = img.bounding_box()
        word = first.words[res.fields["company"].candidates[0].word_indices[0]]
        cx = (word.box[0] + word.box[2]) / 2 * shown["width"] / first.width
        cy = (word.box[1] + word.box[3]) / 2 * shown["height"] / first.height
        img.click(position={"x": cx, "y": cy})
        company = page.get_by_label("company value")
        expect(company).to_have_value(word.text, timeout=15000)
        # Enter in a box moves the keyboard to the next field that needs attention (total).
        company.press("End")
        company.type(" GIFT")
        company.press("Enter")
        expect(page.get_by_label("total value")).to_be_focused(timeout=15000)
        page.screenshot(path=str(artifacts_dir / "review_ui_before_save.png"), full_page=True)
        # Zoom crops the page around the field under edit (total) at the column's width.
        old_src = img.get_attribute("src")
        page.get_by_text("Zoom 2x", exact=True).click()
        expect(img).not_to_have_attribute("src", old_src or "", timeout=15000)
        page.screenshot(path=str(artifacts_dir / "review_ui_zoom2x.png"))
        page.get_by_role("button", name="Save and next").click()
        # The next receipt replaces this one (the "Saved" toast is transient: not waited on).
        expect(page.get_by_text(f"{first.id} · model", exact=False)).to_have_count(
            0, timeout=30000)
        expect(frame.locator("img")).to_be_visible(timeout=15000)  # the next page's image
        page.screenshot(path=str(artifacts_dir / "review_ui_after_save.png"), full_page=True)
        page.get_by_text("Stats", exact=True).click()
        expect(page.get_by_text("Agreement with model")).to_be_visible(timeout=15000)
        expect(page.locator("h4")).to_have_count(0, timeout=15000)  # review page gone
        page.screenshot(path=str(artifacts_dir / "review_ui_stats.png"), full_page=True)
        page.get_by_text("History", exact=True).click()
        doc_box = page.get_by_label("Document id", exact=True)
        doc_box.fill(first.id)
        doc_box.press("Enter")
        expect(page.get_by_test_id("stDataFrame")).to_be_visible(timeout=15000)
        page.wait_for_timeout(1000)  # the grid draws on a canvas after it appears
        page.screenshot(path=str(artifacts_dir / "review_ui_history.png"), full_page=True)
        browser.close()
    assert store.current_values(first.id) == {
        "company": f"{word.text} GIFT", "date": res.fields["date"].value, "address": None,
        "total": right_total}
    actions = {h.field: h.action for h in store.history(first.id)}
    assert actions == {"company": "edit", "date": "accept", "address": "accept", "total": "pick"}
