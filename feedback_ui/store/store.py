"""``FeedbackStore``: the only way into the feedback tables (UI, training and eval use it).

Every method opens a short-lived ``Session``; write methods run as write transactions (``BEGIN
IMMEDIATE`` on SQLite, row locks on PostgreSQL) so concurrent operators lose nothing.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from typing_extensions import Self

from extractor.document import Document, ExtractionResult
from extractor.normalize import strict_key
from feedback_ui.checks import operator_id  # the UI's rule (plain Python, no Streamlit)
from feedback_ui.store import migrate, queries
from feedback_ui.store.clock import Clock, as_utc, utc_now
from feedback_ui.store.engine import WRITE, make_engine, normalize_url
from feedback_ui.store.errors import (
    DocumentConflictError,
    LeaseHeldError,
    LeaseLostError,
    NothingToUndoError,
    StaleValueError,
    UnknownDocumentError,
)
from feedback_ui.store.feedback import (
    HistoryRow,
    document_feedback,
    fields_of,
    preference_pairs,
)
from feedback_ui.store.models import (
    ActionRow,
    DocumentRow,
    ExtractionRow,
    LeaseEventRow,
    LeaseRow,
    SaveRow,
)
from feedback_ui.store.records import (
    CorrectedDocument,
    CurrentField,
    DocumentFeedback,
    FeedbackFilter,
    FieldAction,
    HistoryEntry,
    Lease,
    LeaseEvent,
    PreferencePair,
    SaveRecord,
    StoreStats,
)

__all__ = ["FeedbackStore", "as_utc", "utc_now"]

T = TypeVar("T")


class FeedbackStore:
    """Documents, extraction results, append-only review history and leases in one database.

    ``url`` is an SQLAlchemy URL or a plain path to an SQLite file; the schema is migrated to
    the newest revision on open. ``clock`` exists so tests can move time (lease expiry).
    """

    def __init__(self, url: str | Path, *, clock: Clock = utc_now,
                 engine: Engine | None = None) -> None:
        self.url = normalize_url(url)
        self.engine = engine or make_engine(self.url)
        self.schema_revision = migrate.upgrade(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self._write_session = sessionmaker(self.engine.execution_options(**WRITE),
                                           expire_on_commit=False)
        self.clock = clock

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self) -> Session:
        return self._session()

    def _write(self) -> Session:
        return self._write_session()

    # -- documents and extraction results -------------------------------------------------

    def add_document(self, doc: Document, *, dataset: str = "default") -> bool:
        """Store ``doc``; returns False if it is already there with the same content."""
        with self._write() as s, s.begin():
            return self._add_document(s, doc, dataset)

    def _add_document(self, s: Session, doc: Document, dataset: str) -> bool:
        row = s.get(DocumentRow, doc.id)
        h = doc.content_hash()
        if row is not None:
            if row.content_hash != h:
                raise DocumentConflictError(
                    f"document {doc.id!r} (source {doc.source}) is already stored with "
                    f"different words (hash {row.content_hash} vs {h}); give it a new id")
            return False
        s.add(DocumentRow(id=doc.id, source=doc.source, content_hash=h, data=doc.export(),
                          dataset=dataset, created_at=self.clock(), revision=0))
        s.flush()
        return True

    def add_result(self, result: ExtractionResult) -> int:
        """Store one extraction result (its document must be stored); returns its id."""
        with self._write() as s, s.begin():
            return self._add_result(s, result)

    def _add_result(self, s: Session, result: ExtractionResult) -> int:
        doc = s.get(DocumentRow, result.doc_id)
        if doc is None:
            raise UnknownDocumentError(result.doc_id)
        if result.doc_hash and result.doc_hash != doc.content_hash:
            raise DocumentConflictError(
                f"extraction for {result.doc_id!r} was made on other words (hash "
                f"{result.doc_hash} vs stored {doc.content_hash})")
        row = ExtractionRow(doc_id=result.doc_id, model_version=result.model_version,
                            data=result.export(), created_at=self.clock())
        s.add(row)
        s.flush()
        return row.id

    def add_batch(self, docs: Iterable[Document], results: Iterable[ExtractionResult], *,
                  dataset: str = "default") -> tuple[int, int]:
        """Documents and their results in one transaction: all are stored or none.

        Returns (new documents, results stored).
        """
        with self._write() as s, s.begin():
            n_docs = sum(self._add_document(s, d, dataset) for d in docs)
            n_res = len([self._add_result(s, r) for r in results])
        return n_docs, n_res

    def get_document(self, doc_id: str) -> Document:
        with self._read() as s:
            row = s.get(DocumentRow, doc_id)
            if row is None:
                raise UnknownDocumentError(doc_id)
            return Document.from_dict(row.data)

    def documents(self, doc_ids: Iterable[str]) -> dict[str, Document]:
        ids = list(doc_ids)
        with self._read() as s:
            rows = s.scalars(select(DocumentRow).where(DocumentRow.id.in_(ids))).all()
            return {r.id: Document.from_dict(r.data) for r in rows}

    def ids_by_content(self, content_hashes: Iterable[str]) -> dict[str, str]:
        """For each given ``Document.content_hash`` the store holds, the id of a document
        with it (the same words and boxes: the same page, read the same way)."""
        hashes = list(content_hashes)
        with self._read() as s:
            rows = s.execute(select(DocumentRow.content_hash, DocumentRow.id)
                             .where(DocumentRow.content_hash.in_(hashes))
                             .order_by(DocumentRow.id)).all()
        out: dict[str, str] = {}
        for h, doc_id in rows:
            out.setdefault(h, doc_id)
        return out

    def document_ids(self) -> list[str]:
        with self._read() as s:
            return list(s.scalars(select(DocumentRow.id).order_by(DocumentRow.id)))

    def extraction_index(self) -> list[tuple[int, str, str]]:
        """(extraction id, doc id, model version) of every stored result, oldest first."""
        with self._read() as s:
            rows = s.execute(select(ExtractionRow.id, ExtractionRow.doc_id,
                                    ExtractionRow.model_version).order_by(ExtractionRow.id))
            return [(r[0], r[1], r[2]) for r in rows]

    def results(self, extraction_ids: Iterable[int]) -> dict[int, ExtractionResult]:
        ids = list(extraction_ids)
        with self._read() as s:
            rows = s.scalars(select(ExtractionRow).where(ExtractionRow.id.in_(ids))).all()
            return {r.id: ExtractionResult.from_dict(r.data) for r in rows}

    def latest_result(self, doc_id: str, model_version: str | None = None
                      ) -> tuple[int, ExtractionResult] | None:
        """The newest result for ``doc_id`` (of ``model_version`` if given), with its id."""
        q = select(ExtractionRow).where(ExtractionRow.doc_id == doc_id)
        if model_version is not None:
            q = q.where(ExtractionRow.model_version == model_version)
        with self._read() as s:
            row = s.scalars(q.order_by(ExtractionRow.id.desc()).limit(1)).first()
            return None if row is None else (row.id, ExtractionResult.from_dict(row.data))

    def model_versions(self) -> list[str]:
        with self._read() as s:
            return list(s.scalars(select(ExtractionRow.model_version).distinct()
                                  .order_by(ExtractionRow.model_version)))

    # -- leases ---------------------------------------------------------------------------

    def acquire_lease(self, doc_id: str, operator: str, ttl_s: float = 900.0) -> Lease:
        """Take (or renew) the review lease; an expired lease of someone else is taken over.

        Raises ``LeaseHeldError`` while another operator's lease is live. Every change is
        recorded in the lease history (``lease_history``).
        """
        _check_operator(operator)
        return self._leased(doc_id, operator, ttl_s, lambda s, row: _lease(row))

    def _leased(self, doc_id: str, operator: str, ttl_s: float,
                then: Callable[[Session, LeaseRow], T]) -> T:
        """In one write transaction: lock the document, take its lease, run ``then``."""
        for _ in range(2):  # PostgreSQL: a concurrent first insert loses with IntegrityError
            try:
                with self._write() as s, s.begin():
                    self._lock_document(s, doc_id)
                    return then(s, self._take_lease(s, doc_id, operator, ttl_s))
            except IntegrityError:
                continue
        raise LeaseHeldError(doc_id, "another operator", self.clock())

    def _take_lease(self, s: Session, doc_id: str, operator: str, ttl_s: float) -> LeaseRow:
        now = self.clock()
        expires = now + timedelta(seconds=ttl_s)
        row = s.get(LeaseRow, doc_id)
        previous = None
        if row is None:
            kind = "acquire"
            row = LeaseRow(doc_id=doc_id, operator=operator, acquired_at=now, expires_at=expires)
            s.add(row)
        elif row.operator == operator:
            kind = "renew"
            row.expires_at = expires
        elif as_utc(row.expires_at) <= now:
            kind, previous = "takeover", row.operator
            row.operator, row.acquired_at, row.expires_at = operator, now, expires
        else:
            raise LeaseHeldError(doc_id, row.operator, as_utc(row.expires_at))
        s.add(LeaseEventRow(doc_id=doc_id, operator=operator, event=kind, at=now,
                            expires_at=expires, previous=previous))
        s.flush()
        return row

    def release_lease(self, doc_id: str, operator: str) -> bool:
        """Drop ``operator``'s lease on ``doc_id``; False if they did not hold it."""
        _check_operator(operator)
        with self._write() as s, s.begin():
            return self._release(s, doc_id, operator)

    def _release(self, s: Session, doc_id: str, operator: str) -> bool:
        row = s.get(LeaseRow, doc_id)
        if row is None or row.operator != operator:
            return False
        s.delete(row)
        s.add(LeaseEventRow(doc_id=doc_id, operator=operator, event="release", at=self.clock()))
        return True

    def lease_history(self, doc_id: str) -> list[LeaseEvent]:
        """Every acquire, renew, takeover and release of ``doc_id``'s lease, oldest first (the
        minute a save adds to its lease is recorded by the save itself)."""
        with self._read() as s:
            rows = s.scalars(select(LeaseEventRow).where(LeaseEventRow.doc_id == doc_id)
                             .order_by(LeaseEventRow.id))
            return [LeaseEvent(r.doc_id, r.operator, r.event, as_utc(r.at),
                               None if r.expires_at is None else as_utc(r.expires_at),
                               r.previous) for r in rows]

    def lease_of(self, doc_id: str) -> Lease | None:
        """The live lease on ``doc_id``, if any."""
        with self._read() as s:
            row = s.get(LeaseRow, doc_id)
            if row is None or as_utc(row.expires_at) <= self.clock():
                return None
            return _lease(row)

    def leased_by_others(self, operator: str) -> set[str]:
        """Documents under a live lease of someone other than ``operator``."""
        with self._read() as s:
            rows = s.execute(select(LeaseRow.doc_id, LeaseRow.expires_at)
                             .where(LeaseRow.operator != operator)).all()
        now = self.clock()
        return {d for d, exp in rows if as_utc(exp) > now}

    def _lock_document(self, s: Session, doc_id: str) -> DocumentRow:
        # Bumping the revision takes the document's row lock (PostgreSQL); on SQLite the
        # write transaction already holds the database lock.
        res = s.execute(update(DocumentRow).where(DocumentRow.id == doc_id)
                        .values(revision=DocumentRow.revision + 1))
        n = cast(CursorResult[Any], res).rowcount
        if n == 0:
            raise UnknownDocumentError(doc_id)
        return s.get_one(DocumentRow, doc_id)

    # -- review history -------------------------------------------------------------------

    def current(self, doc_id: str) -> dict[str, CurrentField]:
        """Each reviewed field's derived current value (latest action not undone)."""
        with self._read() as s:
            return self._current(s, doc_id)

    def current_values(self, doc_id: str) -> dict[str, str | None]:
        return {k: v.value for k, v in self.current(doc_id).items()}

    def _current(self, s: Session, doc_id: str) -> dict[str, CurrentField]:
        out: dict[str, CurrentField] = {}
        for a, sv in s.execute(queries.effective_actions().where(ActionRow.doc_id == doc_id)):
            out[a.field] = CurrentField(a.final_value, a.id, a.action, sv.operator, a.shown_value)
        return out

    def save_review(self, doc_id: str, operator: str, actions: list[FieldAction], *,
                    started_at: datetime, extraction_id: int | None = None,
                    dataset: str = "default", release: bool = False) -> SaveRecord:
        """Record one submission for ``doc_id``: all actions are stored, or none.

        The operator must hold the document's lease (``LeaseLostError`` otherwise); a field
        whose current value changed since it was shown makes the whole save fail with
        ``StaleValueError``. ``release`` drops the lease in the same transaction.
        """
        _check_operator(operator)
        if not actions:
            raise ValueError(f"document {doc_id!r}: nothing to save")
        fields = [a.field for a in actions]
        if len(set(fields)) != len(fields):
            raise ValueError(f"document {doc_id!r}: a field appears twice in one save: {fields}")
        with self._write() as s, s.begin():
            self._lock_document(s, doc_id)
            self._check_lease(s, doc_id, operator)
            cur = self._current(s, doc_id)
            stale = {a.field: cur[a.field].value for a in actions
                     if (cur[a.field].action_id if a.field in cur else None) != a.seen_action_id}
            if stale:
                raise StaleValueError(doc_id, stale)
            save = SaveRow(doc_id=doc_id, extraction_id=extraction_id, kind="review",
                           operator=operator, dataset=dataset, started_at=as_utc(started_at),
                           ended_at=self.clock())
            s.add(save)
            s.flush()
            for a in actions:
                prev = cur[a.field].value if a.field in cur else a.shown_value
                s.add(ActionRow(save_id=save.id, doc_id=doc_id, field=a.field, action=a.action,
                                pick_index=a.pick_index, shown_value=a.shown_value,
                                shown_confidence=a.shown_confidence,
                                candidates_shown=[c.export() for c in a.candidates_shown],
                                prev_value=prev, final_value=a.final_value,
                                final_span=a.final_span))
            if release:
                self._release(s, doc_id, operator)
            s.flush()
            return _save(save)

    def _check_lease(self, s: Session, doc_id: str, operator: str) -> None:
        row = s.get(LeaseRow, doc_id)
        if row is None or row.operator != operator:
            raise LeaseLostError(doc_id, operator, None if row is None else row.operator)
        # Holding an expired lease nobody took over is fine: renew it.
        row.expires_at = max(as_utc(row.expires_at), self.clock() + timedelta(seconds=60))

    def last_undoable(self, operator: str) -> SaveRecord | None:
        """``operator``'s latest review save that has not been undone."""
        with self._read() as s:
            row = s.scalars(_undoable(operator).limit(1)).first()
            return None if row is None else _save(row)

    def undo_last(self, operator: str, ttl_s: float = 900.0) -> SaveRecord:
        """Cancel ``operator``'s latest save (append-only: an ``undo`` save is recorded).

        The operator gets the document's lease back. Refused with ``StaleValueError`` if
        someone saved the document after it, and ``LeaseHeldError`` if it is being reviewed.
        """
        _check_operator(operator)
        target = self.last_undoable(operator)
        if target is None:
            raise NothingToUndoError(f"{operator!r} has no save to undo")

        def undo(s: Session, _lease: LeaseRow) -> SaveRecord:
            latest = s.scalars(queries.effective_saves().where(SaveRow.doc_id == target.doc_id)
                               .order_by(SaveRow.id.desc()).limit(1)).first()
            if latest is None or latest.id != target.id:
                raise StaleValueError(target.doc_id, {"(document)": "saved again by "
                                      f"{latest.operator if latest else 'nobody'}"})
            now = self.clock()
            row = SaveRow(doc_id=target.doc_id, extraction_id=target.extraction_id,
                          kind="undo", undoes_id=target.id, operator=operator,
                          dataset=target.dataset, started_at=now, ended_at=now)
            s.add(row)
            s.flush()
            return _save(row)

        # The lease comes back in the undo's own transaction: both happen, or neither.
        return self._leased(target.doc_id, operator, ttl_s, undo)

    def history(self, doc_id: str) -> list[HistoryEntry]:
        """Every field change of ``doc_id``, oldest first, undone ones flagged."""
        with self._read() as s:
            undone = set(s.scalars(select(SaveRow.undoes_id).where(
                SaveRow.doc_id == doc_id, SaveRow.undoes_id.is_not(None))))
            rows = s.execute(select(ActionRow, SaveRow).join(SaveRow)
                             .where(ActionRow.doc_id == doc_id).order_by(ActionRow.id)).all()
            return [HistoryEntry(save_id=sv.id, kind=sv.kind, field=a.field, action=a.action,
                                 before=a.prev_value, after=a.final_value,
                                 shown_value=a.shown_value, operator=sv.operator,
                                 ended_at=as_utc(sv.ended_at), undone=sv.id in undone)
                    for a, sv in rows]

    def saves(self, doc_id: str | None = None) -> list[SaveRecord]:
        q = select(SaveRow).order_by(SaveRow.id)
        if doc_id is not None:
            q = q.where(SaveRow.doc_id == doc_id)
        with self._read() as s:
            return [_save(r) for r in s.scalars(q)]

    def reviewed_doc_ids(self) -> set[str]:
        """Documents with a review save not undone and no field left open by a ``reject``
        (a rejected field sends its document back to the queue)."""
        with self._read() as s:
            return set(s.scalars(queries.reviewed_doc_ids()))

    def open_fields(self) -> dict[str, set[str]]:
        """Per document, the fields a ``reject`` left open (they need an operator again)."""
        out: dict[str, set[str]] = defaultdict(set)
        with self._read() as s:
            for doc_id, name in s.execute(queries.open_fields()):
                out[doc_id].add(name)
        return dict(out)

    # -- the API training and evaluation use ----------------------------------------------

    def _history(self, s: Session, flt: FeedbackFilter) -> dict[str, list[HistoryRow]]:
        """The selected fields' histories per document, from one query."""
        out: dict[str, list[HistoryRow]] = defaultdict(list)
        for a, sv, version in s.execute(queries.feedback_history(flt)):
            out[a.doc_id].append((a, sv, version))
        return out

    def iter_feedback(self, flt: FeedbackFilter | None = None, /, **filters: Any
                      ) -> Iterator[DocumentFeedback]:
        """Every document with a selected field, with each field's feedback (by document id).

        ``flt`` or its fields as keywords (``model_version="m1"``) say which fields: see
        ``FeedbackFilter``. Two queries in all, the histories and then the pages (streamed),
        inside one read transaction that stays open until the iterator is used up or closed.
        """
        flt = _filter(flt, filters)
        with self._read() as s:
            history = self._history(s, flt)
            docs = s.execute(queries.feedback_documents(flt).execution_options(yield_per=64))
            for doc_id, data in docs:
                if doc_id in history:  # PostgreSQL: reviewed between the two statements
                    yield document_feedback(Document.from_dict(data), history[doc_id])

    def iter_corrected(self, flt: FeedbackFilter | None = None, /, **filters: Any
                       ) -> Iterator[CorrectedDocument]:
        """Reviewed documents with the fields whose final value is known (SFT targets).

        A field whose latest action is a ``reject`` is left out; a document with no other
        field is skipped.
        """
        for fb in self.iter_feedback(flt, **filters):
            known = {k: f for k, f in fb.fields.items() if f.has_final}
            if known:
                yield CorrectedDocument(
                    document=fb.document, values={k: f.final_value for k, f in known.items()},
                    actions={k: f.action for k, f in known.items()},
                    spans={k: f.final_span for k, f in known.items()},
                    model_version=fb.model_version, operator=fb.operator,
                    reviewed_at=fb.reviewed_at)

    def iter_preference_pairs(self, flt: FeedbackFilter | None = None, /, **filters: Any
                              ) -> Iterator[PreferencePair]:
        """The final value preferred over each other value shown for the field (one query;
        pages are not read: fetch them once with ``documents``)."""
        flt = _filter(flt, filters)
        with self._read() as s:
            history = self._history(s, flt)
        for doc_id, rows in history.items():
            yield from preference_pairs(doc_id, fields_of(rows))

    # -- stats ----------------------------------------------------------------------------

    def stats(self, since: datetime) -> StoreStats:
        """Counts since ``since`` (reviews) and over all time (corrections, rejects,
        agreement). A reject disagrees with the model, so it counts as a correction."""
        with self._read() as s:
            n_docs = s.scalar(select(func.count()).select_from(DocumentRow)) or 0
            recent = s.scalars(queries.effective_saves()
                               .where(SaveRow.ended_at >= as_utc(since))).all()
            actions = [a for a, _ in s.execute(queries.effective_actions())]
            reviewed = set(s.scalars(queries.reviewed_doc_ids()))
        per_op: dict[str, int] = defaultdict(int)
        for sv in recent:
            per_op[sv.operator] += 1
        corr: dict[str, int] = defaultdict(int)
        total: dict[str, int] = defaultdict(int)
        rejects: dict[str, int] = defaultdict(int)
        for a in actions:
            total[a.field] += 1
            rejects[a.field] += a.action == "reject"
            if strict_key(a.final_value) != strict_key(a.shown_value) or (
                    (a.final_value is None) != (a.shown_value is None)):
                corr[a.field] += 1
        agree = {f: 1.0 - corr.get(f, 0) / n for f, n in total.items()}
        n_all = sum(total.values())
        return StoreStats(
            documents=n_docs, reviewed_documents=len(reviewed), saves_since=len(recent),
            docs_reviewed_since=len({sv.doc_id for sv in recent}),
            per_operator_since=dict(per_op), corrections_per_field=dict(corr),
            actions_per_field=dict(total), agreement_per_field=agree,
            agreement=(1.0 - sum(corr.values()) / n_all) if n_all else None,
            rejects_per_field={f: n for f, n in rejects.items() if n})


