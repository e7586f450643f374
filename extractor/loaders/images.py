"""Load a folder (or one file) of scanned images and PDFs by running the OCR engines over them.

Every image file is one ``Document`` (``page`` 0), but for a multi-frame still image (a
scanner's or fax server's TIFF), each of whose frames is one (``page`` counted from 1); every
PDF page is one (``page`` counted from 1), read from its own text layer when it has a usable
one (``extractor.ocr.textlayer``), else rendered with PyMuPDF and OCR'd. A document's id is the
file's stem (``<stem>-p<page>`` for a PDF page or a frame); files whose stems collide
(``scan.jpg`` and ``scan.png``, or ``a/scan.jpg`` and ``b/scan.jpg``) take their whole name, then their path under the folder, so every file is read
and ids stay the same from one run to the next (``document_ids``). Files that cannot be read,
PDFs that cannot be opened and pages on which OCR finds no word become failures in the
``LoadReport``; the batch goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path

from extractor.document import TEXT_LAYER_OCR, Document
from extractor.loaders.report import DocumentLoadError, LoadFailure, LoadReport, printable
from extractor.ocr import (
    PDF_SUFFIXES,
    TEXT_LAYER_PASS,
    OcrJob,
    OcrOutcome,
    OcrPass,
    ReadOptions,
    document_from_words,
    image_frames,
    import_pymupdf,
    iter_ocr,
    passes_by_name,
)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pbm",
                  ".pgm", ".ppm"}
# Image formats kvloop cannot decode: listed, so that each gets a record naming its format
# instead of being passed over in silence.
UNREADABLE_SUFFIXES = {".heic", ".heif", ".djvu", ".djv", ".jxl", ".svg", ".jb2", ".jbig2"}
PDF_DPI = 200  # receipts' small print needs ~200 dpi for tesseract; 300 costs 2x for little


def find_inputs(path: str | Path) -> list[Path]:
    """Image and PDF files under ``path`` (recursively, sorted), or ``path`` itself if a file."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such file or folder")
    suffixes = IMAGE_SUFFIXES | UNREADABLE_SUFFIXES | PDF_SUFFIXES
    return sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)


def pdf_page_count(path: Path) -> int:
    """Number of pages, raising ``DocumentLoadError`` for a PDF PyMuPDF cannot open or read."""
    pymupdf = import_pymupdf()

    try:
        with pymupdf.open(str(path)) as pdf:
            if not pdf.is_pdf:
                raise DocumentLoadError(str(path), "not a PDF file")
            if pdf.needs_pass:
                raise DocumentLoadError(str(path), "PDF is encrypted (password-protected); "
                                                   "decrypt it first")
            return pdf.page_count
    except DocumentLoadError:
        raise
    except Exception as e:  # pymupdf raises FileDataError and plain RuntimeErrors
        raise DocumentLoadError(str(path), f"cannot open PDF ({e})") from e


def _id_bases(f: Path, root: Path | None) -> list[str]:
    """Ever longer names for a file: stem, name, path under ``root`` (printable text)."""
    rel = f.relative_to(root).as_posix() if root is not None and f.is_relative_to(root) else (
        f.as_posix())
    return [printable(f.stem), printable(f.name), printable(rel)]


def document_ids(pages: dict[Path, int], root: Path | None = None) -> dict[Path, list[str]]:
    """Distinct document ids for the pages of each file (``pages``: file -> page count, 0 for
    an image): the stem where it is unique, else the file name, else its path under ``root``.

    A file takes a longer name only when its shorter one collides, so ids do not depend on the
    order files are listed in.
    """
    level = dict.fromkeys(pages, 0)

    def ids(f: Path) -> list[str]:
        base = _id_bases(f, root)[level[f]]
        return [base] if pages[f] == 0 else [f"{base}-p{i}" for i in range(1, pages[f] + 1)]

    while True:
        owners: dict[str, list[Path]] = {}
        for f in pages:
            for doc_id in ids(f):
                owners.setdefault(doc_id, []).append(f)
        clash = {f for fs in owners.values() if len(set(fs)) > 1 for f in fs if level[f] < 2}
        if not clash:  # unique, or only full paths left (plan_jobs reports a clash of those)
            return {f: ids(f) for f in pages}
        for f in clash:
            level[f] += 1


