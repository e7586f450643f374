"""The feedback store: documents, extraction results, append-only review history, leases.

Training and evaluation use only what is exported here, never the tables::

    store = FeedbackStore("sqlite:///feedback.db")      # or a PostgreSQL URL, or a path
    for cd in store.iter_corrected(): ...               # Document + final values + version
    for pair in store.iter_preference_pairs(): ...      # chosen vs rejected candidate
    export_jsonl(store, "pairs.jsonl", "pairs"); ds = to_dataset(store, "corrected")
"""

from feedback_ui.store.errors import (
    DocumentConflictError,
    LeaseHeldError,
    LeaseLostError,
    NothingToUndoError,
    StaleValueError,
    StoreError,
    UnknownDocumentError,
)
from feedback_ui.store.export import export_jsonl, to_dataset
from feedback_ui.store.records import (
    ACTIONS,
    CorrectedDocument,
    CurrentField,
    FieldAction,
    HistoryEntry,
    Lease,
    PreferencePair,
    SaveRecord,
    StoreStats,
)
from feedback_ui.store.store import FeedbackStore, as_utc, utc_now

__all__ = [
    "ACTIONS", "CorrectedDocument", "CurrentField", "DocumentConflictError", "FeedbackStore",
    "FieldAction", "HistoryEntry", "Lease", "LeaseHeldError", "LeaseLostError",
    "NothingToUndoError", "PreferencePair", "SaveRecord", "StaleValueError", "StoreError",
    "StoreStats", "UnknownDocumentError", "as_utc", "export_jsonl", "to_dataset", "utc_now",
]
