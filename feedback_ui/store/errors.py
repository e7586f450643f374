"""Errors the store raises; each message says which document/field and what to do."""

from __future__ import annotations

from datetime import datetime


class StoreError(Exception):
    """Base class of feedback-store errors."""


class UnknownDocumentError(StoreError, KeyError):
    """The document id is not in the store."""

    def __init__(self, doc_id: str) -> None:
        super().__init__(f"document {doc_id!r} is not in the store")
        self.doc_id = doc_id

    def __str__(self) -> str:
        return str(self.args[0])


class DocumentConflictError(StoreError):
    """A document id is already stored with different content."""


class LeaseHeldError(StoreError):
    """Another operator holds an unexpired lease on the document."""

    def __init__(self, doc_id: str, holder: str, expires_at: datetime) -> None:
        super().__init__(f"document {doc_id!r} is being reviewed by {holder!r} until "
                         f"{expires_at:%H:%M:%S} UTC; pick another document")
        self.doc_id, self.holder, self.expires_at = doc_id, holder, expires_at


class LeaseLostError(StoreError):
    """The saving operator no longer holds the document's lease."""

    def __init__(self, doc_id: str, operator: str, holder: str | None) -> None:
        who = f"it is now held by {holder!r}" if holder else "it was released"
        super().__init__(f"{operator!r} no longer holds the lease on document {doc_id!r} "
                         f"({who}); reopen the document to review it again")
        self.doc_id, self.operator, self.holder = doc_id, operator, holder


class StaleValueError(StoreError):
    """A field changed in the store since it was shown; the save was rejected whole."""

    def __init__(self, doc_id: str, fields: dict[str, str | None]) -> None:
        changed = ", ".join(f"{k} (now {v!r})" for k, v in fields.items())
        super().__init__(f"document {doc_id!r} changed since it was shown: {changed}; "
                         "nothing was saved, reload the document")
        self.doc_id, self.fields = doc_id, fields


class NothingToUndoError(StoreError):
    """The operator has no save left that can be undone."""


class UnstorableValueError(StoreError, ValueError):
    """A value the database cannot hold (PostgreSQL text cannot contain NUL characters)."""
