"""Export the store's feedback as JSONL files or ``datasets.Dataset`` objects.

``corrected`` writes one line per reviewed document with its page embedded. ``pairs`` writes
one line per preference pair referring to its page by ``doc_id``, and each page those pairs
need once, to a documents file beside it (``Document.export()`` lines, as ``kvloop data``
writes): a page is tens of kilobytes and a document gives several pairs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from extractor.document import write_jsonl
from feedback_ui.store.feedback import preference_pairs
from feedback_ui.store.records import FeedbackFilter
from feedback_ui.store.store import FeedbackStore

if TYPE_CHECKING:
    import datasets

Kind = Literal["corrected", "pairs"]
KINDS: tuple[str, ...] = ("corrected", "pairs")


def documents_path(path: str | Path) -> Path:
    """Where a pairs export puts its pages by default: ``pairs.jsonl`` -> ``pairs.documents.jsonl``."""
    p = Path(path)
    return p.with_name(f"{p.stem}.documents.jsonl")


def _check(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"export kind must be one of {KINDS}, got {kind!r}")


def _write(fh: Any, d: dict[str, Any]) -> None:
    fh.write(json.dumps(d, ensure_ascii=False) + "\n")


def _export_pairs(store: FeedbackStore, path: str | Path, docs_path: Path,
                  flt: FeedbackFilter | None, filters: dict[str, Any]) -> int:
    # One pass over iter_feedback: a page is written when its first pair is.
    n = 0
    with open(path, "w", encoding="utf-8") as out, open(docs_path, "w", encoding="utf-8") as dout:
        for fb in store.iter_feedback(flt, **filters):
            pairs = list(preference_pairs(fb.document.id, fb.fields))
            if pairs:
                _write(dout, fb.document.export())
            for p in pairs:
                _write(out, p.export())
            n += len(pairs)
    return n


def export_jsonl(store: FeedbackStore, path: str | Path, kind: str = "corrected",
                 flt: FeedbackFilter | None = None, *, documents: str | Path | None = None,
                 **filters: Any) -> int:
    """Write corrected documents or preference pairs to ``path``; returns the row count.

    For ``pairs`` the pages go to ``documents`` (default ``documents_path(path)``).
    ``flt`` / ``filters`` select the fields as in ``FeedbackStore.iter_feedback``.
    """
    _check(kind)
    if kind == "pairs":
        return _export_pairs(store, path, Path(documents or documents_path(path)), flt, filters)
    return write_jsonl(str(path), store.iter_corrected(flt, **filters))


def _corrected_rows(store: FeedbackStore, flt: FeedbackFilter | None, filters: dict[str, Any]
                    ) -> Iterator[dict[str, Any]]:
    # Arrow needs fixed struct keys: the nested Document goes as JSON text, the words and
    # boxes as plain lists a tokenizer can take directly, per-field dicts as parallel lists.
    for cd in store.iter_corrected(flt, **filters):
        row = cd.export()
        doc = row.pop("document")
        row["words"] = [w["text"] for w in doc["words"]]
        row["boxes"] = [w["box"] for w in doc["words"]]
        row["width"], row["height"] = doc["width"], doc["height"]
        row["document_json"] = json.dumps(doc, ensure_ascii=False)
        row["fields"] = list(cd.values)
        for key in ("values", "actions", "spans"):
            row[key] = [row[key][k] for k in row["fields"]]
        yield row


def to_dataset(store: FeedbackStore, kind: str = "corrected", flt: FeedbackFilter | None = None,
               **filters: Any) -> datasets.Dataset:
    """Corrected documents (one row each, words and boxes included) or preference pairs (one
    row each, pages by ``doc_id``: join them with ``store.documents``) as a ``Dataset``."""
    import datasets

    _check(kind)
    if kind == "pairs":
        rows = [p.export() for p in store.iter_preference_pairs(flt, **filters)]
    else:
        rows = list(_corrected_rows(store, flt, filters))
    return datasets.Dataset.from_list(rows)