def _filter(flt: FeedbackFilter | None, filters: dict[str, Any]) -> FeedbackFilter:
    """``flt`` with keyword overrides (the keywords alone when ``flt`` is ``None``)."""
    return dataclasses.replace(flt or FeedbackFilter(), **filters)


def _check_operator(operator: str) -> None:
    """Every save and lease records who did it: refuse a name the review UI would refuse
    (``feedback_ui.checks.operator_id``: empty, too long, control or invisible characters) or
    would record otherwise (extra whitespace), so a script cannot record one the UI cannot."""
    name = operator_id(operator)
    if name != operator:
        raise ValueError(f"operator name {operator!r} has leading, trailing or repeated "
                         f"whitespace; record it as {name!r}")


def _undoable(operator: str) -> Any:
    return queries.effective_saves().where(SaveRow.operator == operator).order_by(SaveRow.id.desc())


def _lease(row: LeaseRow) -> Lease:
    return Lease(row.doc_id, row.operator, as_utc(row.acquired_at), as_utc(row.expires_at))


def _save(row: SaveRow) -> SaveRecord:
    return SaveRecord(id=row.id, doc_id=row.doc_id, kind=row.kind, operator=row.operator,
                      dataset=row.dataset, started_at=as_utc(row.started_at),
                      ended_at=as_utc(row.ended_at), extraction_id=row.extraction_id,
                      undoes_id=row.undoes_id)
