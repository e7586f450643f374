"""Reading one page: a job (an image file, a frame of one, or a PDF page) into its words.

A PDF page whose text layer is usable (``extractor.ocr.textlayer``) is read from it, with no
OCR; any other page is read by tesseract under every pass.

Hostile pages cost one failure each, never the batch: ``run_job`` turns any failure (a bomb,
a truncated file, a page over its time limit) into the outcome's error. A pass whose engine
fails on a page (tesseract or rapidocr raising) costs that pass only: the page is read by the
other passes and the failure is kept in ``OcrOutcome.failed`` (and so in ``meta["ocr"]``).
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
from extractor.ocr.config import Deadline, PageTimeout, ReadOptions
from extractor.ocr.engines import OcrPass, engine_label, engine_names
from extractor.ocr.imageio import ImageInput, image_size, open_image
from extractor.ocr.orientation import (
    ORIENT_CONFIG,
    cached_rotation,
    needs_orientation_check,
    rotate_upright,
)
from extractor.ocr.pdf import PDF_SUFFIXES, render_pdf_page
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
    ``dpi`` the resolution a PDF page was rendered at; ``failed`` the passes whose engine
    failed on the page (pass name -> reason), the page read by the others. ``text_layer`` is
    what the PDF page's text layer held and whether it was used (then ``words`` holds it
    alone, under ``TEXT_LAYER_PASS``).
    """

    job: OcrJob
    words: dict[str, list[Word]] = field(default_factory=dict)
    size: tuple[int, int] = (0, 0)
    error: str | None = None
    rotation: int = 0
    scale: float = 1.0
    dpi: int | None = None
    failed: dict[str, str] = field(default_factory=dict)
    text_layer: TextLayer | None = None

    @property
    def from_text_layer(self) -> bool:
        return self.text_layer is not None and self.text_layer.usable

    def settings(self, configs: Sequence[OcrPass]) -> dict[str, Any]:
        """How the page was read, for ``Document.meta["ocr"]`` and every result line."""
        out: dict[str, Any] = {"engine": TEXT_LAYER_OCR} if self.from_text_layer else {
            "engine": " + ".join(engine_label(e) for e in engine_names(configs)),
            "engines": {c.name: c.engine for c in configs},
            "passes": {c.name: json.loads(c.key()) for c in configs}}
        if self.failed:
            out["failed"] = dict(self.failed)
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


class EveryPassFailed(RuntimeError):
    """Every engine failed on the page; the message lists each pass's reason."""


def _read_pass(img: Image.Image, config: OcrPass, cache: OcrCache | None, digest: str | None,
               deadline: Deadline, failed: dict[str, str]) -> list[Word] | None:
    """The pass's words, or ``None`` with the reason in ``failed`` when its engine fails; a
    page over its time limit still stops the page."""
    try:
        return cached_ocr(img, config, cache, digest, deadline)
    except PageTimeout:
        raise
    except Exception as e:  # noqa: BLE001 - any engine error: the other engines read the page
        failed[config.name] = f"{config.engine} failed ({e.__class__.__name__}: {e})"
        return None


