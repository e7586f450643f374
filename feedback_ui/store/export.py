"""Export the store's corrections as JSONL files or ``datasets.Dataset`` objects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from extractor.document import write_jsonl
from feedback_ui.store.store import FeedbackStore

if TYPE_CHECKING:
    import datasets

Kind = Literal["corrected", "pairs"]
KINDS: tuple[str, ...] = ("corrected", "pairs")


def _records(store: FeedbackStore, kind: str, **filters: Any) -> Iterator[Any]:
    if kind == "corrected":
        return store.iter_corrected(**filters)
    if kind == "pairs":
        return store.iter_preference_pairs(**filters)
    raise ValueError(f"export kind must be one of {KINDS}, got {kind!r}")


def export_jsonl(store: FeedbackStore, path: str, kind: str = "corrected",
                 **filters: Any) -> int:
    """Write corrected documents or preference pairs to ``path``; returns the row count."""
    return write_jsonl(path, _records(store, kind, **filters))


def _flat(row: dict[str, Any], kind: str) -> dict[str, Any]:
    # Arrow needs fixed struct keys: the nested Document and the per-field dicts go as JSON
    # text, the words and boxes as plain lists a tokenizer can take directly.
    doc = row.pop("document")
    row["words"] = [w["text"] for w in doc["words"]]
    row["boxes"] = [w["box"] for w in doc["words"]]
    row["width"], row["height"] = doc["width"], doc["height"]
    row["document_json"] = json.dumps(doc, ensure_ascii=False)
    if kind == "corrected":
        row["fields"] = list(row["values"])
        row["values"] = [row["values"][k] for k in row["fields"]]
        row["actions"] = [row["actions"][k] for k in row["fields"]]
    return row


def to_dataset(store: FeedbackStore, kind: str = "corrected", **filters: Any
               ) -> datasets.Dataset:
    """Corrected documents or preference pairs as a ``datasets.Dataset`` (one row each)."""
    import datasets

    rows = [_flat(r.export(), kind) for r in _records(store, kind, **filters)]
    return datasets.Dataset.from_list(rows)
