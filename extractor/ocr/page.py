"""Reading one page: a job (an image file, a frame of one, or a PDF page) into its words.

A PDF page whose text layer is usable (``extractor.ocr.textlayer``) is read from it, with no
OCR; any other page is read by tesseract under every pass.

Hostile pages cost one failure each, never the batch: ``run_job`` turns any failure (a bomb,
a truncated file, a page over its time limit) into the outcome's error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytesseract
from PIL import Image

from extractor.document import TEXT_LAYER_OCR, Document, Word
from extractor.ocr.cache import OcrCache, cached_ocr, image_digest
from extractor.ocr.config import Deadline, OcrConfig, PageTimeout, ReadOptions
from extractor.ocr.imageio import ImageInput, image_size, open_image
from extractor.ocr.orientation import (
    ORIENT_CONFIG,
    cached_rotation,
    needs_orientation_check,
    rotate_upright,
)
from extractor.ocr.pdf import PDF_SUFFIXES, render_pdf_page
from extractor.ocr.tesseract import tesseract_version
from extractor.ocr.textlayer import TextLayer, read_text_layer

TEXT_LAYER_PASS = "text-layer"  # the name of a text-layer page's words in ``OcrOutcome.words``


@dataclass(frozen=True)
class OcrJob:
    """One page to read: an image file (``page`` 0), frame ``page`` (1-based) of a multi-frame
    image, or page ``page`` of a PDF rendered at ``dpi``.

    ``text_layer``: a PDF page with a usable text layer is read from it instead of by OCR.
    ``note``: what the reader must say about the page (an animation read at its first frame).
    """

    doc_id: str
    path: str
    page: int = 0
    dpi: int = 200
    text_layer: bool = True
    note: str | None = None

    @property
    def is_pdf(self) -> bool:
        return Path(self.path).suffix.lower() in PDF_SUFFIXES


@dataclass
class OcrOutcome:
    """What a job produced: words per config name and the page size, or an error message.

    ``rotation`` is how far the page was turned (degrees counter-clockwise) to be read
    upright; ``scale`` the document's pixels per pixel of the file (< 1 for a reduced page);
    ``dpi`` the resolution a PDF page was rendered at. ``text_layer`` is what the PDF page's
    text layer held and whether it was used (then ``words`` holds it alone, under
    ``TEXT_LAYER_PASS``).
    """

    job: OcrJob
    words: dict[str, list[Word]] = field(default_factory=dict)
    size: tuple[int, int] = (0, 0)
    error: str | None = None
    rotation: int = 0
    scale: float = 1.0
    dpi: int | None = None
    text_layer: TextLayer | None = None

    @property
    def from_text_layer(self) -> bool:
        return self.text_layer is not None and self.text_layer.usable

    def settings(self, configs: Sequence[OcrConfig]) -> dict[str, Any]:
        """How the page was read, for ``Document.meta["ocr"]`` and every result line."""
        out: dict[str, Any] = (
            {"engine": TEXT_LAYER_OCR} if self.from_text_layer else
            {"engine": f"tesseract {tesseract_version()}",
             "passes": {c.name: json.loads(c.key()) for c in configs}})
        if self.dpi is not None:
            out["dpi"] = self.dpi
        if self.text_layer is not None:
            out["text_layer"] = self.text_layer.settings()
        if self.rotation:
            out["rotation"] = self.rotation
        if self.scale != 1.0:
            out["scale"] = round(self.scale, 6)
        if self.job.note:
            out["note"] = self.job.note
        return out


def load_job_image(job: OcrJob) -> tuple[Image.Image, float, int | None]:
    """The page image, its scale relative to the file (reduced pages) and the PDF dpi."""
    if job.is_pdf:
        img, dpi = render_pdf_page(job.path, job.page, job.dpi)
        return img, 1.0, dpi
    frame = max(job.page - 1, 0)
    full = image_size(job.path)
    img = open_image(job.path, frame=frame)
    if frame:
        with Image.open(job.path) as im:
            im.seek(frame)
            full = im.size
    # exif_transpose may swap the sides: compare the longer ones.
    return img, max(img.size) / max(full), None


def read_page(job: OcrJob, configs: Sequence[OcrConfig], cache: OcrCache | None,
              options: ReadOptions) -> OcrOutcome:
    """Read one page: from its text layer when it is a PDF page with a usable one, else with
    every config, turned upright first when the first pass reads poorly (``options.orient``);
    raises on any failure (``run_job`` catches)."""
    deadline = Deadline(options.page_timeout)
    layer = read_text_layer(job.path, job.page, job.dpi) if job.is_pdf and job.text_layer else None
    if layer is not None and layer.usable:
        return OcrOutcome(job, {TEXT_LAYER_PASS: layer.words}, layer.size, dpi=layer.dpi,
                          text_layer=layer)
    img, scale, dpi = load_job_image(job)
    digest = image_digest(img) if cache is not None else None
    first = cached_ocr(img, configs[0], cache, digest, deadline)
    rotation = 0
    if options.orient and needs_orientation_check(first):
        same = configs[0].key() == ORIENT_CONFIG.key()  # its first pass is the upright probe
        rotation = cached_rotation(img, cache, digest, deadline, first if same else None)
        if rotation:
            img = rotate_upright(img, rotation)
            digest = image_digest(img) if cache is not None else None
            first = cached_ocr(img, configs[0], cache, digest, deadline)
    words = {configs[0].name: first}
    words.update({c.name: cached_ocr(img, c, cache, digest, deadline) for c in configs[1:]})
    if layer is not None:
        layer.words = []  # measured and refused: only its figures travel with the page
    return OcrOutcome(job, words, img.size, rotation=rotation, scale=scale, dpi=dpi,
                      text_layer=layer)


def run_job(job: OcrJob, configs: Sequence[OcrConfig], cache_dir: str | None,
            options: ReadOptions | None = None) -> OcrOutcome:
    """``read_page``, with any failure turned into the outcome's error, never a raise."""
    cache = OcrCache(cache_dir) if cache_dir is not None else None
    try:
        return read_page(job, configs, cache, options or ReadOptions())
    except PageTimeout as e:
        return OcrOutcome(job, error=str(e))
    except ValueError as e:
        return OcrOutcome(job, error=str(e).removeprefix(f"{job.path}: "))
    except (pytesseract.TesseractError, OSError, RuntimeError) as e:
        return OcrOutcome(job, error=f"OCR failed ({e.__class__.__name__}: {e})")
    except Exception as e:  # noqa: BLE001 - MemoryError, a decoder bug: the batch goes on
        return OcrOutcome(job, error=f"unexpected error reading the page "
                                     f"({e.__class__.__name__}: {e})")