def read_page(job: OcrJob, configs: Sequence[OcrPass], cache: OcrCache | None,
              options: ReadOptions) -> OcrOutcome:
    """Read one page: from its text layer when it is a PDF page with a usable one, else with
    every pass, turned upright first when the first pass that reads it reads poorly
    (``options.orient``). A failing pass is recorded and skipped; the page raises (``run_job``
    catches) on its guards, its time limit, or when every pass fails."""
    deadline = Deadline(options.page_timeout)
    layer = read_text_layer(job.path, job.page, job.dpi) if job.is_pdf and job.text_layer else None
    if layer is not None and layer.usable:
        return OcrOutcome(job, {TEXT_LAYER_PASS: layer.words}, layer.size, dpi=layer.dpi,
                          text_layer=layer)
    img, scale, dpi = load_job_image(job)
    digest = image_digest(img) if cache is not None else None
    failed: dict[str, str] = {}
    lead, first = None, None
    for c in configs:  # the first pass whose engine reads the page leads
        first = _read_pass(img, c, cache, digest, deadline, failed)
        if first is not None:
            lead = c
            break
    if lead is None or first is None:
        raise EveryPassFailed("every OCR pass failed: " + "; ".join(
            f"{name}: {reason}" for name, reason in failed.items()))
    rotation = 0
    if options.orient and needs_orientation_check(first, lead.engine):
        same = lead.key() == ORIENT_CONFIG.key()  # its first pass is the upright probe
        rotation = cached_rotation(img, cache, digest, deadline, first if same else None)
        if rotation:
            img = rotate_upright(img, rotation)
            digest = image_digest(img) if cache is not None else None
            first = cached_ocr(img, lead, cache, digest, deadline)
    words = {lead.name: first}
    for c in configs[configs.index(lead) + 1:]:
        read = _read_pass(img, c, cache, digest, deadline, failed)
        if read is not None:
            words[c.name] = read
    if layer is not None:
        layer.words = []  # measured and refused: only its figures travel with the page
    return OcrOutcome(job, words, img.size, rotation=rotation, scale=scale, dpi=dpi,
                      failed=failed, text_layer=layer)


def run_job(job: OcrJob, configs: Sequence[OcrPass], cache_dir: str | None,
            options: ReadOptions | None = None) -> OcrOutcome:
    """``read_page``, with any failure turned into the outcome's error, never a raise."""
    cache = OcrCache(cache_dir) if cache_dir is not None else None
    try:
        return read_page(job, configs, cache, options or ReadOptions())
    except (PageTimeout, EveryPassFailed) as e:
        return OcrOutcome(job, error=str(e))
    except ValueError as e:
        return OcrOutcome(job, error=str(e).removeprefix(f"{job.path}: "))
    except (pytesseract.TesseractError, OSError, RuntimeError) as e:
        return OcrOutcome(job, error=f"OCR failed ({e.__class__.__name__}: {e})")
    except Exception as e:  # noqa: BLE001 - MemoryError, a decoder bug: the batch goes on
        return OcrOutcome(job, error=f"unexpected error reading the page "
                                     f"({e.__class__.__name__}: {e})")


def ocr_variants(image: ImageInput, configs: Sequence[OcrPass]) -> dict[str, list[Word]]:
    """Words of each config over the same image, by config name."""
    img = open_image(image)
    return {c.name: cached_ocr(img, c, None) for c in configs}


def ocr_document(image: ImageInput, doc_id: str, configs: Sequence[OcrPass],
                 cache_dir: str | Path | None = None) -> Document:
    """A ``Document`` whose words come from the first config, other configs as variants."""
    if not configs:
        raise ValueError("ocr_document needs at least one OCR pass")
    img = open_image(image)
    cache = OcrCache(cache_dir) if cache_dir is not None else None
    by_name = {c.name: cached_ocr(img, c, cache) for c in configs}
    return document_from_words(doc_id, by_name, configs, img.size,
                               source=None if isinstance(image, Image.Image) else str(image))


def document_from_words(doc_id: str, by_name: dict[str, list[Word]],
                        configs: Sequence[OcrPass], size: tuple[int, int],
                        source: str | None = None, page: int = 0,
                        settings: dict[str, Any] | None = None) -> Document:
    """Assemble a page's Document: the words of the first pass that found any (``ocr`` names
    its engine and pass), every other pass read as a variant; passes missing from
    ``by_name`` (their engine failed) are left out.

    ``settings`` (``OcrOutcome.settings``: engine, passes, rotation, ...) go to
    ``meta["ocr"]``, so a document says how it was read wherever it travels.
    """
    present = [c for c in configs if c.name in by_name]
    if not present:
        raise ValueError(f"{doc_id}: no OCR pass read the page")
    lead = next((c for c in present if by_name[c.name]), present[0])
    return Document(id=doc_id, words=by_name[lead.name], width=size[0], height=size[1],
                    source=source, page=page, ocr=f"{lead.engine}:{lead.name}",
                    variants={c.name: by_name[c.name] for c in present if c is not lead},
                    meta={"ocr": settings} if settings else {})
