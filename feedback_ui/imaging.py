"""The page image an operator looks at, with each field's word boxes drawn on it.

Nothing is decoded before its header says how many pixels it holds (``pixel_problem``, by
``extractor.ocr.image_size``, the check OCR makes): an upload whose header claims 100,000 x
100,000 pixels is refused with that reason, and a stored page that big is shown as a blank page
with its words instead.

The page is shown the way OCR read it, which is the frame its word boxes are in: EXIF orientation
applied, then turned by the rotation OCR recorded (``Document.meta["ocr"]["rotation"]``,
``extractor.ocr.rotate_upright``).
"""

from __future__ import annotations

import io
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageDraw, ImageOps

from extractor.document import Box, Document
from extractor.loaders.images import PDF_DPI
from extractor.ocr import (  # one pixel cap and check for uploads and for OCR, one rotation
    MAX_PIXELS,
    ROTATIONS,
    TooManyPixels,
    image_frames,
    image_size,
    megapixels,
    rotate_upright,
    to_8bit,
)

# One colour per field position in the schema; the field under edit gets a thick outline.
PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#bcbd22"]
ACTIVE = "#d62728"
MAX_PDF_PAGES = 50  # pages of a PDF or TIFF: each is read while the operator waits
# What scans come as. PIL tells formats by content, not name: an EPS (Ghostscript) or any rarer
# decoder behind a ".png" name is refused instead of decoded.
PAGE_FORMATS = ("PNG", "JPEG", "MPO", "TIFF", "BMP", "DIB", "GIF", "WEBP", "PPM")


def _image_pixel_problem(data: bytes, max_pixels: int) -> str | None:
    try:
        image_size(io.BytesIO(data), max_pixels)  # reads the header only, decodes nothing
    except TooManyPixels as e:
        return e.reason
    except ValueError:
        return None  # unreadable, not too big: the loader says why when it tries
    with Image.open(io.BytesIO(data)) as im:  # the header again, for its format
        kind = im.format
    if kind not in PAGE_FORMATS:
        return (f"the file holds {kind} data, not one of the image types accepted "
                "(PNG, JPEG, TIFF, BMP, GIF, WebP, PNM)")
    pages = image_frames(io.BytesIO(data)).pages
    if pages > MAX_PDF_PAGES:
        return f"the {kind} file has {pages} pages; at most {MAX_PDF_PAGES} per upload"
    return None


def _pdf_pixel_problem(data: bytes, max_pixels: int, dpi: int) -> str | None:
    import pymupdf

    try:
        pdf = pymupdf.open(stream=data, filetype="pdf")
    except Exception:  # noqa: BLE001 - pymupdf raises its own and generic errors
        return None  # the loader says why it cannot open it
    with pdf:
        if pdf.needs_pass:
            return "the PDF is encrypted (password-protected); upload an unprotected copy"
        if pdf.page_count > MAX_PDF_PAGES:
            return f"the PDF has {pdf.page_count} pages; at most {MAX_PDF_PAGES} per upload"
        for i in range(1, pdf.page_count + 1):
            rect = pdf[i - 1].rect  # points; nothing is rendered
            w, h = rect.width * dpi / 72, rect.height * dpi / 72
            if w * h > max_pixels:
                return (f"page {i} is {w:,.0f} x {h:,.0f} pixels at {dpi} dpi "
                        f"({megapixels(w * h)}), over the {max_pixels / 1e6:g}-megapixel "
                        "limit; not rendered")
    return None


def pixel_problem(data: bytes, suffix: str, max_pixels: int = MAX_PIXELS,
                  pdf_dpi: int = PDF_DPI) -> str | None:
    """Why the image (or PDF, rendered at ``pdf_dpi``) in ``data`` must not be decoded, read
    from its header alone: too many pixels (or PDF pages), or an encrypted PDF. ``None`` when
    it may be, including files that do not read as images at all (the loader names those)."""
    if suffix.lower() == ".pdf":
        return _pdf_pixel_problem(data, max_pixels, pdf_dpi)
    return _image_pixel_problem(data, max_pixels)


def ocr_rotation(doc: Document) -> int:
    """How far OCR turned the page before reading it (degrees counter-clockwise, 0 if not)."""
    ocr = doc.meta.get("ocr")
    rotation = ocr.get("rotation", 0) if isinstance(ocr, dict) else 0
    return int(rotation) if rotation in ROTATIONS else 0


