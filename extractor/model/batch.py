"""Batch extraction over many documents: chunks, bad documents isolated, a resumable output.

A chunk that raises is retried one document at a time, so one bad page costs only itself; each
failure is reported with the document id and the error.

``ResultsFile`` is the JSONL that ``kvloop extract`` writes: results are appended a chunk at a
time (one write, flushed and fsynced), so a run killed at any moment loses at most the chunk
in flight. Opened again, the file drops a torn last line, tells the run which ids are done (it
skips them) and refuses to mix in results of another model version or OCR mode. Every line is
``ExtractionResult.export()`` plus ``ocr``: the OCR mode of the run, the pass the words came
from, the other passes, and how tesseract read the page (engine, pass settings, rotation, dpi)
when it did (``Document.meta["ocr"]``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from extractor.document import Document, ExtractionResult
from extractor.loaders.report import LoadFailure
from extractor.model.predictor import KVPredictor
from extractor.straight_through import AcceptDecision

# Documents per predict call, in batches: enough pages to bucket by length (less padding), few
# enough that a failing chunk is cheap to retry one document at a time.
CHUNK_BATCHES = 4


@dataclass
class ExtractFailure:
    doc_id: str
    source: str | None
    reason: str


@dataclass
class BatchOutcome:
    """What a batch did: results written, documents skipped as already done, failures."""

    n_ok: int = 0
    failures: list[ExtractFailure] = field(default_factory=list)
    load_failures: list[LoadFailure] = field(default_factory=list)
    skipped: int = 0

    @property
    def n_failed(self) -> int:
        return len(self.failures) + len(self.load_failures)


def predict_isolated(predictor: KVPredictor, docs: Sequence[Document], k: int, batch_size: int,
                     outcome: BatchOutcome) -> list[ExtractionResult]:
    """Results of ``docs`` (in order) from one predict call, or, when it raises, from one call
    per document, the documents that still raise recorded in ``outcome.failures``."""
    try:
        return predictor.predict(list(docs), k=k, batch_size=batch_size)
    except Exception:  # noqa: BLE001 - isolate the bad document below
        results: list[ExtractionResult] = []
    for doc in docs:
        try:
            results += predictor.predict([doc], k=k, batch_size=batch_size)
        except Exception as e:  # noqa: BLE001 - reported, the batch goes on
            outcome.failures.append(ExtractFailure(doc.id, doc.source,
                                                   f"{type(e).__name__}: {e}"))
    return results


def extract_batches(predictor: KVPredictor, docs: Sequence[Document], k: int = 5,
                    batch_size: int = 8, outcome: BatchOutcome | None = None,
                    progress: bool = True) -> Iterator[ExtractionResult]:
    """Yield results in document order; failures go to ``outcome.failures``."""
    outcome = outcome if outcome is not None else BatchOutcome()
    chunk = max(1, batch_size * CHUNK_BATCHES)
    bar = tqdm(total=len(docs), desc="extract", unit="doc", disable=not progress)
    for i in range(0, len(docs), chunk):
        part = list(docs[i:i + chunk])
        for r in predict_isolated(predictor, part, k, batch_size, outcome):
            outcome.n_ok += 1
            yield r
        bar.update(len(part))
    bar.close()


# -- the resumable results file --------------------------------------------------------------

class ResultsFileError(ValueError):
    """The output cannot be appended to; the message says why and what to do."""


def ocr_record(doc: Document, mode: str) -> dict[str, Any]:
    """How a document's words were produced, as each result line records it."""
    return {"mode": mode, "words": doc.ocr, "variants": list(doc.variants),
            **(doc.meta.get("ocr") or {})}


def result_line(result: ExtractionResult, doc: Document, mode: str,
                decisions: Mapping[str, AcceptDecision] | None = None) -> dict[str, Any]:
    """The result, the OCR that read it and, per field, whether it would be auto-accepted
    and why (``KVPredictor.accept_decisions``)."""
    line = {**result.export(), "ocr": ocr_record(doc, mode)}
    if decisions is not None:
        line["auto_accept"] = {k: d.export() for k, d in decisions.items()}
    return line


