"""Orientation: a page whose first pass reads poorly is tried at 90, 180 and 270 degrees and
read the way up tesseract reads best (``detect_rotation``), whichever engine reads the page.

What "reads poorly" means depends on the engine (``needs_orientation_check``): tesseract's
confidence falls on a sideways page; PP-OCRv6 (its line classifier off) reads sideways text
in tall word boxes, and upside-down text with low scores.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from extractor.document import Word
from extractor.ocr.cache import OcrCache, image_digest
from extractor.ocr.config import Deadline, OcrConfig
from extractor.ocr.imageio import reduction_factor
from extractor.ocr.tesseract import ocr_image

# Tesseract's own orientation detection (OSD) called an upright SROIE receipt upside down with
# confidence 4; reading the page each way up and counting confident words does not.
ORIENT_CONFIG = OcrConfig("orient", psm=6)
ORIENT_TRIGGER = 0.5  # mean confidence of the first pass under which the page is checked
# PP-OCRv6 on a SROIE receipt: mean score 0.97-0.99 upright, 0.68-0.72 upside down or sideways.
RAPID_ORIENT_TRIGGER = 0.85
ORIENT_PIXELS = 4_000_000  # the check reads a copy reduced to this
ROTATIONS = (90, 180, 270)  # degrees counter-clockwise (PIL's sign)
_TRANSPOSE = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
              270: Image.Transpose.ROTATE_270}


def confident_words(words: Sequence[Word], min_conf: float = 0.6) -> int:
    """Words tesseract is sure of with at least two letters or digits: what a page read the
    right way up has many of (SROIE receipts: 58-166 upright, 3-42 sideways or upside down)."""
    return sum(1 for w in words
               if w.confidence >= min_conf and sum(c.isalnum() for c in w.text) >= 2)


def needs_orientation_check(words: Sequence[Word], engine: str = "tesseract") -> bool:
    """Whether the page may not be upright, from its first pass's words.

    Tesseract: upright SROIE receipts read with mean confidence >= 0.55, sideways ones <= 0.46.
    rapidocr: a low mean score, or most words of 3+ characters in boxes taller than wide.
    """
    if not words:
        return True
    mean = sum(w.confidence for w in words) / len(words)
    if engine != "rapidocr":
        return mean < ORIENT_TRIGGER
    long = [w.box for w in words if len(w.text) >= 3]
    tall = sum(1 for x0, y0, x1, y1 in long if y1 - y0 > x1 - x0)
    return mean < RAPID_ORIENT_TRIGGER or 2 * tall > len(long)


def rotate_upright(img: Image.Image, rotation: int) -> Image.Image:
    return img.transpose(_TRANSPOSE[rotation]) if rotation else img


def detect_rotation(img: Image.Image, deadline: Deadline | None = None,
                    upright: Sequence[Word] | None = None) -> int:
    """0, 90, 180 or 270: how far to turn the page (counter-clockwise) to read it upright.

    A reduced copy is read each way up; another way wins only with at least twice the
    confident words of the page as given (and at least 3), so upright pages stay as they are.
    ``upright``: the page's words as given under ``ORIENT_CONFIG``'s settings, when known,
    saves one reading. All three other ways are read: stopping at the first that clears the
    bar turned an upside-down receipt sideways (its 90-degree reading had 10+ sure words).
    """
    small = img.convert("L")
    factor = reduction_factor(small.size, ORIENT_PIXELS)
    if factor > 1 or upright is None:
        small = small.reduce(factor) if factor > 1 else small
        upright = ocr_image(small, ORIENT_CONFIG, deadline)
    base = confident_words(upright)
    score = {r: confident_words(ocr_image(rotate_upright(small, r), ORIENT_CONFIG, deadline))
             for r in ROTATIONS}
    best = max(ROTATIONS, key=lambda r: score[r])
    return best if score[best] >= max(2 * base, 3) else 0


def cached_rotation(img: Image.Image, cache: OcrCache | None, digest: str | None,
                    deadline: Deadline | None = None,
                    upright: Sequence[Word] | None = None) -> int:
    if cache is None:
        return detect_rotation(img, deadline, upright)
    digest = digest or image_digest(img)
    known = cache.get_value(digest, "rotation")
    if isinstance(known, int) and known in (0, *ROTATIONS):
        return known
    rotation = detect_rotation(img, deadline, upright)
    cache.put_value(digest, "rotation", rotation)
    return rotation
