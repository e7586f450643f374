"""The report: self-contained HTML (checked in headless Chromium), JSON with every number, MD."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from eval.compare import compare_all
from eval.evaluate import evaluate_results
from eval.gallery import build_gallery
from eval.report import ReportInput, render_html, run_key, write_report
from extractor.document import (
    RECEIPT_SCHEMA,
    Candidate,
    Document,
    ExtractionResult,
    FieldResult,
    Word,
)

CHROMIUM = "/usr/bin/chromium"
FIELDS = RECEIPT_SCHEMA.field_names


def _mock_page(tmp: Path, i: int) -> tuple[Document, list[str]]:
    """A drawn receipt image plus its words, gold values and gold tags."""
    lines = [["KEDAI", f"MAJU{i}"], ["12,", "JALAN", "BESAR"], ["DATE:", f"0{i % 9 + 1}/03/2018"],
             ["TOTAL", f"{10 + i}.50"], ["CASH", "50.00"]]
    tags = [["B-COMPANY", "I-COMPANY"], ["B-ADDRESS", "I-ADDRESS", "I-ADDRESS"],
            ["O", "B-DATE"], ["O", "B-TOTAL"], ["O", "O"]]
    img = Image.new("L", (300, 220), 255)
    draw = ImageDraw.Draw(img)
    words = []
    for ln, line in enumerate(lines):
        x = 20
        for t in line:
            w = 9 * len(t)
            box = (x, 20 + 38 * ln, x + w, 36 + 38 * ln)
            draw.text((x, box[1]), t, fill=0)
            words.append(Word(t, box, 1.0, ln))
            x += w + 10
    path = tmp / f"r{i}.png"
    img.save(path)
    gold: dict[str, str | None] = {"company": f"KEDAI MAJU{i}", "address": "12, JALAN BESAR",
                                   "date": f"0{i % 9 + 1}/03/2018", "total": f"{10 + i}.50"}
    doc = Document(f"r{i:02d}", words, 300, 220, source=str(path), gold=gold)
    return doc, [t for line in tags for t in line]


def _result(doc: Document, model: str, skill: int) -> ExtractionResult:
    """Model ``skill`` 0 misreads the total as the cash line on every third receipt."""
    wrong = skill == 0 and int(doc.id[1:]) % 3 == 0
    gold = {k: v or "" for k, v in (doc.gold or {}).items()}
    f = {"company": FieldResult("company", [Candidate(gold["company"], .9, [0, 1])], .92),
         "address": FieldResult("address", [Candidate(gold["address"], .8, [2, 3, 4])], .85),
         "date": FieldResult("date", [Candidate(gold["date"], .9, [6])], .97),
         "total": FieldResult("total", ([Candidate("50.00", .5, [10]),
                                         Candidate(gold["total"], .4, [8])] if wrong else
                                        [Candidate(gold["total"], .9, [8])]),
                              .7 if wrong else .99)}
    return ExtractionResult(doc.id, model, f)


def _report_input(tmp: Path) -> ReportInput:
    pages = [_mock_page(tmp, i) for i in range(9)]
    docs = [d for d, _ in pages]
    tags = {d.id: t for d, t in pages}
    runs = [evaluate_results(docs, [_result(d, m, s) for d in docs], RECEIPT_SCHEMA, model=m,
                             data="mock/dev", gold_tags=tags)
            for m, s in (("model-a", 0), ("model-b", 1))]
    gal = {run_key(r): build_gallery(r.outcomes, {d.id: d for d in docs}, tags) for r in runs}
    return ReportInput(runs, FIELDS, compare_all(runs, FIELDS, n_boot=200), gal,
                       {"title": "kvloop evaluation: mock/dev", "split": "dev",
                        "command": "pytest"})


def test_html_is_self_contained(tmp_path: Path) -> None:
    page = render_html(_report_input(tmp_path))
    assert "<script" not in page
    # every src/href is inline data: no CDN, no network
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(r.startswith("data:") for r in refs)
    assert "model-a" in page and "model-b" in page and "mock/dev" in page
    assert "Differences between runs" in page and "Error gallery" in page


def test_json_and_markdown(tmp_path: Path) -> None:
    paths = write_report(_report_input(tmp_path), str(tmp_path / "out"))
    data = json.loads(Path(paths["json"]).read_text())
    a, b = data["runs"]
    assert a["model"] == "model-a"
    # 3 of 9 totals wrong for model-a: 33 tp, 3 fp, 3 fn -> F1 = 33/36
    assert a["metrics"]["strict"]["overall"]["f1"] == pytest.approx(33 / 36)
    assert b["headline"]["strict F1"] == 1.0
    assert a["metrics"]["savings"]["overall"]["curve"]        # the curve's points are there
    diff = data["comparisons"][0]["metrics"]["strict_f1/total"]
    assert diff["diff"] == pytest.approx(1 - 6 / 9)
    md = Path(paths["md"]).read_text()
    assert "| model-a | provided | 9 |" in md and "model-b − model-a" in md


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path: Path, artifacts_dir: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    paths = write_report(_report_input(tmp_path), str(tmp_path / "out"))
    network: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: network.append(r.url)
                    if not r.url.startswith(("file:", "data:")) else None)
            page.goto(Path(paths["html"]).as_uri())
            rows = page.locator("table.headline tbody tr")
            assert rows.count() == 2
            assert "strict F1" in page.locator("table.headline thead").inner_text()
            assert "model-a" in rows.nth(0).inner_text()
            top = page.locator(".plots.top figure img")
            assert top.count() == 3
            widths = top.evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
            assert all(w > 200 for w in widths)
            # the three headline plots are visible on the first screen
            for i in range(3):
                box = top.nth(i).bounding_box()
                assert box is not None and box["y"] + box["height"] <= 1000
            gallery = page.locator(".gallery .card img")
            assert gallery.count() >= 3
            page.screenshot(path=str(artifacts_dir / "eval_report.png"))
            page.screenshot(path=str(artifacts_dir / "eval_report_full.png"), full_page=True)
        finally:
            browser.close()
    assert network == []
