"""The feedback store: documents, extraction results, append-only review history, leases.

Training and evaluation use only what is exported here, never the tables::

    store = FeedbackStore("sqlite:///feedback.db")      # or a PostgreSQL URL, or a path
    flt = FeedbackFilter(model_version="kv.layoutlm.v1", since=monday)  # filters run in SQL
    for fb in store.iter_feedback(flt): ...             # per document: shown, action, final
    for cd in store.iter_corrected(flt): ...            # Document + known final values
    for pair in store.iter_preference_pairs(flt): ...   # chosen vs rejected, by doc_id
    pages = store.documents({p.doc_id for p in pairs})  # fetch the pages once
    export_jsonl(store, "pairs.jsonl", "pairs"); ds = to_dataset(store, "corrected")
    export_backup(store, "backup.jsonl.gz"); import_backup("sqlite:///new.db", "backup.jsonl.gz")
"""

from feedback_ui.store.backup import BackupError, export_backup, import_backup
from feedback_ui.store.clock import as_utc, utc_now
from feedback_ui.store.errors import (
    DocumentConflictError,
    LeaseHeldError,
    LeaseLostError,
    NothingToUndoError,
    StaleValueError,
    StoreError,
    UnknownDocumentError,
    UnstorableValueError,
)
from feedback_ui.store.export import export_jsonl, to_dataset
from feedback_ui.store.records import (
    ACTIONS,
    CorrectedDocument,
    CurrentField,
    DocumentFeedback,
    FeedbackFilter,
    FieldAction,
    FieldFeedback,
    HistoryEntry,
    Lease,
    LeaseEvent,
    PreferencePair,
    RejectedValue,
    SaveRecord,
    StoreStats,
)
from feedback_ui.store.store import FeedbackStore

__all__ = [
    "ACTIONS", "BackupError", "CorrectedDocument", "CurrentField", "DocumentConflictError",
    "DocumentFeedback", "FeedbackFilter", "FeedbackStore", "FieldAction", "FieldFeedback",
    "HistoryEntry", "Lease", "LeaseEvent", "LeaseHeldError", "LeaseLostError",
    "NothingToUndoError", "PreferencePair", "RejectedValue", "SaveRecord", "StaleValueError",
    "StoreError", "StoreStats", "UnknownDocumentError", "UnstorableValueError", "as_utc",
    "export_backup", "export_jsonl", "import_backup", "to_dataset", "utc_now",
]
