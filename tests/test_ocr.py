"""Real tesseract on small rendered images: words, boxes, variants, cache, batch errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from extractor import ocr
from extractor.document import Document
from extractor.ocr import (
    OcrCache,
    OcrConfig,
    OcrJob,
    estimate_skew,
    ocr_batch,
    ocr_document,
    ocr_image,
    ocr_variants,
    otsu_threshold,
    variants_by_name,
)
from extractor.ocr import engines as ocr_engines
from kvloop.cli import main as cli_main

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
LINES = ["KVLOOP RECEIPT 2024", "INVOICE 12345", "TOTAL 60.30"]
PSM6 = OcrConfig("psm6", psm=6)


def _mock_page(lines: list[str] = LINES, size: int = 30) -> Image.Image:
    """A clean page with known text, one line per entry."""
    if not Path(FONT).is_file():
        pytest.skip(f"{FONT} missing (Debian fonts-dejavu-core)")
    font = ImageFont.truetype(FONT, size)
    img = Image.new("L", (560, 60 + len(lines) * int(size * 1.8)), 255)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((30, 30 + i * int(size * 1.8)), line, fill=0, font=font)
    return img


@pytest.fixture(scope="module")
def page() -> Image.Image:
    return _mock_page()


@pytest.fixture(scope="module")
def page_words(page: Image.Image) -> list:
    return ocr_image(page, PSM6)


def test_known_words_with_boxes_inside_page(page: Image.Image, page_words: list) -> None:
    texts = [w.text for w in page_words]
    for expected in ("KVLOOP", "RECEIPT", "INVOICE", "12345", "TOTAL", "60.30"):
        assert expected in texts
    for w in page_words:
        x0, y0, x1, y1 = w.box
        assert 0 <= x0 < x1 <= page.width and 0 <= y0 < y1 <= page.height
        assert 0.0 <= w.confidence <= 1.0 and w.text.strip()
    by_text = {w.text: w for w in page_words}
    # one line index per printed line, increasing down the page
    assert by_text["INVOICE"].line == by_text["12345"].line
    assert by_text["KVLOOP"].line < by_text["INVOICE"].line < by_text["TOTAL"].line
    assert by_text["KVLOOP"].box[1] < by_text["TOTAL"].box[1]


def test_upscaled_boxes_are_in_original_coordinates(page: Image.Image, page_words: list) -> None:
    up = ocr_image(page, OcrConfig("x2", psm=6, upscale=2.0))
    ref = {w.text: w.box for w in page_words}
    matched = [(w.box, ref[w.text]) for w in up if w.text in ref]
    assert len(matched) >= 5
    for box, base in matched:
        assert max(abs(a - b) for a, b in zip(box, base)) <= 4, (box, base)


def test_deskew_estimates_rotation_and_maps_boxes_back() -> None:
    straight = _mock_page()
    tilted = straight.rotate(3.0, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    assert estimate_skew(tilted) == pytest.approx(-3.0, abs=0.4)
    words = ocr_image(tilted, OcrConfig("deskew", psm=6, deskew=True))
    assert {"INVOICE", "TOTAL", "60.30"} <= {w.text for w in words}
    for w in words:
        assert 0 <= w.box[0] < w.box[2] <= tilted.width and 0 <= w.box[1] < w.box[3] <= tilted.height
    # rotated +3 deg (counter-clockwise): words further right sit higher on the page
    by_text = {w.text: w.box for w in words}
    assert by_text["60.30"][1] < by_text["TOTAL"][1]


def test_otsu_and_binarize() -> None:
    a = np.concatenate([np.full(500, 40), np.full(500, 210)]).astype(np.uint8).reshape(10, 100)
    assert 40 <= otsu_threshold(a) < 210
    for method in ("otsu", "adaptive"):
        out = ocr.binarize(_mock_page(), method)  # type: ignore[arg-type]
        assert set(np.unique(np.asarray(out))) <= {0, 255}


def test_variants_and_config_validation(page: Image.Image) -> None:
    configs = [PSM6, OcrConfig("psm4_otsu", psm=4, binarize="otsu"), OcrConfig("conf", psm=6,
                                                                              min_confidence=0.99)]
    out = ocr_variants(page, configs)
    assert list(out) == ["psm6", "psm4_otsu", "conf"]
    assert "TOTAL" in {w.text for w in out["psm4_otsu"]}
    assert all(w.confidence >= 0.99 for w in out["conf"])
    with pytest.raises(ValueError, match="psm"):
        OcrConfig("bad", psm=20)
    with pytest.raises(ValueError, match="binarize"):
        OcrConfig("bad", binarize="sauvola")  # type: ignore[arg-type]
    assert [c.name for c in variants_by_name("psm6,psm4")] == ["psm6", "psm4"]
    with pytest.raises(ValueError, match="unknown OCR variant"):
        variants_by_name("psm6,nope")


def test_ocr_document_words_and_variants(page: Image.Image, tmp_path: Path) -> None:
    doc = ocr_document(page, "p1", [PSM6, OcrConfig("psm4", psm=4)], cache_dir=tmp_path)
    assert isinstance(doc, Document)
    assert (doc.width, doc.height) == page.size
    assert doc.ocr == "tesseract:psm6" and list(doc.variants) == ["psm4"]
    assert "60.30" in doc.text
    assert Document.from_dict(json.loads(json.dumps(doc.export()))).words == doc.words


def test_cache_hit_skips_tesseract(page: Image.Image, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "page.png"
    page.save(path)
    cache = tmp_path / "cache"
    first = ocr_batch([OcrJob("p", str(path))], [PSM6], workers=1, cache_dir=cache,
                      progress=False)
    assert first[0].error is None and len(list(cache.rglob("*.json"))) == 1

    def no_tesseract(*args: object, **kwargs: object) -> None:
        raise AssertionError("tesseract ran although the result was cached")

    # what cached_ocr calls for a tesseract pass
    monkeypatch.setattr(ocr_engines.TesseractEngine, "read", no_tesseract)
    again = ocr_batch([OcrJob("p", str(path))], [PSM6], workers=1, cache_dir=cache,
                      progress=False)
    assert again[0].words == first[0].words
    # another config is a different entry: a miss, which now reaches the patched tesseract
    with pytest.raises(AssertionError, match="tesseract ran"):
        ocr.cached_ocr(page, OcrConfig("psm4", psm=4), OcrCache(cache))


def test_cache_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVLOOP_CACHE", str(tmp_path))
    assert ocr.default_cache_dir() == tmp_path / "ocr"


def test_batch_in_process_pool_collects_errors(page: Image.Image, tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    page.save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a png")
    jobs = [OcrJob("good", str(good)), OcrJob("bad", str(bad))]
    outs = ocr_batch(jobs, [PSM6], workers=2, cache_dir=None, progress=False)
    assert [o.job.doc_id for o in outs] == ["good", "bad"]
    assert outs[0].error is None and "TOTAL" in {w.text for w in outs[0].words["psm6"]}
    assert outs[1].error is not None and "cannot read image" in outs[1].error


def test_cli_ocr_writes_jsonl_and_reports_failures(page: Image.Image, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "in" / "r1.png"
    img.parent.mkdir()
    page.save(img)
    out = tmp_path / "docs.jsonl"
    code = cli_main(["ocr", str(img.parent), str(tmp_path / "missing"), "--out", str(out),
                     "--variants", "psm6,psm4", "--workers", "1", "--no-cache"])
    assert code == 0
    docs = [Document.from_dict(json.loads(line)) for line in out.read_text().splitlines()]
    assert [d.id for d in docs] == ["r1"] and list(docs[0].variants) == ["psm4"]
    assert "missing" in capsys.readouterr().err
