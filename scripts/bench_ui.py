"""Benchmark: time from "Save and next" to the next document fully rendered, large receipts.

Fills a fresh SQLite store with the largest SROIE receipts (by image pixels, then words) and
real extraction results from a model (``--model DIR``, or a freshly built tiny random model:
the candidate lists are what matters here, not their quality), then measures

* ``apptest``: Streamlit's AppTest, one "Save and next" click -> script rerun done (server
  side: save, queue, open next, page image decode/crop/draw, JPEG encode);
* ``browser``: ``kvloop review`` on loopback driven by Playwright + Debian's chromium, from
  the click to the next document's heading and page image shown in the browser.

    python scripts/bench_ui.py --docs 8            # both
    python scripts/bench_ui.py --docs 8 --no-browser
    python scripts/bench_ui.py --docs 8 --think 1    # operator pace: 1 s per receipt
    python scripts/bench_ui.py --docs 16 --demo runs/demo   # the demo's receipts and model
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from extractor.document import Document
from extractor.loaders import load_documents
from extractor.loaders.sroie import load_sroie_document, sroie_ids
from feedback_ui.store import FeedbackStore

APP = str(REPO / "feedback_ui" / "app.py")
CHROMIUM = "/usr/bin/chromium"
CHROME_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]


def largest_receipts(root: Path, n: int) -> list[str]:
    def size(doc_id: str) -> int:
        with Image.open(root / "img" / f"{doc_id}.jpg") as im:
            return im.width * im.height
    ids = sroie_ids(root)
    return sorted(ids, key=lambda i: (-size(i), i))[:n]


def demo_documents(demo: Path, n: int) -> list[Document]:
    """The first ``n`` receipts of a ``kvloop demo`` folder (``runs/demo``), their page images
    found in its ``data/img`` wherever the demo was run from."""
    docs = load_documents(demo / "data" / "documents.jsonl").documents[:n]
    return [dataclasses.replace(d, source=str(demo / "data" / "img" / Path(d.source).name))
            if d.source else d for d in docs]


def fill_store(url: str, root: Path, n: int, model: str | None, verbose: bool = True,
               demo: Path | None = None) -> list[str]:
    from extractor.model.predictor import load_predictor
    from extractor.model.zoo import build_model

    if demo is not None:
        model = model or str(demo / "model")
    if model is None:
        model = str(Path(url.removeprefix("sqlite:///")).parent / "tiny-model")
        if not Path(model).is_dir():
            build_model("tiny", seed=0).save_pretrained(model)
    predictor = load_predictor(model)
    docs = (demo_documents(demo, n) if demo is not None
            else [load_sroie_document(root, i) for i in largest_receipts(root, n)])
    results = predictor.predict(docs, k=5)
    FeedbackStore(url).add_batch(docs, results)
    for d in docs if verbose else []:
        print(f"  receipt {d.id}: {d.width}x{d.height} px, {len(d.words)} words", flush=True)
    return [d.id for d in docs]


def summary(name: str, times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return (f"{name}: n={len(ms)} median {statistics.median(ms):.0f} ms, p90 {p90:.0f} ms, "
            f"max {ms[-1]:.0f} ms")


def bench_apptest(url: str, n: int, think_s: float = 0.0) -> list[float]:
    from streamlit.testing.v1 import AppTest

    os.environ.update(KVLOOP_STORE=url, KVLOOP_AUDIT_RATE="0")
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.sidebar.text_input(key="operator").input("bench").run()
    times = []
    for _ in range(n - 1):
        button = next(b for b in at.button if b.label == "Save and next")
        time.sleep(think_s)  # the operator reading the receipt (not timed)
        t0 = time.perf_counter()
        button.click().run()
        times.append(time.perf_counter() - t0)
        assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    return times


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def streamlit_server(cmd: list[str], port: int) -> Iterator[None]:
    """Run ``cmd`` (a Streamlit server on ``port``), wait until it answers, stop it after."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                       timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# Clicks "Save and next" inside the page and watches for the next document with a 2 ms timer,
# timing both with the page's own clock. Playwright's ``expect`` (1.65) re-checks 20, 70, 170,
# 270 and 770 ms after its first look, then every 500 ms: timing with it rounded a click up
# to the next of those steps (a heading drawn at 280 ms counted as 770 ms).
CLICK_AND_WATCH = """([current, oldSrc]) => new Promise((ok, fail) => {
  const button = [...document.querySelectorAll('button')]  // its label ends in the shortcut
      .find(b => b.innerText.includes('Save and next'));
  if (!button) { fail(new Error('no Save and next button')); return; }
  const image = () => {
    const frame = document.querySelector("iframe[title*='image_coordinates']");
    return frame && frame.contentDocument && frame.contentDocument.querySelector('img');
  };
  const t0 = performance.now();
  let headingMs = null, decoding = false;
  button.click();
  const watch = () => {
    const h = document.querySelector('h4');
    if (headingMs === null && h && h.innerText.includes(' · model')
        && !h.innerText.startsWith(current + ' ·')) headingMs = performance.now() - t0;
    const img = image();
    if (headingMs !== null && !decoding && img && img.src !== oldSrc && img.complete) {
      decoding = true;  // pixels ready, not only the tag
      const done = () => ok([headingMs, performance.now() - t0]);
      img.decode().then(done, done);
      return;
    }
    if (performance.now() - t0 > 60000) { fail(new Error('no next document in 60 s')); return; }
    setTimeout(watch, 2);
  };
  watch();
})"""