def plan_jobs(files: Sequence[Path], dpi: int = PDF_DPI, root: Path | None = None,
              text_layer: bool = True) -> tuple[list[OcrJob], LoadReport]:
    """One OCR job per image file, frame of a multi-frame image, or PDF page; PDFs that
    cannot be opened are failures. ``text_layer=False`` OCRs PDF pages whatever their text."""
    report = LoadReport()
    pages: dict[Path, int] = {}
    notes: dict[Path, str | None] = {}
    for f in files:
        if f.suffix.lower() not in PDF_SUFFIXES:
            frames = image_frames(f)
            pages[f], notes[f] = frames.pages, frames.note
            continue
        try:
            n = pdf_page_count(f)
        except DocumentLoadError as e:
            report.add_failure(e)
            continue
        if n == 0:
            report.add_failure(DocumentLoadError(str(f), "PDF has no pages (damaged, or not "
                                                         "a PDF)"))
            continue
        pages[f] = n
    jobs: list[OcrJob] = []
    seen: set[str] = set()
    for f, ids in document_ids(pages, root).items():
        for page, doc_id in enumerate(ids, start=1 if pages[f] else 0):
            if doc_id in seen:  # only when even the paths collide, which they cannot
                report.add_failure(DocumentLoadError(str(f), f"duplicate document id {doc_id!r}"))
                continue
            seen.add(doc_id)
            jobs.append(OcrJob(doc_id, str(f), page, dpi, text_layer, notes.get(f)))
    return jobs, report


def plan_folder(path: str | Path, dpi: int = PDF_DPI,
                text_layer: bool = True) -> tuple[list[OcrJob], LoadReport]:
    """``plan_jobs`` for every input under ``path``; a missing path is the one failure."""
    try:
        files = find_inputs(path)
    except FileNotFoundError as e:
        report = LoadReport()
        report.add_failure(DocumentLoadError(str(path), str(e).split(": ", 1)[-1]))
        return [], report
    root = Path(path) if Path(path).is_dir() else None
    return plan_jobs(files, dpi, root, text_layer)


def where(job: OcrJob) -> str:
    """How a failure names a page: the file, and the page of a PDF or multi-frame image."""
    return job.path if job.page == 0 else f"{job.path} (page {job.page})"


def outcome_document(out: OcrOutcome, configs: Sequence[OcrPass]) -> Document | LoadFailure:
    """The page's Document, or the failure (file and reason) when it has no words."""
    job = out.job
    if out.error is not None:
        return _failure(DocumentLoadError(where(job), out.error))
    if not any(out.words.values()):
        return _failure(DocumentLoadError(where(job), "empty page: OCR found no words"))
    if out.from_text_layer:
        return Document(job.doc_id, out.words[TEXT_LAYER_PASS], out.size[0], out.size[1],
                        source=printable(job.path), page=job.page, ocr=TEXT_LAYER_OCR,
                        meta={"ocr": out.settings(configs)})
    return document_from_words(job.doc_id, out.words, configs, out.size,
                               source=printable(job.path), page=job.page,
                               settings=out.settings(configs))


def _failure(err: DocumentLoadError) -> LoadFailure:
    return LoadFailure(err.path, err.reason)


def iter_image_documents(jobs: Sequence[OcrJob], configs: Sequence[OcrPass],
                         workers: int | None = 2, cache_dir: str | Path | None = "default",
                         options: ReadOptions | None = None,
                         on_page: Callable[[], None] | None = None,
                         ) -> Iterator[Document | LoadFailure]:
    """Each job's Document or failure, in job order, as the OCR pool reads them."""
    for out in iter_ocr(jobs, configs, workers, cache_dir, options):
        if on_page is not None:
            on_page()
        yield outcome_document(out, configs)


def load_image_folder(path: str | Path, configs: Sequence[OcrPass] | None = None,
                      workers: int | None = 2, cache_dir: str | Path | None = "default",
                      dpi: int = PDF_DPI, progress: bool = True,
                      options: ReadOptions | None = None,
                      exclude: Collection[str] = (), text_layer: bool = True) -> LoadReport:
    """OCR every image / PDF page under ``path`` into Documents (first pass = words, the
    others variants the extractor merges).

    ``configs`` defaults to the default engines' passes (``extractor.ocr.passes_by_name``),
    the same every other path that reads images uses. Pages whose id is in ``exclude`` are
    not read; ``text_layer=False`` OCRs PDF pages that hold their own text too.
    """
    from tqdm import tqdm

    configs = list(configs or passes_by_name())
    jobs, report = plan_folder(path, dpi, text_layer)
    jobs = [j for j in jobs if j.doc_id not in exclude]
    with tqdm(total=len(jobs), desc="OCR", unit="page", disable=not progress) as bar:
        for item in iter_image_documents(jobs, configs, workers, cache_dir, options, bar.update):
            report.add(item)
    return report

