"""A corpus of what scanners, fax servers, phones and billing systems produce, made by the tests.

``write_formats(folder)`` writes every file (no binaries in git): multi-page TIFFs (LZW
grayscale, and a G4 fax), 16-bit PNG and 32-bit float / integer TIFF text pages, 1-bit,
palette, RGBA (transparent paper), CMYK and EXIF-rotated JPEGs, an animated GIF, born-digital,
scanned, mixed and OCR-layered PDFs, and files in formats kvloop cannot decode. It returns
each file's ``Expect`` (``tests/bad_inputs.py``): the documents it must give, or the phrase
its one failure record must hold, plus (``KINDS``) where each document's words must come from
and (``NOTES``) what a page's record must say.
"""

from __future__ import annotations

import io
import random
import string
from pathlib import Path

import numpy as np
from bad_inputs import LINES, Expect, text_page
from PIL import Image

from extractor.document import TEXT_LAYER_OCR

TESSERACT = "tesseract:psm6"
PAGES = [LINES[:2], LINES[2:4], LINES[4:]]


def _tiff_pages(path: Path, frames: list[Image.Image], **kw: object) -> None:
    frames[0].save(path, save_all=True, append_images=frames[1:], **kw)


def _gray(depth_values: tuple[float, float], dtype: str) -> Image.Image:
    """``text_page()`` with paper and ink at ``depth_values`` in a wider pixel type."""
    page = np.asarray(text_page(LINES[4:])) / 255.0  # 1 paper, 0 ink
    paper, ink = depth_values
    return Image.fromarray((ink + page * (paper - ink)).astype(dtype))


def _pdf(pages: list[dict[str, object]]) -> bytes:
    """A PDF of 360 x 200 pt pages. Each page: ``text`` lines drawn with a text layer,
    ``image`` lines drawn as a scanned picture (no text), ``hidden``: an invisible text
    layer (render mode 3, an OCR layer) of these words over the picture."""
    from extractor.ocr import import_pymupdf

    pymupdf = import_pymupdf()
    pdf = pymupdf.open()
    for spec in pages:
        page = pdf.new_page(width=360, height=200)
        for i, line in enumerate(spec.get("text", [])):  # type: ignore[union-attr]
            page.insert_text((20, 40 + 30 * i), line, fontsize=18, fontname="cour")
        if "image" in spec:
            png = io.BytesIO()
            text_page(spec["image"], size=(720, 400)).save(png, "PNG")  # type: ignore[arg-type]
            page.insert_image(page.rect, stream=png.getvalue())
        for i, line in enumerate(spec.get("hidden", [])):  # type: ignore[union-attr]
            page.insert_text((20, 40 + 30 * i), line, fontsize=14, render_mode=3)
    data = pdf.tobytes()
    pdf.close()
    return data


def garbage_words(n: int, seed: int = 0) -> list[str]:
    """Lines of what a failed OCR writes: letters, digits and marks in no language."""
    rng = random.Random(seed)
    marks = string.ascii_letters + string.digits + "|;:~^'`,.-_"
    return [" ".join("".join(rng.choice(marks) for _ in range(rng.randint(2, 7)))
                     for _ in range(5)) for _ in range(n)]


HEIC = (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"  # an ISO-BMFF ftyp box, HEIF brand
        b"\x00\x00\x00\x0cmeta\x00\x00\x00\x00")
SVG = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="360" '
       b'height="200"><text x="20" y="40">TOTAL 42.50</text></svg>\n')

KINDS: dict[str, str] = {}
NOTES: dict[str, str] = {}


