"""Turn whatever the user points at into ``Document`` objects: one entry point, ``load_documents``.

What ``spec`` may be (checked in this order):

* ``"demo"``: the synthetic demo receipts (``extractor.synth.load_demo``),
* a SROIE folder (has ``box/`` and ``key/``),
* a CORD folder (``train/json``, ``dev/json``; annotations only, no images),
* a ``.jsonl`` file of ``Document.export()`` lines (what ``kvloop data --out`` writes),
* a Label Studio JSON export (OCR template),
* a FUNSD annotation file, or a folder of them (``annotations/`` or ``*.json`` with ``form``),
* an image / PDF file or a folder of them, read by the OCR engines or from a PDF's own text
  layer (``extractor.loaders.images``).

Pages are read from their images with the passes of ``extractor.ocr.passes_by_name``: the
default engines (``--ocr-engines``) for image files and for ``ocr="images"``, the five tesseract
passes for ``ocr="tesseract"``. Every path that reads images reads them the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from extractor.document import Document
from extractor.loaders.report import DocumentLoadError, LoadFailure, LoadReport
from extractor.splits import check_split, split_documents, split_ids

if TYPE_CHECKING:
    from extractor.ocr import OcrJob, OcrPass, ReadOptions

OCR_MODES = ("provided", "images", "tesseract")
REREAD_MODES = ("images", "tesseract")
_EXPECTED = ("'demo', a SROIE folder (box/ and key/), a CORD folder (train/json, dev/json), a "
             ".jsonl file, a Label Studio JSON export, FUNSD JSON annotations, or image/PDF "
             "files")

__all__ = [
    "OCR_MODES",
    "DocumentLoadError",
    "LoadFailure",
    "LoadReport",
    "ReadPlan",
    "detect_format",
    "iter_documents",
    "load_documents",
    "plan_documents",
]


def detect_format(spec: str | Path) -> str:
    """``demo`` / ``sroie`` / ``cord`` / ``jsonl`` / ``labelstudio`` / ``funsd`` / ``images``, or raise
    ``ValueError`` naming the path and what was expected."""
    from extractor.loaders.cord import is_cord_dir
    from extractor.loaders.funsd import funsd_files, is_funsd_file
    from extractor.loaders.labelstudio import is_labelstudio_export
    from extractor.loaders.sroie import is_sroie_dir

    if str(spec) == "demo":
        return "demo"
    p = Path(spec)
    if not p.exists():
        raise ValueError(f"{p}: no such file or folder (expected {_EXPECTED})")
    if is_sroie_dir(p):
        return "sroie"
    if is_cord_dir(p):
        return "cord"
    if p.is_file() and p.suffix.lower() == ".jsonl":
        return "jsonl"
    if p.is_file() and p.suffix.lower() == ".json":
        if is_labelstudio_export(p):
            return "labelstudio"
        if is_funsd_file(p):
            return "funsd"
        raise ValueError(f"{p}: a JSON file that is neither a Label Studio export (a list of "
                         f"tasks) nor a FUNSD annotation (an object with 'form')")
    if p.is_dir() and funsd_files(p):
        return "funsd"
    from extractor.loaders.images import IMAGE_SUFFIXES, UNREADABLE_SUFFIXES, find_inputs
    from extractor.ocr import PDF_SUFFIXES

    readable = IMAGE_SUFFIXES | UNREADABLE_SUFFIXES | PDF_SUFFIXES
    if p.is_dir() and find_inputs(p) or p.suffix.lower() in readable:
        return "images"
    raise ValueError(f"{p}: not a dataset kvloop can read (expected {_EXPECTED})")


def load_documents(spec: str | Path, *, split: str = "all", ocr: str = "provided",
                   workers: int = 2, progress: bool = True, options: ReadOptions | None = None,
                   exclude: Collection[str] = ()) -> LoadReport:
    """Load ``spec`` (see the module docstring) and keep the documents of ``split``.

    ``ocr="images"`` re-reads the page images of datasets that carry their own OCR (SROIE,
    FUNSD, Label Studio) with the default OCR engines, ``ocr="tesseract"`` with the five
    tesseract passes (cached on disk); image folders are read with the default engines whatever
    ``ocr`` says but ``tesseract``, the demo set is tesseract-read, and JSONL holds whatever
    words were saved. ``options``
    set the page time limit and orientation detection; ids in ``exclude`` are not read.
    """
    report = LoadReport()
    for item in iter_documents(spec, split=split, ocr=ocr, workers=workers, progress=progress,
                               options=options, exclude=exclude):
        report.add(item)
    return report


def iter_documents(spec: str | Path, *, split: str = "all", ocr: str = "provided",
                   workers: int = 2, progress: bool = True, options: ReadOptions | None = None,
                   exclude: Collection[str] = ()) -> Iterator[Document | LoadFailure]:
    """``load_documents`` as a stream: each document of ``split`` (natural id order) or the
    failure in its place, pages that need tesseract read by a pool of workers as the stream is
    consumed, so a long folder never sits in memory and a consumer can write as it goes.

    The split is taken over the full listing before anything is read (a bad file does not
    shift it); documents whose id is in ``exclude`` are then skipped without being read. A bad
    ``spec`` raises here, before the stream starts.
    """
    plan = plan_documents(spec, split=split, ocr=ocr, progress=progress, exclude=exclude)
    return _iter_plan(plan, workers, progress, options)


@dataclass
class ReadPlan:
    """What reading a spec takes, before any page is OCR'd (``plan_documents``).

    ``failures`` are known from the listing; ``documents`` are read already (a dataset's own
    OCR), or are re-read from their images with ``configs`` when ``reread`` (``--ocr images``
    or ``tesseract`` on a dataset: ``extractor.loaders.sroie.iter_tesseract_documents``);
    ``jobs`` are image / PDF pages for the OCR passes ``configs``
    (``extractor.loaders.images.iter_image_documents``).
    Every engine (the local pool, ``extractor.model.ray_engine``) reads a plan the same way.
    """

    failures: list[LoadFailure] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    jobs: list[OcrJob] = field(default_factory=list)
    configs: list[OcrPass] = field(default_factory=list)
    reread: bool = False

    @property
    def needs_ocr(self) -> bool:
        return bool(self.jobs) or self.reread


def plan_documents(spec: str | Path, *, split: str = "all", ocr: str = "provided",
                   progress: bool = True, exclude: Collection[str] = ()) -> ReadPlan:
    """The ``ReadPlan`` of ``spec`` (see ``iter_documents``); a bad ``spec`` raises."""
    check_split(split)
    if ocr not in OCR_MODES:
        raise ValueError(f"ocr must be one of {', '.join(OCR_MODES)}, got {ocr!r}")
    fmt = detect_format(spec)
    if fmt == "images":
        return _plan_images(spec, split, ocr, exclude)
    if fmt == "sroie":
        from extractor.loaders.sroie import load_sroie, sroie_ids

        # Split the folder's full listing first, so only the needed receipts are read.
        ids = [i for i in split_ids(sroie_ids(spec), split) if i not in exclude]
        report = load_sroie(spec, ids, progress=progress)
    elif fmt == "cord":
        from extractor.loaders.cord import cord_files, load_cord

        if ocr in REREAD_MODES:
            raise ValueError(f"{spec}: CORD comes without page images, so --ocr {ocr} has "
                             f"nothing to read; use its own words (--ocr provided)")
        ids = [i for i in split_ids(cord_files(spec), split) if i not in exclude]
        report = load_cord(spec, ids, progress=progress)
    else:
        report = _load_other(fmt, spec, progress)
        report.documents = [d for d in split_documents(report.documents, split)
                            if d.id not in exclude]
    reread = ocr in REREAD_MODES and fmt in ("sroie", "funsd", "labelstudio")
    return ReadPlan(report.failures, report.documents,
                    configs=image_passes(ocr) if reread else [], reread=reread)


def image_passes(ocr: str) -> list[OcrPass]:
    """The OCR passes pages are read from their images with under ``ocr`` mode ``ocr``: the
    five tesseract passes for ``tesseract``, else the default engines (``--ocr-engines``)."""
    from extractor.ocr import passes_by_name

    return passes_by_name("tesseract" if ocr == "tesseract" else None)


def _iter_plan(plan: ReadPlan, workers: int, progress: bool,
               options: ReadOptions | None) -> Iterator[Document | LoadFailure]:
    from tqdm import tqdm

    from extractor.loaders.images import iter_image_documents
    from extractor.loaders.sroie import iter_tesseract_documents

    yield from plan.failures
    if plan.jobs:
        with tqdm(total=len(plan.jobs), desc="OCR", unit="page", disable=not progress) as bar:
            yield from iter_image_documents(plan.jobs, plan.configs, workers, options=options,
                                            on_page=bar.update)
    elif plan.reread:
        with tqdm(total=len(plan.documents), desc="tesseract", unit="page",
                  disable=not progress) as bar:
            yield from iter_tesseract_documents(plan.documents, workers=workers,
                                                configs=plan.configs, options=options,
                                                on_page=bar.update)
    else:
        yield from plan.documents


def _plan_images(spec: str | Path, split: str, ocr: str,
                 exclude: Collection[str]) -> ReadPlan:
    from extractor.loaders.images import plan_folder

    # A re-read mode asks for OCR: PDF pages are OCR'd even where they hold their own text.
    jobs, report = plan_folder(spec, text_layer=ocr not in REREAD_MODES)
    by_id = {j.doc_id: j for j in jobs}
    todo = [by_id[i] for i in split_ids(by_id, split) if i not in exclude]
    return ReadPlan(report.failures, jobs=todo, configs=image_passes(ocr))


def _load_other(fmt: str, spec: str | Path, progress: bool) -> LoadReport:
    if fmt == "demo":
        from extractor.synth import load_demo

        return load_demo(progress=progress)
    if fmt == "jsonl":
        from extractor.loaders.jsonl import load_jsonl

        return load_jsonl(spec)
    if fmt == "labelstudio":
        from extractor.loaders.labelstudio import load_labelstudio

        return load_labelstudio(spec)
    from extractor.loaders.funsd import load_funsd

    return load_funsd(spec, progress=progress)