def ocr_variants(image: ImageInput, configs: Sequence[OcrConfig]) -> dict[str, list[Word]]:
    """Words of each config over the same image, by config name."""
    img = open_image(image)
    return {c.name: cached_ocr(img, c, None) for c in configs}


def ocr_document(image: ImageInput, doc_id: str, configs: Sequence[OcrConfig],
                 cache_dir: str | Path | None = None) -> Document:
    """A ``Document`` whose words come from the first config, other configs as variants."""
    if not configs:
        raise ValueError("ocr_document needs at least one OcrConfig")
    img = open_image(image)
    cache = OcrCache(cache_dir) if cache_dir is not None else None
    by_name = {c.name: cached_ocr(img, c, cache) for c in configs}
    return document_from_words(doc_id, by_name, configs, img.size,
                               source=None if isinstance(image, Image.Image) else str(image))


def document_from_words(doc_id: str, by_name: dict[str, list[Word]],
                        configs: Sequence[OcrConfig], size: tuple[int, int],
                        source: str | None = None, page: int = 0,
                        settings: dict[str, Any] | None = None) -> Document:
    """Assemble a page's Document: the first config's words, the others as variants.

    ``settings`` (``OcrOutcome.settings``: engine, passes, rotation, ...) go to
    ``meta["ocr"]``, so a document says how it was read wherever it travels.
    """
    first = configs[0].name
    return Document(id=doc_id, words=by_name[first], width=size[0], height=size[1], source=source,
                    page=page, ocr=f"tesseract:{first}",
                    variants={c.name: by_name[c.name] for c in configs[1:]},
                    meta={"ocr": settings} if settings else {})
