"""A real browser (Debian's chromium via Playwright) drives ``kvloop review`` on loopback."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def review_server(tmp_path: Path, docs: list[Document], results: list[ExtractionResult],
                  args: tuple[str, ...] = (), env: dict[str, str] | None = None,
                  url: str | None = None
                  ) -> Iterator[tuple[str, FeedbackStore, subprocess.Popen[bytes]]]:
    """``kvloop review`` (with ``args``, in ``env``) on a free loopback port over a fresh store
    (SQLite in ``tmp_path`` unless ``url`` names another) holding ``results``: its address,
    the store and the server process."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (Debian package chromium)")
    pytest.importorskip("playwright")
    url = url or f"sqlite:///{tmp_path / 'feedback.db'}"
    store = FeedbackStore(url)
    store.add_batch(docs, results)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "streamlit.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "kvloop.cli", "review", "--store", url,
                                 "--port", str(port), "--audit-rate", "0", *args],
                                stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ) if env is None else env)
        try:
            # A deadline, not a count: on a loaded machine the server takes minutes to import.
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"{base}/_stcore/health", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.5)
            else:
                pytest.fail("kvloop review did not come up: "
                            + (tmp_path / "streamlit.log").read_text())
            yield base, store, proc
        except BaseException:
            # The app shows operators no error details: the server's log has them.
            print("kvloop review log:\n" + (tmp_path / "streamlit.log").read_text()[-20000:])
            raise
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:  # a loaded machine: do not hide the test's error
                proc.kill()
                proc.wait(timeout=60)


@pytest.fixture
def server(sroie_dir: Path, tmp_path: Path) -> Iterator[tuple[str, FeedbackStore, list[Document]]]:
    docs = [load_sroie_document(sroie_dir, i) for i in ("001", "002")]
    with review_server(tmp_path, docs, [result_for(d) for d in docs]) as (base, store, _):
        yield base, store, docs


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
        # The key is bound once the button shows its key hint ("... (0.30) Alt 2").
        expect(page.get_by_role("button", name=f"2: {right_total} (0.30)")).to_have_text(
            re.compile(r"\(0\.30\)\s*Alt\s*\+\s*2\s*$"), timeout=15000)
        page.mouse.click(5, 5)  # focus on the page, not in a text box
        page.keyboard.press("Alt+2")
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


def long_alternatives_result(doc: Document) -> ExtractionResult:
    """Five long address alternatives (k-best spans around the gold one), and a company
    alternative that markdown would mangle if the app did not escape it."""
    gold = (doc.gold or {})["address"]
    parts = gold.split(", ")
    addresses = [gold, ", ".join(parts[:-1]), ", ".join(parts[1:]), f"{gold} TEL 07-3588888",
                 ", ".join(parts[:2])]
    res = result_for(doc)
    res.fields["address"] = FieldResult("address", [
        Candidate(a, round(0.4 - 0.07 * i, 2)) for i, a in enumerate(addresses)], 0.4)
    company = res.fields["company"]
    company.candidates.append(Candidate("*MR* D.I.Y. $1.50 :smile: [JOHOR](x) <b>SDN</b> #2", 0.1))
    return res


# A label cut short shows fewer characters than it holds: some box on the way from the text to
# the button is narrower (or shorter) than its content, or the text is set to end in "…".
CLIPPED_JS = """b => {
  const out = [];
  for (let el = b.querySelector('p') || b; el && el !== b.parentElement; el = el.parentElement) {
    const cs = getComputedStyle(el);
    if (el.scrollWidth > el.clientWidth + 1 && cs.overflowX !== 'visible') out.push('width');
    if (el.scrollHeight > el.clientHeight + 1 && cs.overflowY !== 'visible') out.push('height');
    if (cs.textOverflow === 'ellipsis' && cs.whiteSpace === 'nowrap') out.push('ellipsis');
  }
  return out;
}"""


def test_alternatives_are_readable_and_reject_by_key_at_1500_px(
        sroie_dir: Path, tmp_path: Path, artifacts_dir: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    doc = load_sroie_document(sroie_dir, "002")  # the longest address of the sample
    res = long_alternatives_result(doc)
    addresses = res.fields["address"].candidates
    with review_server(tmp_path, [doc], [res]) as (base, store, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        # Tall enough for every field card: Streamlit scrolls inside the page, so a "full page"
        # screenshot is only the viewport.
        page = browser.new_page(viewport={"width": 1500, "height": 1700})
        page.goto(base)
        page.get_by_label("Operator name").fill("ann")
        page.get_by_label("Operator name").press("Enter")
        expect(page.get_by_text(f"{doc.id} · model", exact=False)).to_be_visible(timeout=30000)
        # Operators get no developer menu.
        expect(page.get_by_test_id("stAppDeployButton")).to_have_count(0)
        expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
        expect(page.get_by_test_id("stMainMenu")).to_have_count(0)
        # Put address under edit: its number keys are bound once the hints show.
        edit_address = page.get_by_role("button", name="Edit").nth(2)
        edit_address.click()
        expect(edit_address).to_be_disabled()
        last = addresses[-1]
        expect(page.get_by_role("button", name=f"5: {last.value} ({last.score:.2f})")
               ).to_have_text(re.compile(r"\s*Alt\s*\+\s*5\s*$"), timeout=15000)
        page.wait_for_timeout(500)  # let the layout settle before measuring
        page.screenshot(path=str(artifacts_dir / "review_ui_alternatives_1500px.png"),
                        full_page=True)
        shown = [("address", i, c) for i, c in enumerate(addresses)]
        shown.append(("company", 1, res.fields["company"].candidates[1]))
        for name, i, c in shown:
            label = f"{i + 1}: {c.value} ({c.score:.2f})"  # as typed: markdown left alone
            button = page.get_by_role("button", name=label, exact=False)
            expect(button).to_have_count(1)
            assert label in " ".join(button.inner_text().split())
            assert button.evaluate(CLIPPED_JS) == [], label
            # Inside its field's card (the text box's block), so inside the window too.
            card = page.get_by_label(f"{name} value").locator(
                "xpath=ancestor::div[@data-testid='stVerticalBlock'][1]").bounding_box()
            box = button.bounding_box()
            assert card["x"] <= box["x"] and box["x"] + box["width"] <= card["x"] + card[
                "width"] + 1 <= 1500, label
        # Alt+X marks the value of the field under edit wrong; the card says so; Save stores it.
        page.mouse.click(5, 5)  # focus on the page, not in a text box
        page.keyboard.press("Alt+x")
        expect(page.get_by_text(f"rejected: {res.fields['address'].value}")).to_be_visible(
            timeout=15000)
        page.screenshot(path=str(artifacts_dir / "review_ui_rejected.png"), full_page=True)
        page.get_by_role("button", name="Save and next").click()
        expect(page.get_by_text("Nothing left to review", exact=False)).to_be_visible(
            timeout=30000)
        browser.close()
        actions = {h.field: h.action for h in store.history(doc.id)}
    assert actions["address"] == "reject"
