"""Folders of images and PDFs through real tesseract; bad files become named failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from extractor.loaders.images import find_inputs, load_image_folder
from extractor.ocr import OcrConfig

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
PSM6 = [OcrConfig("psm6", psm=6)]


def _mock_png(path: Path, text: str) -> None:
    if not Path(FONT).is_file():
        pytest.skip(f"{FONT} missing (Debian fonts-dejavu-core)")
    img = Image.new("L", (460, 120), 255)
    ImageDraw.Draw(img).text((20, 40), text, fill=0, font=ImageFont.truetype(FONT, 32))
    img.save(path)


def _mock_pdf(path: Path, pages: list[str]) -> None:
    """A PDF with one line of text per page ("" gives a blank page)."""
    import pymupdf

    pdf = pymupdf.open()
    for text in pages:
        page = pdf.new_page(width=300, height=200)
        if text:
            page.insert_text((30, 100), text, fontsize=24, fontname="cour")
    pdf.save(str(path))
    pdf.close()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("scans")
    _mock_png(d / "receipt.png", "TOTAL 42.50")
    _mock_pdf(d / "letter.pdf", ["INVOICE 777", "", "PAID 13.00"])
    (d / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    (d / "corrupt.pdf").write_bytes(b"%PDF-1.4 garbage without objects")
    (d / "notes.txt").write_text("ignored: not an image")
    return d


@pytest.fixture(scope="module")
def report(folder: Path, tmp_path_factory: pytest.TempPathFactory):
    return load_image_folder(folder, PSM6, workers=2,
                             cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


def test_find_inputs_picks_images_and_pdfs(folder: Path) -> None:
    names = [p.name for p in find_inputs(folder)]
    assert names == ["broken.jpg", "corrupt.pdf", "letter.pdf", "receipt.png"]
    assert find_inputs(folder / "receipt.png") == [folder / "receipt.png"]


def test_images_and_pdf_pages_become_documents(report) -> None:
    docs = {d.id: d for d in report.documents}
    assert sorted(docs) == ["letter-p1", "letter-p3", "receipt"]
    assert "42.50" in docs["receipt"].text and docs["receipt"].page == 0
    assert "777" in docs["letter-p1"].text and docs["letter-p1"].page == 1
    assert "13.00" in docs["letter-p3"].text and docs["letter-p3"].page == 3
    # 300x200 pt rendered at 200 dpi (PyMuPDF rounds the page edge outwards)
    assert abs(docs["letter-p1"].width - 300 * 200 / 72) <= 1
    assert abs(docs["letter-p1"].height - 200 * 200 / 72) <= 1
    # the letter's pages hold their text: read from it, no OCR
    assert {i: d.ocr for i, d in docs.items()} == {
        "letter-p1": "pdf-text", "letter-p3": "pdf-text", "receipt": "tesseract:psm6"}
    assert docs["letter-p1"].text == "INVOICE 777"
    for d in docs.values():
        assert d.source
        assert all(0 <= w.box[0] < w.box[2] <= d.width for w in d.words)


def test_bad_files_are_named_failures(report) -> None:
    reasons = {Path(f.path.split(" (page")[0]).name: f for f in report.failures}
    assert set(reasons) == {"broken.jpg", "corrupt.pdf", "letter.pdf"}
    assert "cannot read image" in reasons["broken.jpg"].reason
    assert "cannot open PDF" in reasons["corrupt.pdf"].reason
    assert "(page 2)" in reasons["letter.pdf"].path
    assert "empty page" in reasons["letter.pdf"].reason
    assert "broken.jpg" in report.summary()


def test_missing_path_is_a_failure(tmp_path: Path) -> None:
    rep = load_image_folder(tmp_path / "nope", PSM6, workers=1, cache_dir=None, progress=False)
    assert not rep.documents and "no such file" in rep.failures[0].reason