def write_formats(folder: Path) -> list[Expect]:
    """The corpus under ``folder``; every file's expected outcome (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    _tiff_pages(folder / "scanner.tif", [text_page(p) for p in PAGES], compression="tiff_lzw")
    _tiff_pages(folder / "fax.tif", [text_page(p).convert("1") for p in PAGES[:2]],
                compression="group4")
    _gray((52000, 9000), "uint16").save(folder / "gray16.png")
    _gray((0.92, 0.08), "float32").save(folder / "float32.tif")
    _gray((3_000_000, 100_000), "int32").save(folder / "int32.tif")
    text_page().convert("1").save(folder / "bilevel.png")
    text_page().convert("P").save(folder / "palette.png")
    rgba = Image.new("RGBA", (720, 330), (0, 0, 0, 0))  # transparent paper, black underneath
    rgba.putalpha(Image.eval(text_page(), lambda v: 255 - v))  # ink opaque, paper see-through
    rgba.save(folder / "rgba.png")
    text_page().convert("CMYK").save(folder / "cmyk.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: a viewer turns it 90 degrees clockwise
    text_page().transpose(Image.Transpose.ROTATE_90).convert("RGB").save(
        folder / "exif-rotated.jpg", quality=90, exif=exif)
    frames = [text_page(LINES[:3]), text_page(LINES[3:])]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:],
                   duration=500, loop=0)
    (folder / "born-digital.pdf").write_bytes(_pdf([{"text": p} for p in PAGES[:2]]))
    (folder / "scanned.pdf").write_bytes(_pdf([{"image": p} for p in PAGES[:2]]))
    (folder / "mixed.pdf").write_bytes(_pdf([{"text": PAGES[0]}, {"image": PAGES[1]}]))
    (folder / "garbage-ocr-layer.pdf").write_bytes(
        _pdf([{"image": LINES[:4], "hidden": garbage_words(4)}]))
    (folder / "good-ocr-layer.pdf").write_bytes(
        _pdf([{"image": LINES[:4], "hidden": LINES[:4]}]))
    (folder / "iphone.heic").write_bytes(HEIC)
    (folder / "drawing.svg").write_bytes(SVG)
    (folder / "drawing-named.png").write_bytes(SVG)

    KINDS.update({i: TESSERACT for i in (
        "scanner-p1", "scanner-p2", "scanner-p3", "fax-p1", "fax-p2", "gray16", "float32",
        "int32", "bilevel", "palette", "rgba", "cmyk", "exif-rotated", "animated",
        "scanned-p1", "scanned-p2", "mixed-p2", "garbage-ocr-layer-p1")})
    KINDS.update({i: TEXT_LAYER_OCR for i in (
        "born-digital-p1", "born-digital-p2", "mixed-p1", "good-ocr-layer-p1")})
    NOTES["animated"] = "animated GIF of 2 frames: only the first frame is read"
    return [
        Expect("scanner.tif", "3-page TIFF, LZW", ("scanner-p1", "scanner-p2", "scanner-p3")),
        Expect("fax.tif", "2-page 1-bit TIFF, G4 (fax)", ("fax-p1", "fax-p2")),
        Expect("gray16.png", "16-bit grayscale PNG", ("gray16",)),
        Expect("float32.tif", "32-bit float TIFF", ("float32",)),
        Expect("int32.tif", "32-bit integer TIFF", ("int32",)),
        Expect("bilevel.png", "1-bit PNG", ("bilevel",)),
        Expect("palette.png", "palette PNG", ("palette",)),
        Expect("rgba.png", "RGBA, transparent paper", ("rgba",)),
        Expect("cmyk.jpg", "CMYK JPEG", ("cmyk",)),
        Expect("exif-rotated.jpg", "JPEG stored sideways, EXIF orientation 6", ("exif-rotated",)),
        Expect("animated.gif", "animated GIF (2 frames)", ("animated",)),
        Expect("born-digital.pdf", "2-page PDF with a text layer",
               ("born-digital-p1", "born-digital-p2")),
        Expect("scanned.pdf", "2-page PDF of images", ("scanned-p1", "scanned-p2")),
        Expect("mixed.pdf", "PDF: a text page, then a scanned one", ("mixed-p1", "mixed-p2")),
        Expect("garbage-ocr-layer.pdf", "scan under an invisible garbage OCR layer",
               ("garbage-ocr-layer-p1",)),
        Expect("good-ocr-layer.pdf", "scan under an invisible good OCR layer",
               ("good-ocr-layer-p1",)),
        Expect("iphone.heic", "HEIC (phone camera)", reason="the file is HEIC/HEIF"),
        Expect("drawing.svg", "SVG", reason="the file is SVG"),
        Expect("drawing-named.png", "SVG named .png", reason="the file is SVG"),
    ]
