"""kvloop's own JSONL: one ``Document.export()`` per line, as ``kvloop data --out`` writes it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from extractor.document import Document, write_jsonl
from extractor.loaders.report import DocumentLoadError, LoadReport


def load_jsonl(path: str | Path) -> LoadReport:
    """Every valid document line; a bad line becomes a failure named ``file:line``."""
    path = Path(path)
    report = LoadReport()
    try:
        fh = path.open(encoding="utf-8")
    except OSError as e:
        raise DocumentLoadError(str(path), f"cannot open JSONL file ({e.strerror or e})") from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                report.documents.append(parse_document_line(line))
            except (ValueError, TypeError) as e:
                report.add_failure(DocumentLoadError(f"{path}:{lineno}", str(e)))
    return report


def parse_document_line(line: str) -> Document:
    """One JSONL line -> ``Document``; raises ``ValueError`` / ``TypeError`` saying what is
    wrong."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg} column {e.colno})") from None
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    try:
        return Document.from_dict(data)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"not a kvloop document ({e.__class__.__name__}: {e})") from None


def write_documents(path: str | Path, docs: Iterable[Document]) -> int:
    """Write documents one per line (parent folders created); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_jsonl(str(path), docs)
