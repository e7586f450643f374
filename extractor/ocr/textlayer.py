"""A PDF page's own words: its text layer, with boxes, and whether it can stand in for OCR.

A born-digital PDF (a billing system's invoice or receipt) holds every word and its position
exactly; reading those is faster than OCR and cannot misread. A scanned PDF has no text layer,
or an invisible one (render mode 3, or fully transparent) that a scanner's OCR wrote over the
image, which may be good or garbage. ``judge`` keeps a page's text layer when:

* it has words, and at least ``MIN_READABLE`` of them are dictionary words or numbers
  (``readable_share``): a broken font encoding (glyph ids where letters should be) fails this;
* and, when most of its characters are invisible (an OCR layer), at least
  ``MIN_READABLE_INVISIBLE`` are: such a layer replaces our OCR only when it reads as well as
  tesseract reads a clean receipt.

Measured (``readable_share`` per page): the 100 SROIE dev receipts' provided words (exact text,
what a born-digital receipt holds): 0.55-0.79, median 0.67 (Malay addresses and company names
are not English words); tesseract psm6 on 20 of those scans: 0.53-0.74, median 0.60; on the
same scans reduced 4x and blurred (a poor OCR layer): 0-0.71, median 0.50; random marks:
0.06-0.15 (``scripts/bench_pdf_text.py --rule 20``; BENCHMARKS.md, "PDF text layers"). So a
visible layer is refused only when it is clearly not text (under 0.25), and an invisible one
is kept from 0.6, the median of tesseract's clean reads: a poorer OCR layer is replaced by our
own OCR, whose passes the extractor merges. The share cannot tell a mediocre OCR layer from a
good one reliably (the poor reads' upper quartile overlaps the clean ones), so the bar for
invisible layers errs towards OCR, which costs time, never the words of a born-digital page.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from extractor.document import Word
from extractor.ocr.pdf import import_pymupdf, pdf_page, pdf_render_dpi

MIN_READABLE = 0.25
MIN_READABLE_INVISIBLE = 0.6
INVISIBLE = 0.5  # share of invisible characters from which a layer counts as an OCR layer
_NUMBER = re.compile(r"^[(+\-]?(?:RM|\$|€|£)?\d[\d.,:/\-%]*[)]?$", re.IGNORECASE)
_EDGE = re.compile(r"^[^\w]+|[^\w]+$")


@lru_cache(maxsize=1)
def dictionary() -> frozenset[str]:
    """English words (lower case): the frequency list that ``pyspellchecker`` ships."""
    data = resources.files("spellchecker") / "resources" / "en.json.gz"
    with data.open("rb") as fh:
        return frozenset(json.loads(gzip.decompress(fh.read())))


def readable(token: str, words: frozenset[str]) -> bool:
    """A dictionary word or a number (amount, date, phone, percentage), edge punctuation
    aside. Punctuation alone is not readable: garbage OCR is full of it."""
    core = _EDGE.sub("", token)
    if not core:
        return False
    if _NUMBER.match(core):
        return True
    return core.isalpha() and core.lower() in words


def readable_share(texts: list[str]) -> float:
    """Share of ``texts`` that are ``readable`` (0 for no text)."""
    if not texts:
        return 0.0
    words = dictionary()
    return sum(readable(t, words) for t in texts) / len(texts)


@dataclass
class TextLayer:
    """One PDF page's text layer in pixels of the page rendered at ``dpi`` (the image OCR
    would read), with what the rule measured and decided."""

    words: list[Word]
    size: tuple[int, int]
    dpi: int
    chars: int = 0
    invisible: float = 0.0  # share of characters drawn invisibly
    readable: float = 0.0
    usable: bool = False
    reason: str = ""

    def settings(self) -> dict[str, Any]:
        """What the page's ``meta["ocr"]`` says about its text layer."""
        return {"words": len(self.words), "chars": self.chars,
                "invisible": round(self.invisible, 3), "readable": round(self.readable, 3),
                "used": self.usable, "reason": self.reason}


def judge(layer: TextLayer) -> TextLayer:
    """Decide whether ``layer`` replaces OCR (the rule of the module docstring)."""
    if not layer.words:
        layer.usable, layer.reason = False, "no text layer"
    elif layer.invisible >= INVISIBLE and layer.readable < MIN_READABLE_INVISIBLE:
        layer.usable = False
        layer.reason = (f"an invisible (OCR) text layer of {layer.readable:.0%} readable words, "
                        f"under {MIN_READABLE_INVISIBLE:.0%}")
    elif layer.readable < MIN_READABLE:
        layer.usable = False
        layer.reason = f"text layer of {layer.readable:.0%} readable words, under {MIN_READABLE:.0%}"
    else:
        kind = "invisible (OCR) " if layer.invisible >= INVISIBLE else ""
        layer.usable = True
        layer.reason = f"{kind}text layer of {layer.readable:.0%} readable words"
    return layer


def read_text_layer(path: str | Path, page: int, dpi: int = 200) -> TextLayer:
    """Page ``page`` (1-based)'s text layer, judged. Boxes are in pixels of the page rendered
    at ``dpi`` (lowered for a big page as ``render_pdf_page`` lowers it), turned as the page is
    shown (``/Rotate``); words are in the layer's reading order, lines numbered by (block,
    line). ``ValueError`` naming the file for a PDF that cannot be read."""
    pymupdf = import_pymupdf()
    with pdf_page(path, page, "read the text of") as p:
        dpi = pdf_render_dpi(p.rect.width, p.rect.height, dpi)
        scale = pymupdf.Matrix(dpi / 72.0, dpi / 72.0)
        shown = (p.rect * scale).irect  # ``rect`` is the page as shown (turned)
        to_pixels = p.rotation_matrix * scale  # words are on the page as stored
        size = (shown.width, shown.height)
        raw = p.get_text("words")
        trace = p.get_texttrace()
    words: list[Word] = []
    lines: dict[tuple[int, int], int] = {}
    for x0, y0, x1, y1, text, block, line, _ in raw:
        text = text.strip()
        if not text:
            continue
        r = pymupdf.Rect(x0, y0, x1, y1) * to_pixels
        box = (max(0, min(size[0], round(r.x0))), max(0, min(size[1], round(r.y0))),
               max(0, min(size[0], round(r.x1))), max(0, min(size[1], round(r.y1))))
        words.append(Word(text, box, 1.0, lines.setdefault((block, line), len(lines))))
    chars = sum(len(s["chars"]) for s in trace)
    hidden = sum(len(s["chars"]) for s in trace if s["type"] == 3 or s.get("opacity", 1) == 0)
    layer = TextLayer(words, size, dpi, chars, hidden / chars if chars else 0.0,
                      readable_share([w.text for w in words]))
    return judge(layer)
