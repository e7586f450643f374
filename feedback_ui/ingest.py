"""Uploads: files an operator drops in the UI -> OCR -> extraction -> the review queue.

Each file is handled whole: its pages are OCR'd (``extractor.loaders.images``), run through the
model (a ``KVPredictor``; with ``rerank``, the ``RerankingPredictor`` that reorders each field's
k-best by a reward model, as ``kvloop extract --rerank`` does), and stored with their results
in one transaction. A file with an unreadable image, a
PDF that does not open, or a page with no words is rejected with the reason, and nothing of it
is stored; the other files of the batch go on.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from extractor.loaders.images import IMAGE_SUFFIXES, load_image_folder
from extractor.ocr import PDF_SUFFIXES

if TYPE_CHECKING:
    from extractor.model.predictor import KVPredictor
    from feedback_ui.service import ReviewService

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class UploadReport:
    """Pages added to the queue, and every rejected file with its reason."""

    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


class Uploader:
    """Holds the loaded model; files are kept under ``upload_dir`` so the UI can show them."""

    def __init__(self, predictor: KVPredictor, upload_dir: str | Path,
                 ocr_cache: str | Path | None = "default") -> None:
        self.predictor = predictor
        self.upload_dir = Path(upload_dir)
        self.ocr_cache = ocr_cache

    @classmethod
    def load(cls, model_dir: str | Path, upload_dir: str | Path,
             rerank: str | Path | None = None) -> Uploader:
        """The model in ``model_dir`` (its k-best reranked by the reward model in ``rerank``,
        when given: ``extractor.model.predictor.load_predictor``)."""
        from extractor.model.predictor import load_predictor

        return cls(load_predictor(model_dir, rerank=rerank), upload_dir)

    def _keep(self, name: str, data: bytes) -> Path:
        """Store the bytes under a content-derived name (same file twice -> same id)."""
        stem, suffix = Path(name).stem, Path(name).suffix.lower()
        digest = hashlib.sha256(data).hexdigest()[:8]
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        path = self.upload_dir / f"{_SAFE.sub('_', stem)[:60]}-{digest}{suffix}"
        if not path.exists():
            path.write_bytes(data)
        return path

    def ingest_file(self, service: ReviewService, name: str, data: bytes,
                    report: UploadReport) -> None:
        suffix = Path(name).suffix.lower()
        if suffix not in IMAGE_SUFFIXES | PDF_SUFFIXES:
            report.failures.append((name, (f"unsupported file type {suffix or '(none)'}; "
                                           "upload images (jpg, png, tif) or PDFs")))
            return
        if not data:
            report.failures.append((name, "the file is empty"))
            return
        path = self._keep(name, data)
        loaded = load_image_folder(path, workers=1, cache_dir=self.ocr_cache, progress=False)
        if loaded.failures:
            for f in loaded.failures:
                reason = f.reason if f.path == str(path) else f"{f.path}: {f.reason}"
                report.failures.append((name, reason.replace(str(path), name)))
            return
        if not loaded.documents:
            report.failures.append((name, "no page could be read"))
            return
        known = service.store.documents(d.id for d in loaded.documents)
        docs = [d for d in loaded.documents if d.id not in known]
        report.skipped += [d.id for d in loaded.documents if d.id in known]
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
            except (ValueError, OSError, RuntimeError) as e:
                report.failures.append((name, f"{e.__class__.__name__}: {e}"))
        return report
