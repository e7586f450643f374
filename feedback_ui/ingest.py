"""Uploads: files an operator drops in the UI -> OCR -> extraction -> the review queue.

Each file is handled whole: its pages are OCR'd (``extractor.loaders.images``), run through the
model (a ``KVPredictor``; with ``rerank``, the ``RerankingPredictor`` that reorders each field's
k-best by a reward model, as ``kvloop extract --rerank`` does), and stored with their results
in one transaction. A file with an unreadable image, a
PDF that does not open, or a page with no words is rejected with the reason, and nothing of it
is stored; the other files of the batch go on.

The browser sends any name and any bytes. Before anything is written or decoded, a file is
refused if its type is not an image or PDF, it is empty or larger than ``max_bytes``, or its
header claims more pixels than ``max_pixels`` (``imaging.pixel_problem``). It is then kept
under a name made from its own (``safe_stem``: no folders, no ``..``, ASCII only, at most 60
characters) and its content hash, never over another upload (``keep_upload``).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from PIL import Image

from extractor.loaders.images import IMAGE_SUFFIXES, load_image_folder
from extractor.ocr import PDF_SUFFIXES
from feedback_ui.imaging import MAX_PIXELS, pixel_problem

if TYPE_CHECKING:
    from extractor.model.predictor import KVPredictor
    from feedback_ui.service import ReviewService

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_STEM_CHARS = 60
MAX_SHOWN_NAME_CHARS = 120
MAX_UPLOAD_MB = 50  # `kvloop review --max-upload-mb`; Streamlit refuses bigger files too
DIGEST_CHARS = 16  # 64 bits of the content hash in the stored name (and document id)


def base_name(name: str) -> str:
    """The last component of a browser-sent file name (``/`` or ``\\`` separated)."""
    return re.split(r"[\\/]", name)[-1]


def upload_suffix(name: str) -> str:
    return PurePosixPath(base_name(name)).suffix.lower()


def safe_stem(name: str) -> str:
    """A stem for the kept file (and the document id) that cannot name another folder:
    the base name's stem in ``[A-Za-z0-9_.-]``, no leading or trailing dots, at most
    ``MAX_STEM_CHARS``; ``upload`` when nothing of it is left."""
    stem = PurePosixPath(base_name(name)).stem
    return _SAFE.sub("_", stem).strip("._-")[:MAX_STEM_CHARS].strip("._-") or "upload"


def shown_name(name: str) -> str:
    """``name`` fit for a message: control characters as ``?``, long names cut."""
    clean = "".join("?" if unicodedata.category(c).startswith("C") else c for c in name)
    if len(clean) > MAX_SHOWN_NAME_CHARS:
        clean = clean[:MAX_SHOWN_NAME_CHARS - 1] + "…"
    return clean


def keep_upload(upload_dir: str | Path, name: str, data: bytes) -> Path:
    """Write ``data`` under ``upload_dir`` as ``<safe stem>-<sha256 prefix><suffix>``.

    The same bytes under the same name give the same file (and so the same document id: a
    repeated upload is "already in the store"); other bytes never replace a kept file, even
    when the names collide (the next free ``-N`` name is taken). The file appears complete or
    not at all (written aside, then hard-linked into place, which fails if the name is taken).
    """
    folder = Path(upload_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stem, suffix = safe_stem(name), upload_suffix(name)
    digest = hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        n = 0
        while True:
            path = folder / f"{stem}-{digest}{f'-{n}' if n else ''}{suffix}"
            try:
                os.link(tmp, path)
                return path
            except FileExistsError:
                if path.read_bytes() == data:
                    return path
            n += 1
    finally:
        os.unlink(tmp)


@dataclass
class UploadReport:
    """Pages added to the queue, and every rejected file with its reason."""

    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


class Uploader:
    """Holds the loaded model; files are kept under ``upload_dir`` so the UI can show them."""

    def __init__(self, predictor: KVPredictor, upload_dir: str | Path,
                 ocr_cache: str | Path | None = "default", *,
                 max_bytes: int = MAX_UPLOAD_MB * 2**20, max_pixels: int = MAX_PIXELS) -> None:
        self.predictor = predictor
        self.upload_dir = Path(upload_dir)
        self.ocr_cache = ocr_cache
        self.max_bytes, self.max_pixels = max_bytes, max_pixels

    @classmethod
    def load(cls, model_dir: str | Path, upload_dir: str | Path,
             rerank: str | Path | None = None, *, max_bytes: int = MAX_UPLOAD_MB * 2**20
             ) -> Uploader:
        """The model in ``model_dir`` (its k-best reranked by the reward model in ``rerank``,
        when given: ``extractor.model.predictor.load_predictor``)."""
        from extractor.model.predictor import load_predictor

        return cls(load_predictor(model_dir, rerank=rerank), upload_dir, max_bytes=max_bytes)

    def refusal(self, name: str, data: bytes) -> str | None:
        """Why the file must not be kept or decoded, from its name, size and header alone."""
        suffix = upload_suffix(name)
        if suffix not in IMAGE_SUFFIXES | PDF_SUFFIXES:
            return (f"unsupported file type {suffix or '(none)'}; upload images (jpg, png, "
                    "tif) or PDFs")
        if not data:
            return "the file is empty"
        if len(data) > self.max_bytes:
            return (f"the file is {len(data) / 2**20:,.1f} MB, more than the "
                    f"{self.max_bytes / 2**20:,.0f} MB allowed")
        return pixel_problem(data, suffix, self.max_pixels)

    def ingest_file(self, service: ReviewService, name: str, data: bytes,
                    report: UploadReport) -> None:
        problem = self.refusal(name, data)
        if problem:
            report.failures.append((shown_name(name), problem))
            return
        path = keep_upload(self.upload_dir, name, data)
        loaded = load_image_folder(path, workers=1, cache_dir=self.ocr_cache, progress=False)
        if loaded.failures:
            for f in loaded.failures:
                reason = f.reason if f.path == str(path) else f"{f.path}: {f.reason}"
                report.failures.append((shown_name(name),
                                        reason.replace(str(path), shown_name(name))))
            return
        if not loaded.documents:
            report.failures.append((shown_name(name), "no page could be read"))
            return
        known = service.store.documents(d.id for d in loaded.documents)
        # The same page under another file name (or from a dataset the store was loaded
        # with) reads to the same words: it is that document, not a second one.
        hashes = {d.id: d.content_hash() for d in loaded.documents if d.id not in known}
        same = service.store.ids_by_content(hashes.values())
        docs = []
        for d in loaded.documents:
            if d.id in known:
                report.skipped.append(d.id)
            elif hashes[d.id] in same:
                report.skipped.append(f"{d.id} (the same page as {same[hashes[d.id]]})")
            else:
                docs.append(d)
        if not docs:
            return
        results = self.predictor.predict(docs)
        service.add(docs, results)
        report.added += [d.id for d in docs]

    def ingest(self, service: ReviewService, files: list[tuple[str, bytes]]) -> UploadReport:
        """OCR, extract and queue each (file name, bytes); a bad file is reported, not raised."""
        report = UploadReport()
        for name, data in files:
            try:
                self.ingest_file(service, name, data, report)
            except (ValueError, OSError, RuntimeError, Image.DecompressionBombError) as e:
                report.failures.append((shown_name(name), f"{e.__class__.__name__}: {e}"))
        return report
