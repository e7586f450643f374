"""Error gallery: for wrong fields, a crop of the page around the predicted and gold words.

Predicted words are boxed in red, gold words (from the label alignment) in green. When the page
image is not at hand (a JSONL with no source), the crop is drawn from the OCR words themselves,
and the item says so.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageOps

from eval.evaluate import FieldOutcome
from extractor.document import Box, Document

PRED_COLOR, GOLD_COLOR = (214, 39, 40), (44, 160, 44)
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


@dataclass
class GalleryItem:
    doc_id: str
    field: str
    gold: str | None
    pred: str | None
    confidence: float
    candidates: list[str]
    image: str | None
    """A ``data:`` URI of the crop, or ``None`` when neither side has words on the page."""
    note: str = ""


def select_errors(outcomes: Sequence[FieldOutcome], limit: int = 24) -> list[FieldOutcome]:
    """Wrong answers (strict), most confident first within a field, fields taken in turn.

    Confident errors come first because they are the ones auto-accept would let through.
    """
    by_field: dict[str, list[FieldOutcome]] = {}
    for o in outcomes:
        if not o.strict_ok:
            by_field.setdefault(o.field, []).append(o)
    queues = [sorted(v, key=lambda o: (-o.confidence, o.doc_id)) for v in by_field.values()]
    picked: list[FieldOutcome] = []
    while len(picked) < limit and any(queues):
        for q in queues:
            if q and len(picked) < limit:
                picked.append(q.pop(0))
    return picked


@lru_cache(maxsize=8)
def _page_image(source: str, width: int, height: int) -> Image.Image | None:
    """The page as an RGB image at the document's pixel size, or ``None`` if unreadable."""
    if not source or not os.path.isfile(source):
        return None
    try:
        if source.lower().endswith(".pdf"):
            import fitz  # pymupdf

            with fitz.open(source) as pdf:
                pix = pdf[0].get_pixmap(dpi=150)
                img = Image.frombytes("RGB", (pix.width, pix.height), pix.samples)
        elif source.lower().endswith(IMAGE_EXT):
            with Image.open(source) as im:
                img = ImageOps.exif_transpose(im).convert("RGB")
        else:
            return None
    except (OSError, ValueError, RuntimeError):  # a broken page must not stop the report
        return None
    if img.size != (width, height) and width > 0 and height > 0:
        img = img.resize((width, height))
    return img


def _drawn_page(doc: Document) -> Image.Image:
    """A stand-in page: the OCR words written at their boxes on white."""
    img = Image.new("RGB", (max(doc.width, 1), max(doc.height, 1)), "white")
    draw = ImageDraw.Draw(img)
    for w in doc.words:
        draw.text((w.box[0], w.box[1]), w.text, fill=(60, 60, 60))
    return img


def _union(boxes: Sequence[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def _region(page: Image.Image, boxes: Sequence[Box], margin: int) -> Box:
    x0, y0, x1, y1 = _union(boxes)
    # A line of context on both sides: values only make sense next to their labels.
    return (max(0, x0 - margin * 4), max(0, y0 - margin),
            min(page.width, x1 + margin * 4), min(page.height, y1 + margin))


def _draw_crop(page: Image.Image, region: Box, pw: Sequence[Box], gw: Sequence[Box],
               max_size: tuple[int, int]) -> Image.Image:
    crop = page.crop(region).copy()
    draw = ImageDraw.Draw(crop)
    ox, oy = region[0], region[1]
    for boxes, color, pad in ((gw, GOLD_COLOR, 3), (pw, PRED_COLOR, 1)):
        for b in boxes:
            draw.rectangle((b[0] - ox - pad, b[1] - oy - pad, b[2] - ox + pad, b[3] - oy + pad),
                           outline=color, width=2)
    crop.thumbnail(max_size)
    return crop


def error_crop(doc: Document, pred_words: Sequence[int], gold_words: Sequence[int],
               margin: int = 30, max_size: tuple[int, int] = (460, 300)) -> tuple[str | None, str]:
    """A JPEG data URI of the page region around both word sets, and a note on its origin.

    When the predicted and gold words are far apart, the two regions are cropped separately
    and stacked (gold above, prediction below) so both stay readable.
    """
    pw = [doc.words[i].box for i in pred_words if 0 <= i < len(doc.words)]
    gw = [doc.words[i].box for i in gold_words if 0 <= i < len(doc.words)]
    if not pw and not gw:
        return None, "no predicted or gold words on the page"
    page = _page_image(doc.source or "", doc.width, doc.height)
    note = ""
    if page is None:
        page, note = _drawn_page(doc), "page image unavailable: drawn from the OCR words"
    whole = _region(page, pw + gw, margin)
    parts = [whole]
    if pw and gw:
        rg, rp = _region(page, gw, margin), _region(page, pw, margin)
        if (whole[3] - whole[1]) > 1.5 * ((rg[3] - rg[1]) + (rp[3] - rp[1])):
            parts = [rg, rp]
    h = max_size[1] // len(parts)
    crops = [_draw_crop(page, r, pw, gw, (max_size[0], h)) for r in parts]
    out = Image.new("RGB", (max(c.width for c in crops),
                            sum(c.height for c in crops) + 6 * (len(crops) - 1)), "white")
    y = 0
    for c in crops:
        if y:  # a grey rule between the gold and the predicted region
            ImageDraw.Draw(out).rectangle((0, y - 4, out.width, y - 3), fill=(150, 150, 150))
        out.paste(c, (0, y))
        y += c.height + 6
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=80)
    return f"data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode('ascii')}", note


def gold_word_indices(tags: Sequence[str] | None, field: str) -> list[int]:
    """Indices of the words that the gold BIO tags give to ``field``.

    >>> gold_word_indices(["O", "B-TOTAL", "I-TOTAL", "B-DATE"], "total")
    [1, 2]
    """
    suffix = f"-{field.upper()}"
    return [i for i, t in enumerate(tags or []) if t.endswith(suffix)]


def build_gallery(outcomes: Sequence[FieldOutcome], docs: Mapping[str, Document],
                  gold_tags: Mapping[str, Sequence[str]] | None, limit: int = 24
                  ) -> list[GalleryItem]:
    """Gallery items for up to ``limit`` wrong answers."""
    items = []
    for o in select_errors(outcomes, limit):
        doc = docs.get(o.doc_id)
        img, note = (None, "document not loaded") if doc is None else error_crop(
            doc, o.pred_words, gold_word_indices((gold_tags or {}).get(o.doc_id), o.field))
        items.append(GalleryItem(o.doc_id, o.field, o.gold, o.pred, o.confidence,
                                 o.candidates[:5], img, note))
    return items
