"""Load a folder (or one file) of scanned images and PDFs by running tesseract over them.

Every image file is one ``Document`` (id = file stem, ``page`` 0); every PDF page is one
(id ``<stem>-p<page>``, ``page`` counted from 1), rendered with PyMuPDF. Files that cannot be
read, PDFs that cannot be opened and pages on which OCR finds no word become failures in the
``LoadReport``; the batch goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from extractor.loaders.report import DocumentLoadError, LoadReport
from extractor.ocr import (
    DEFAULT_VARIANTS,
    PDF_SUFFIXES,
    OcrConfig,
    OcrJob,
    document_from_words,
    ocr_batch,
)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pbm",
                  ".pgm", ".ppm"}
PDF_DPI = 200  # receipts' small print needs ~200 dpi for tesseract; 300 costs 2x for little


def find_inputs(path: str | Path) -> list[Path]:
    """Image and PDF files under ``path`` (recursively, sorted), or ``path`` itself if a file."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such file or folder")
    suffixes = IMAGE_SUFFIXES | PDF_SUFFIXES
    return sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)


def pdf_page_count(path: Path) -> int:
    """Number of pages, raising ``DocumentLoadError`` for a PDF PyMuPDF cannot open."""
    import pymupdf

    try:
        with pymupdf.open(str(path)) as pdf:
            if not pdf.is_pdf:
                raise DocumentLoadError(str(path), "not a PDF file")
            return pdf.page_count
    except DocumentLoadError:
        raise
    except Exception as e:  # pymupdf raises FileDataError and plain RuntimeErrors
        raise DocumentLoadError(str(path), f"cannot open PDF ({e})") from e


def plan_jobs(files: Sequence[Path], dpi: int = PDF_DPI) -> tuple[list[OcrJob], LoadReport]:
    """One OCR job per image file / PDF page; PDFs that cannot be opened are failures."""
    report = LoadReport()
    jobs: list[OcrJob] = []
    seen: set[str] = set()
    for f in files:
        if f.suffix.lower() in PDF_SUFFIXES:
            try:
                n = pdf_page_count(f)
            except DocumentLoadError as e:
                report.add_failure(e)
                continue
            if n == 0:
                report.add_failure(DocumentLoadError(str(f), "PDF has no pages"))
            new = [OcrJob(f"{f.stem}-p{i}", str(f), i, dpi) for i in range(1, n + 1)]
        else:
            new = [OcrJob(f.stem, str(f))]
        for job in new:
            if job.doc_id in seen:
                report.add_failure(DocumentLoadError(
                    job.path, f"duplicate document id {job.doc_id!r} (another file has the same "
                              "name stem)"))
                continue
            seen.add(job.doc_id)
            jobs.append(job)
    return jobs, report


def load_image_folder(path: str | Path, configs: Sequence[OcrConfig] | None = None,
                      workers: int | None = 2, cache_dir: str | Path | None = "default",
                      dpi: int = PDF_DPI, progress: bool = True) -> LoadReport:
    """OCR every image / PDF page under ``path`` into Documents (first config = words).

    ``configs`` defaults to the first default variant only (one pass is ~1 s per receipt);
    pass ``DEFAULT_VARIANTS`` for the extra variant passes the extractor can merge.
    """
    configs = list(configs or DEFAULT_VARIANTS[:1])
    try:
        files = find_inputs(path)
    except FileNotFoundError as e:
        report = LoadReport()
        report.add_failure(DocumentLoadError(str(path), str(e).split(": ", 1)[-1]))
        return report
    jobs, report = plan_jobs(files, dpi)
    for out in ocr_batch(jobs, configs, workers=workers, cache_dir=cache_dir, progress=progress):
        job = out.job
        where = job.path if job.page == 0 else f"{job.path} (page {job.page})"
        if out.error is not None:
            report.add_failure(DocumentLoadError(where, out.error))
            continue
        if not any(out.words.values()):
            report.add_failure(DocumentLoadError(where, "empty page: OCR found no words"))
            continue
        report.documents.append(document_from_words(job.doc_id, out.words, configs, out.size,
                                                    source=job.path, page=job.page))
    return report