def bench_browser(url: str, ids: list[str], heading_times: list[float],
                  think_s: float = 0.0) -> list[float]:
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    times: list[float] = []
    server = [sys.executable, "-m", "kvloop.cli", "review", "--store", url, "--port", str(port),
              "--audit-rate", "0"]
    with streamlit_server(server, port), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(base)
        page.get_by_label("Operator name").fill("bench-browser")
        page.get_by_label("Operator name").press("Enter")
        frame = page.frame_locator("iframe[title*='image_coordinates']")
        heading = page.locator("h4")
        expect(heading).to_contain_text(" · model", timeout=60000)
        expect(frame.locator("img")).to_be_visible(timeout=60000)
        img = frame.locator("img")
        for _ in range(len(ids) - 1):
            current = heading.inner_text().split(" · ")[0]
            old_src = img.get_attribute("src") or ""
            time.sleep(think_s)
            heading_ms, shown_ms = page.evaluate(CLICK_AND_WATCH, [current, old_src])
            heading_times.append(heading_ms / 1000)
            times.append(shown_ms / 1000)
            # Let the run finish (its last elements drawn) before the next click.
            page.wait_for_selector("[data-stale='true']", state="detached", timeout=60000)
        browser.close()
    return times


FLOOR_APP = """
import streamlit as st
if "n" not in st.session_state:
    st.session_state.n = 0
def nxt():
    st.session_state.n += 1
st.button("Save and next", on_click=nxt)
st.markdown(f"#### doc{st.session_state.n} · model")
"""


FLOOR_CLICK_AND_WATCH = """(wanted) => new Promise((ok, fail) => {
  const t0 = performance.now();
  [...document.querySelectorAll('button')].find(b => b.innerText.includes('Save and next'))
      .click();
  const watch = () => {
    const h = document.querySelector('h4');
    if (h && h.innerText.includes(wanted)) ok(performance.now() - t0);
    else if (performance.now() - t0 > 60000) fail(new Error('no ' + wanted + ' in 60 s'));
    else setTimeout(watch, 2);
  };
  watch();
})"""


def bench_floor(n: int) -> list[float]:
    """Streamlit's own floor: the same click -> heading path in a two-element app."""
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="kvloop-bench-floor-") as tmp:
        app = Path(tmp) / "floor.py"
        app.write_text(FLOOR_APP, encoding="utf-8")
        server = [sys.executable, "-m", "streamlit", "run", str(app), "--server.address",
                  "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
                  "--browser.gatherUsageStats", "false"]
        with streamlit_server(server, port), sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}")
            heading = page.locator("h4")
            expect(heading).to_contain_text("doc0 ·", timeout=60000)
            for i in range(1, n):
                times.append(page.evaluate(FLOOR_CLICK_AND_WATCH, f"doc{i} ·") / 1000)
            browser.close()
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sroie", default=str(REPO.parent / "shared" / "data" / "sroie"))
    ap.add_argument("--docs", type=int, default=8, help="receipts to go through")
    ap.add_argument("--model", default=None, help="model folder (default: tiny random model)")
    ap.add_argument("--demo", type=Path, default=None,
                    help="a `kvloop demo` output folder (runs/demo): its receipts and model "
                         "instead of the largest SROIE receipts (issue 21's target is on these)")
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--think", type=float, default=0.0,
                    help="seconds the 'operator' waits on each document before clicking "
                         "(not timed; lets the next page's background decode finish)")
    args = ap.parse_args()
    root = Path(args.sroie)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="kvloop-bench-ui-") as tmp:
        what = (f"the first {args.docs} receipts of {args.demo}" if args.demo
                else f"the {args.docs} largest SROIE receipts")
        print(f"filling stores with {what} ...", flush=True)
        url = f"sqlite:///{tmp}/apptest.db"
        ids = fill_store(url, root, args.docs, args.model, demo=args.demo)
        print(summary("apptest save-and-next -> next document rendered (server)",
                      bench_apptest(url, len(ids), args.think)), flush=True)
        if not args.no_browser:
            url2 = f"sqlite:///{tmp}/browser.db"
            fill_store(url2, root, args.docs, args.model, verbose=False, demo=args.demo)
            heading: list[float] = []
            shown = bench_browser(url2, ids, heading, args.think)
            print(summary("browser save-and-next -> next heading shown", heading), flush=True)
            print(summary("browser save-and-next -> next heading + page image shown", shown),
                  flush=True)
            print(summary("browser floor: the same click -> heading, two-element Streamlit app",
                          bench_floor(len(ids))), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at end", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
