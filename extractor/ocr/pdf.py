"""PDF pages rendered to images for OCR (PyMuPDF)."""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from extractor.ocr.imageio import OCR_MAX_PIXELS

PDF_SUFFIXES = {".pdf"}


def pdf_render_dpi(width_pt: float, height_pt: float, dpi: int,
                   max_pixels: int = OCR_MAX_PIXELS) -> int:
    """``dpi``, lowered so that a page of that many points renders within ``max_pixels``."""
    pixels = width_pt * height_pt * (dpi / 72.0) ** 2
    if pixels <= max_pixels:
        return dpi
    return max(1, math.floor(dpi * math.sqrt(max_pixels / pixels)))


def import_pymupdf() -> Any:
    """PyMuPDF without its layout analyser: pymupdf 2 imports ``pymupdf.layout`` (an ONNX
    model, about a second of CPU per process) whenever that package is installed, and kvloop
    only renders pages. Blocking the submodule makes pymupdf skip it (its import is optional).
    """
    if "pymupdf" not in sys.modules:
        sys.modules.setdefault("pymupdf.layout", None)  # type: ignore[arg-type]
    import pymupdf

    return pymupdf


@contextmanager
def pdf_page(path: str | Path, page: int, doing: str) -> Iterator[Any]:
    """Page ``page`` (1-based) of a PDF, open while the block runs; any failure in it is a
    ``ValueError`` naming the file and what was being done (``doing``: "render")."""
    pymupdf = import_pymupdf()
    try:
        with pymupdf.open(str(path)) as pdf:
            if pdf.needs_pass:
                raise ValueError(f"{path}: PDF is encrypted (password-protected); decrypt it "
                                 "first")
            yield pdf[page - 1]
    except ValueError:
        raise
    except Exception as e:  # pymupdf raises its own and generic errors for broken files
        raise ValueError(f"{path}: cannot {doing} PDF page {page} ({e})") from e


def render_pdf_page(path: str | Path, page: int, dpi: int = 200) -> tuple[Image.Image, int]:
    """Page ``page`` (1-based) of a PDF as a grayscale PIL image, and the dpi it was rendered
    at (``dpi``, or less for a page too big for ``OCR_MAX_PIXELS``)."""
    with pdf_page(path, page, "render") as p:
        dpi = pdf_render_dpi(p.rect.width, p.rect.height, dpi)
        pix = p.get_pixmap(dpi=dpi, colorspace=import_pymupdf().csGRAY, alpha=False)
        return Image.open(io.BytesIO(pix.tobytes("png"))).convert("L"), dpi