def _sideways(rotation: int) -> bool:
    return rotation in (90, 270)


def _upright_width(im: Image.Image, rotation: int) -> int:
    """The stored image's width once turned as OCR turned it (EXIF orientation, then
    ``rotation``), read from its header."""
    exif_sideways = im.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)
    return im.height if exif_sideways != _sideways(rotation) else im.width


@lru_cache(maxsize=12)  # a 2400 px page is ~17 MB: bound the memory
def _load(source: str, page: int, width: int, rotation: int = 0) -> Image.Image:
    path = Path(source)
    if path.suffix.lower() == ".pdf":
        import pymupdf

        with pymupdf.open(path) as pdf:
            # PDF pages are numbered from 1 in Documents (images use page 0).
            p = pdf[max(page - 1, 0)]
            shown = p.rect.height if _sideways(rotation) else p.rect.width
            pix = p.get_pixmap(dpi=max(36, min(300, int(72 * width / max(shown, 1)))))
            img = Image.frombytes("RGB", (pix.width, pix.height), pix.samples)
    else:
        image_size(path)  # header only: a page over MAX_PIXELS raises, not decoded
        with Image.open(path, formats=PAGE_FORMATS) as im:
            if page > 0:  # a frame of a multi-frame image (a scanner's TIFF), from 1
                im.seek(page - 1)
            # JPEG: decode at the smallest DCT scale still >= the width needed (a 5000x7000
            # scan shown 700 px wide decodes at 1/4 size, several times faster).
            upright_w = max(_upright_width(im, rotation), 1)
            im.draft("RGB", (max(1, width * im.width // upright_w),
                             max(1, width * im.height // upright_w)))
            # as extractor.ocr reads: 16-bit stretched, alpha on white, EXIF orientation
            img = to_8bit(ImageOps.exif_transpose(im) or im).convert("RGB")
    img = rotate_upright(img, rotation)
    if img.width > width:
        img = img.resize((width, max(1, round(img.height * width / img.width))),
                         Image.Resampling.BILINEAR)
    return img


class EncodedImage:
    """A drawn page encoded once as JPEG; ``save`` writes those bytes (no re-encoding).

    The image component encodes what it is given on every script run by calling its
    ``save(buffer, format=...)``; handing it this object instead of the PIL image makes a
    rerun that shows the same drawing cost a copy of ~40 KB instead of a JPEG encode.
    """

    def __init__(self, data: bytes, size: tuple[int, int]) -> None:
        self.data, self.size = data, size

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    @classmethod
    def of(cls, img: Image.Image, quality: int = 85) -> EncodedImage:
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="JPEG", quality=quality)
        return cls(buf.getvalue(), img.size)

    def save(self, fp: Any, format: str | None = None, **_: Any) -> None:
        if format is not None and format.upper() not in ("JPEG", "JPG"):
            raise ValueError(f"EncodedImage holds JPEG bytes, not {format}")
        fp.write(self.data)

    def to_pil(self) -> Image.Image:
        return Image.open(io.BytesIO(self.data))


def page_image(doc: Document, width: int = 1400) -> Image.Image | None:
    """The document's page as RGB at most ``width`` pixels wide (cached; do not modify it),
    turned the way OCR read it (``ocr_rotation``) so that its word boxes fall on their words.

    ``None`` when the page has no readable image file.
    """
    if not doc.source or not Path(doc.source).is_file():
        return None
    try:
        return _load(doc.source, doc.page, width, ocr_rotation(doc))
    except (OSError, ValueError, IndexError, RuntimeError, Image.DecompressionBombError):
        return None


def warm(doc: Document, width: int) -> threading.Thread:
    """Decode a page in the background so opening that document later is instant."""
    t = threading.Thread(target=page_image, args=(doc, width), daemon=True)
    t.start()
    return t


def blank_page(doc: Document, max_side: int = 1600) -> Image.Image:
    """A white page of the document's size with its words printed, for pages with no image."""
    scale = min(1.0, max_side / max(doc.width, doc.height, 1))
    img = Image.new("RGB", (max(1, int(doc.width * scale)), max(1, int(doc.height * scale))),
                    "white")
    draw = ImageDraw.Draw(img)
    for w in doc.words:
        draw.text((w.box[0] * scale, w.box[1] * scale), w.text, fill="black")
    return img


def word_at(doc: Document, x: float, y: float) -> int | None:
    """Index of the smallest word box holding the page point (x, y), with 2 px of slack."""
    best: tuple[float, int] | None = None
    for i, w in enumerate(doc.words):
        x0, y0, x1, y1 = w.box
        if x0 - 2 <= x <= x1 + 2 and y0 - 2 <= y <= y1 + 2:
            area = (x1 - x0) * (y1 - y0)
            if best is None or area < best[0]:
                best = (area, i)
    return None if best is None else best[1]


ZOOM_MARGIN = 0.04  # of the page's width: room around a field's words in a zoomed window


def field_window(doc: Document, indices: list[int], factor: float) -> Box:
    """A page region 1/``factor`` of the page in size, centred on the given words.

    Zooming crops instead of enlarging: the crop is shown at the column's width, so the
    operator reads small print without scrolling. The region grows (keeping the page's
    shape) to hold all of the field's words with a margin, so a zoom never cuts the value
    being checked. Without words, the top of the page is shown.
    """
    w, h = doc.width / factor, doc.height / factor
    boxes = [doc.words[i].box for i in indices if 0 <= i < len(doc.words)]
    if boxes:
        left, right = min(b[0] for b in boxes), max(b[2] for b in boxes)
        top, bottom = min(b[1] for b in boxes), max(b[3] for b in boxes)
        margin = ZOOM_MARGIN * doc.width
        grow = max((right - left + 2 * margin) / w, (bottom - top + 2 * margin) / h, 1.0)
        w, h = min(doc.width, w * grow), min(doc.height, h * grow)
        cx, cy = (left + right) / 2, (top + bottom) / 2
    else:
        cx, cy = doc.width / 2, h / 2
    x0 = min(max(0.0, cx - w / 2), doc.width - w)
    y0 = min(max(0.0, cy - h / 2), doc.height - h)
    return (int(x0), int(y0), int(x0 + w), int(y0 + h))


def display_to_page(x: float, y: float, shown: tuple[float, float], window: Box
                    ) -> tuple[float, float]:
    """Map a click on the shown image (``shown`` = its displayed size) to page coordinates."""
    fx, fy = x / max(shown[0], 1), y / max(shown[1], 1)
    return window[0] + fx * (window[2] - window[0]), window[1] + fy * (window[3] - window[1])


def render(doc: Document, fields: dict[str, list[int]], active: str | None, window: Box,
           width: int) -> Image.Image:
    """The ``window`` of the page with field boxes drawn, ``width`` pixels wide at most.

    A window with fewer pixels than that is sent as it is: the browser scales the image to
    its column anyway, so enlarging it here would only cost time (a fifth of a "Save and
    next" run on the demo's 600 px receipts) and bytes."""
    factor = doc.width / max(window[2] - window[0], 1)
    img = page_image(doc, int(min(2400, width * factor))) or blank_page(doc)
    img = draw_fields(img, doc, fields, active)
    sx, sy = img.width / max(doc.width, 1), img.height / max(doc.height, 1)
    # Rounded, not truncated: the whole page then crops to itself and, at the shown width
    # already (the "Page" zoom), is not resampled at all.
    img = img.crop((round(window[0] * sx), round(window[1] * sy), round(window[2] * sx),
                    round(window[3] * sy)))
    if img.width <= width:
        return img
    return img.resize((width, max(1, round(img.height * width / img.width))),
                      Image.Resampling.BILINEAR)


def draw_fields(img: Image.Image, doc: Document, fields: dict[str, list[int]],
                active: str | None = None) -> Image.Image:
    """Outline each field's words (``fields``: name -> word indices); ``active`` in red."""
    sx, sy = img.width / max(doc.width, 1), img.height / max(doc.height, 1)
    out = img.copy()
    draw = ImageDraw.Draw(out)
    for k, (name, idx) in enumerate(fields.items()):
        colour, width = (ACTIVE, 4) if name == active else (PALETTE[k % len(PALETTE)], 2)
        for i in idx:
            if 0 <= i < len(doc.words):
                x0, y0, x1, y1 = doc.words[i].box
                draw.rectangle((x0 * sx - 2, y0 * sy - 2, x1 * sx + 2, y1 * sy + 2),
                               outline=colour, width=width)
    return out
