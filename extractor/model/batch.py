"""Batch extraction over many documents: chunks with a progress bar, bad documents isolated.

A chunk that raises is retried one document at a time, so one bad page costs only itself; each
failure is reported with the document id and the error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from tqdm import tqdm

from extractor.document import Document, ExtractionResult
from extractor.model.predictor import KVPredictor

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
    n_ok: int = 0
    failures: list[ExtractFailure] = field(default_factory=list)


def extract_batches(predictor: KVPredictor, docs: Sequence[Document], k: int = 5,
                    batch_size: int = 8, outcome: BatchOutcome | None = None,
                    progress: bool = True) -> Iterator[ExtractionResult]:
    """Yield results in document order; failures go to ``outcome.failures``."""
    outcome = outcome if outcome is not None else BatchOutcome()
    chunk = max(1, batch_size * CHUNK_BATCHES)
    bar = tqdm(total=len(docs), desc="extract", unit="doc", disable=not progress)
    for i in range(0, len(docs), chunk):
        part = list(docs[i:i + chunk])
        try:
            results = predictor.predict(part, k=k, batch_size=batch_size)
        except Exception:  # noqa: BLE001 - isolate the bad document below
            results = []
            for doc in part:
                try:
                    results += predictor.predict([doc], k=k, batch_size=batch_size)
                except Exception as e:  # noqa: BLE001 - reported, the batch goes on
                    outcome.failures.append(ExtractFailure(doc.id, doc.source,
                                                           f"{type(e).__name__}: {e}"))
        for r in results:
            outcome.n_ok += 1
            yield r
        bar.update(len(part))
    bar.close()
