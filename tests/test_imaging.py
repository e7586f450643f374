"""The review UI's page image: the pixel check is the extractor's, and the page is shown the way
OCR read it (EXIF orientation, then the recorded rotation), so word boxes fall on their words."""

from __future__ import annotations

import io
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from bad_inputs import FONT, png_header, text_page
from PIL import Image, ImageDraw

from extractor.document import Document, Word
from extractor.ocr import (
    OcrConfig,
    OcrJob,
    TooManyPixels,
    document_from_words,
    image_size,
    open_image,
    rotate_upright,
    run_job,
)
from feedback_ui.imaging import (
    ACTIVE,
    field_window,
    ocr_rotation,
    page_image,
    pixel_problem,
    render,
)

WORD_BOX = (40, 200, 120, 230)  # where the word is on the page OCR read (200 x 300)
TURN_BACK = {0: None, 90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180,
             270: Image.Transpose.ROTATE_90}  # undoes rotate_upright(., rotation)
# EXIF orientation -> the transpose that undoes what ImageOps.exif_transpose applies for it.
EXIF_UNDO = {1: None, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def _mock_upright_page() -> Image.Image:
    """The page as OCR read it: white, with a black block where the word is."""
    img = Image.new("RGB", (200, 300), "white")
    ImageDraw.Draw(img).rectangle(WORD_BOX, fill="black")
    return img


def _stored(upright: Image.Image, rotation: int, orientation: int = 1) -> Image.Image:
    """The file as scanned: ``upright`` turned back by the rotation OCR found, then by what its
    EXIF orientation says to undo."""
    img = upright
    for undo in (TURN_BACK[rotation], EXIF_UNDO[orientation]):
        img = img.transpose(undo) if undo is not None else img
    return img


def _mock_doc(path: Path, rotation: int, size: tuple[int, int] = (200, 300)) -> Document:
    meta = {"ocr": {"engine": "tesseract", "rotation": rotation}} if rotation else {}
    return Document(id=path.stem, words=[Word("TOTAL", WORD_BOX)], width=size[0],
                    height=size[1], source=str(path), meta=meta)


# -- the pixel check: extractor.ocr.image_size, its messages ------------------------------------

@pytest.mark.parametrize("side", [100_000, 10_000])  # refused by PIL in open(); by the cap
def test_upload_refusal_is_the_message_ocr_gives_for_the_same_file(tmp_path: Path,
                                                                    side: int) -> None:
    data = png_header(side, side)
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    reason = pixel_problem(data, ".png")
    assert reason == (f"image is {side:,} x {side:,} pixels ({side * side / 1e6:,.1f} "
                      "megapixels), over the 80-megapixel limit; not decoded (a decompression "
                      "bomb?)")
    files: list[tuple[Path | io.BytesIO, str]] = [(path, str(path)), (io.BytesIO(data), "image data")]
    for image, name in files:
        with pytest.raises(TooManyPixels) as refused:
            image_size(image)
        assert str(refused.value) == f"{name}: {reason}" and refused.value.reason == reason
    # it crosses OCR worker processes: raised in a worker, it arrives whole
    with (ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool,
          pytest.raises(TooManyPixels) as crossed):
        pool.submit(image_size, str(path)).result()
    assert str(crossed.value) == f"{path}: {reason}" and crossed.value.reason == reason
    with pytest.raises(ValueError, match="^image data: cannot read image") as unreadable:
        image_size(io.BytesIO(b"plain text"))
    assert not isinstance(unreadable.value, TooManyPixels)


# -- the page shown the way OCR read it -----------------------------------------------------------

@pytest.mark.parametrize("orientation, rotation", [(1, 90), (1, 180), (1, 270), (6, 0), (6, 90),
                                                   (8, 270)])
def test_page_is_shown_as_ocr_read_it(tmp_path: Path, orientation: int, rotation: int) -> None:
    upright = _mock_upright_page()
    stored = _stored(upright, rotation, orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"scan-{orientation}-{rotation}.png"
    stored.save(path, exif=exif)
    # The construction is what OCR reads: extractor.ocr's own functions turn it upright.
    ocr_view = rotate_upright(open_image(path), rotation).convert("RGB")
    assert np.array_equal(np.asarray(ocr_view), np.asarray(upright))
    doc = _mock_doc(path, rotation)
    assert ocr_rotation(doc) == rotation
    shown = page_image(doc, 200)
    assert shown is not None and shown.size == (200, 300)
    assert np.array_equal(np.asarray(shown), np.asarray(upright))


def test_rotated_page_has_its_boxes_drawn_on_the_words(tmp_path: Path) -> None:
    path = tmp_path / "sideways.png"
    _stored(_mock_upright_page(), 90).save(path)  # stored 300 x 200, read turned by 90
    doc = _mock_doc(path, 90)
    img = np.asarray(render(doc, {"total": [0]}, "total", (0, 0, 200, 300), 200))
    assert img.shape == (300, 200, 3)  # the rotated page's size, not the file's 300 x 200
    x0, y0, x1, y1 = WORD_BOX
    red = tuple(int(ACTIVE[i:i + 2], 16) for i in (1, 3, 5))
    for x, y in [(x0 - 1, (y0 + y1) // 2), (x1 + 1, (y0 + y1) // 2), ((x0 + x1) // 2, y0 - 1)]:
        assert tuple(img[y, x]) == red, (x, y)  # the outline around the word
    assert (img[y0 + 4:y1 - 4, x0 + 4:x1 - 4] == 0).all()  # and the word's ink inside it
    assert (img[10:100, 10:190] == 255).all()  # the rest of the page is paper


def test_a_long_sideways_jpeg_is_decoded_wide_enough(tmp_path: Path) -> None:
    # A 1000 x 4000 receipt stored sideways: shown 500 wide, it must be decoded at >= 1/2 scale
    # (sizing the JPEG draft by the file's own width would pick 1/8: 125 px wide).
    path = tmp_path / "long.jpg"
    Image.new("RGB", (4000, 1000), "white").save(path, quality=80)
    shown = page_image(_mock_doc(path, 90, size=(1000, 4000)), 500)
    assert shown is not None and shown.size == (500, 2000)


@pytest.mark.slow
def test_a_page_tesseract_turned_is_shown_turned(tmp_path: Path) -> None:
    """Real tesseract: the rotation OCR records and the UI's reading of it agree."""
    if not Path(FONT).is_file():
        pytest.skip(f"{FONT} missing (Debian fonts-dejavu-core)")
    path = tmp_path / "rotated.png"
    text_page().rotate(90, expand=True).save(path)  # 330 x 720: the text reads bottom to top
    configs = [OcrConfig("psm6", psm=6)]
    out = run_job(OcrJob("rotated", str(path)), configs, None)
    assert out.error is None and out.rotation == 270
    doc = document_from_words("rotated", out.words, configs, out.size, source=str(path),
                              settings=out.settings(configs))
    shown = page_image(doc, doc.width)
    assert shown is not None and shown.size == (doc.width, doc.height) == (720, 330)
    ink = 255 - np.asarray(shown.convert("L"), dtype=np.int32)
    total = [w for w in doc.words if w.text == "TOTAL"]
    assert total, [w.text for w in doc.words]
    x0, y0, x1, y1 = total[0].box
    assert ink[y0:y1, x0:x1].mean() > 40  # the word's box holds its ink


@pytest.mark.parametrize("factor", [2.0, 4.0])
def test_a_zoomed_window_holds_the_whole_field_with_a_margin(factor: float) -> None:
    """A long address across the page at zoom 2x/4x: the window grows (keeping the page's
    shape) instead of cutting the value; a short value gets the plain 1/factor window."""
    words = [Word("NO", (20, 300, 60, 320)), Word("12,", (70, 300, 110, 320)),
             Word("JALAN", (120, 300, 300, 320)), Word("PERMAS", (310, 300, 560, 320)),
             Word("9.00", (500, 900, 560, 920))]
    doc = Document("d", words, width=600, height=1200)
    x0, y0, x1, y1 = field_window(doc, [0, 1, 2, 3], factor)
    assert x0 <= 20 and x1 >= 560 and y0 <= 300 and y1 >= 320  # every word of the value
    assert 0 <= x0 and x1 <= 600 and 0 <= y0 and y1 <= 1200  # inside the page
    assert abs((x1 - x0) / (y1 - y0) - 600 / 1200) < 0.01  # the page's shape
    short = field_window(doc, [4], factor)
    assert (short[2] - short[0], short[3] - short[1]) == (int(600 / factor), int(1200 / factor))
    assert short[0] <= 500 and short[2] >= 560 and short[1] <= 900 and short[3] >= 920


def test_a_small_page_is_not_enlarged_and_a_large_one_is_shrunk(tmp_path: Path) -> None:
    # The browser scales the shown image to its column: enlarging a 600 px receipt to the
    # 700 px drawing width only costs time; a page wider than that is shrunk to it.
    path = tmp_path / "small.png"
    Image.new("RGB", (200, 300), "white").save(path)
    doc = _mock_doc(path, 0)
    assert render(doc, {}, None, (0, 0, 200, 300), 700).size == (200, 300)
    assert render(doc, {}, None, (0, 0, 100, 150), 700).size == (100, 150)  # zoomed in
    assert render(doc, {}, None, (0, 0, 200, 300), 100).size == (100, 150)