class ResultsFile:
    """An append-only JSONL of result lines that a later run can resume (module docstring).

    ``open()`` locks the file (a second writer is refused), repairs a torn last line and returns
    the ids already written; ``append`` writes lines durably; ``close()`` unlocks.
    """

    def __init__(self, path: str | Path, model_version: str, ocr_mode: str,
                 overwrite: bool = False) -> None:
        self.path = Path(path)
        self.model_version = model_version
        self.ocr_mode = ocr_mode
        self.overwrite = overwrite
        self.fd: int | None = None
        self.torn = False  # whether open() dropped a torn last line

    def open(self) -> set[str]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ResultsFileError(f"{self.path}: another kvloop extract is writing this file; "
                                   "wait for it or use another --out") from None
        self.fd = fd
        try:
            if self.overwrite:
                os.ftruncate(fd, 0)
                return set()
            done, good_end, size = self._scan()
            if good_end < size:  # a run killed mid-write left half a line: drop it
                os.ftruncate(fd, good_end)
                self.torn = True
            return done
        except BaseException:
            self.close()
            raise

    def _scan(self) -> tuple[set[str], int, int]:
        """(ids written, end of the last complete line, file size); foreign lines raise."""
        done: set[str] = set()
        good_end = 0
        with open(self.path, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                if not raw.endswith(b"\n"):
                    break  # torn: only ever the last line
                if raw.strip():
                    done.add(self._check(raw, lineno))
                good_end += len(raw)
            size = fh.seek(0, os.SEEK_END)
        return done, good_end, size

    def _check(self, raw: bytes, lineno: int) -> str:
        where = f"{self.path}:{lineno}"
        try:
            line = json.loads(raw)
            doc_id, version = str(line["doc_id"]), str(line["model_version"])
            mode = (line.get("ocr") or {}).get("mode")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ResultsFileError(f"{where}: not a kvloop result line; refusing to append to "
                                   "this file (use another --out, or --overwrite to replace "
                                   "it)") from None
        if version != self.model_version:
            raise ResultsFileError(f"{where}: holds results of {version}, this run uses "
                                   f"{self.model_version}; use another --out, or --overwrite "
                                   "to replace them")
        if mode != self.ocr_mode:
            raise ResultsFileError(f"{where}: holds results read with --ocr {mode}, this run "
                                   f"uses --ocr {self.ocr_mode}; use another --out, or "
                                   "--overwrite to replace them")
        return doc_id

    def append(self, lines: Iterable[dict[str, Any]]) -> int:
        """Write ``lines`` with one ``write`` and fsync them; returns how many."""
        if self.fd is None:
            raise RuntimeError("ResultsFile.append before open()")
        data = [json.dumps(line, ensure_ascii=False) + "\n" for line in lines]
        if data:
            payload = "".join(data).encode("utf-8")
            view = memoryview(payload)
            while view:  # os.write may write less than asked
                view = view[os.write(self.fd, view):]
            os.fsync(self.fd)
        return len(data)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None


def new_documents(items: Iterable[Document | LoadFailure], done: set[str],
                  outcome: BatchOutcome) -> Iterator[Document]:
    """The documents of ``items`` to extract: those not in ``done``, each id once. Load
    failures go to ``outcome.load_failures``; an id met again is a failure (a resume could
    not tell the two apart)."""
    seen: dict[str, str | None] = {}
    for item in items:
        if isinstance(item, LoadFailure):
            outcome.load_failures.append(item)
            continue
        if item.id in done:
            continue
        if item.id in seen:
            outcome.failures.append(ExtractFailure(item.id, item.source, (
                f"duplicate document id (already read from {seen[item.id] or 'the input'})")))
            continue
        seen[item.id] = item.source
        yield item


def extract_to_file(predictor: KVPredictor, items: Iterable[Document | LoadFailure],
                    out: ResultsFile, done: set[str], ocr_mode: str, k: int = 5,
                    batch_size: int = 8, progress: bool = True) -> BatchOutcome:
    """Extract every document of ``items`` not in ``done`` and append its line to ``out``,
    a chunk at a time; load failures and failed documents go to the outcome.

    A document id met twice in one input is extracted once, the second is a failure
    (``new_documents``).
    """
    outcome = BatchOutcome(skipped=len(done))
    size = max(1, batch_size * CHUNK_BATCHES)
    chunk: list[Document] = []
    bar = tqdm(desc="extract", unit="doc", disable=not progress)

    def flush() -> None:
        by_id = {d.id: d for d in chunk}
        results = predict_isolated(predictor, chunk, k, batch_size, outcome)
        outcome.n_ok += out.append(result_line(r, by_id[r.doc_id], ocr_mode,
                                                   predictor.accept_decisions(by_id[r.doc_id], r))
                                       for r in results)
        bar.update(len(chunk))
        chunk.clear()

    for doc in new_documents(items, done, outcome):
        chunk.append(doc)
        if len(chunk) >= size:
            flush()
    if chunk:
        flush()
    bar.close()
    return outcome
