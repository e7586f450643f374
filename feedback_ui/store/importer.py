"""Import documents and extraction results from kvloop JSONL files into a store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from extractor.document import Document, ExtractionResult, read_jsonl
from feedback_ui.store.store import FeedbackStore

T = TypeVar("T")


@dataclass
class ImportReport:
    """How many documents/results were stored and every line that was not, with why."""

    documents: int = 0
    results: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [(f"stored {self.documents} new document(s), {self.results} result(s), "
                  f"{len(self.failures)} failure(s)")]
        return "\n".join(lines + [f"  FAILED {f}" for f in self.failures])


def _parse(path: Path, parse: Callable[[dict[str, Any]], T], report: ImportReport) -> list[T]:
    out: list[T] = []
    lineno = 0
    try:
        for lineno, d in enumerate(tqdm(read_jsonl(str(path)), desc=path.name, unit="line"), 1):
            try:
                out.append(parse(d))
            except (KeyError, ValueError, TypeError) as e:
                report.failures.append(f"{path} record {lineno}: {e.__class__.__name__}: {e}")
    except ValueError as e:  # a line that is not JSON stops reading that file
        report.failures.append(str(e))
    except OSError as e:
        report.failures.append(f"{path}: cannot read ({e.strerror or e})")
    return out


def import_jsonl(store: FeedbackStore, documents: str | Path | None,
                 results: str | Path | None, dataset: str = "default") -> ImportReport:
    """Store documents and results; bad records are reported and skipped, the rest is stored
    in one transaction (all of it or, on a database error, none)."""
    report = ImportReport()
    docs: list[Document] = _parse(Path(documents), Document.from_dict, report) if documents else []
    res: list[ExtractionResult] = _parse(Path(results), ExtractionResult.from_dict, report) if results else []
    known = {d.id for d in docs} | set(store.documents(r.doc_id for r in res))
    good = []
    for r in res:
        if r.doc_id in known:
            good.append(r)
        else:
            report.failures.append(f"{results}: result for unknown document {r.doc_id!r}")
    report.documents, report.results = store.add_batch(docs, good, dataset=dataset)
    return report
