"""The review service: what the correction UI (and its tests) call. No Streamlit in here.

It joins the store (documents, results, history, leases), routing (what needs review) and,
for uploads, OCR and the extractor. Objects handed to the UI are plain dataclasses.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from extractor.align import Stream, match_value
from extractor.document import (
    RECEIPT_SCHEMA,
    Candidate,
    Document,
    ExtractionResult,
    FieldSpec,
    Schema,
)
from extractor.model.card import CARD_FILE, ModelCard
from extractor.normalize import collapse_ws, validate_value
from feedback_ui.checks import field_problem, value_limit_problem
from feedback_ui.routing import (
    AcceptancePolicy,
    Route,
    RoutingConfig,
    Threshold,
    Thresholds,
    check_thresholds,
    most_uncertain_first,
    route,
    thresholds_in_force,
)
from feedback_ui.store import (
    FeedbackStore,
    FieldAction,
    HistoryEntry,
    Lease,
    LeaseHeldError,
    SaveRecord,
    StoreStats,
)
from feedback_ui.store.records import Action

FieldState = Literal["auto_accepted", "confirmed", "needs_review", "failed_validation"]
Status = Literal["unreviewed", "reviewed", "all"]


class ChoiceError(ValueError):
    """An operator's choice for one field that cannot be saved (the message says why)."""


class InvalidValueError(ValueError):
    """Fields whose answer cannot be saved (a typed value that does not parse or is too long,
    an empty box, an accept of a value marked wrong); nothing was saved."""

    def __init__(self, doc_id: str, problems: dict[str, str]) -> None:
        msg = "; ".join(f"{k}: {v}" for k, v in problems.items())
        super().__init__(f"document {doc_id!r} not saved: {msg}")
        self.problems = problems


@dataclass
class QueueFilter:
    """Which documents the queue lists."""

    model_version: str | None = None
    field: str | None = None
    confidence_below: float | None = None
    status: Status = "unreviewed"


@dataclass(frozen=True)
class QueueSnapshot:
    """What the queue depends on, read from the store at one moment (``ReviewService.
    snapshot``): the latest result's route of each document (fields left open by a reject
    added), which documents are reviewed, which are held by operators other than
    ``operator``. It goes stale with the next write: one page draw's worth of reads."""

    model_version: str | None
    operator: str
    model_versions: tuple[str, ...]
    """Every model version with results in the store (the filter's choices), sorted."""
    extraction_ids: dict[str, int]
    routes: list[Route]
    reviewed: frozenset[str]
    leased_by_others: frozenset[str]


@dataclass
class QueueItem:
    """One document in the review queue."""

    doc_id: str
    extraction_id: int
    model_version: str
    min_confidence: float
    review_fields: list[str]
    audit: bool
    reviewed: bool
    leased_by: str | None = None


@dataclass
class Progress:
    """Reviewed documents out of those the filter routes to review."""

    done: int
    total: int


@dataclass
class FieldView:
    """One field as the operator sees it."""

    spec: FieldSpec
    value: str | None
    confidence: float
    candidates: list[Candidate]
    state: FieldState
    problem: str | None
    model_value: str | None
    seen_action_id: int | None = None
    reviewed_by: str | None = None
    # The value an operator marked wrong (the field's current action is a reject): the field
    # opens again with no value, and saving it needs a new answer, never an accept.
    rejected_value: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def rejected(self) -> bool:
        return self.rejected_value is not None

    @property
    def word_indices(self) -> list[int]:
        """Words of the shown value (the model candidate it matches, if any)."""
        for c in self.candidates:
            if c.value == self.value:
                return c.word_indices
        return []


@dataclass
class ReviewTask:
    """A document opened for review under the operator's lease."""

    doc: Document
    result: ExtractionResult
    extraction_id: int
    route: Route
    fields: list[FieldView]
    lease: Lease
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def doc_id(self) -> str:
        return self.doc.id

    def field(self, name: str) -> FieldView:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"document {self.doc_id!r} has no field {name!r}")


@dataclass
class FieldChoice:
    """What the operator chose for a field: accept, pick candidate n, edit, clear, not present,
    or reject (the shown value is wrong and the operator does not type the right one: the
    field stays open and the document returns to the queue)."""

    action: Action = "accept"
    value: str | None = None
    pick_index: int | None = None


@dataclass
class Stats:
    """What the stats page shows."""

    store: StoreStats
    queue_total: int
    queue_done: int


def model_card(model_dir: str | Path | None) -> ModelCard | None:
    """The card of a saved model (``None`` without one); ``ValueError`` naming the file."""
    if not model_dir:
        return None
    try:
        return ModelCard.load(model_dir)
    except FileNotFoundError as e:
        raise ValueError(str(e)) from e


def schema_of_model(model_dir: str | Path | None) -> Schema:
    """The schema a saved model extracts (its card), or the receipt schema."""
    card = model_card(model_dir)
    return RECEIPT_SCHEMA if card is None else card.schema


def thresholds_of_model(model_dir: str | Path | None) -> dict[str, float | None] | None:
    """The auto-accept thresholds fitted with a saved model (its card's ``auto_accept``).

    ``None`` when there is no model or it was saved without them (routing then uses the
    schema's ``auto_accept``). Raises ``ValueError`` on a malformed entry.
    """
    card = model_card(model_dir)
    if card is None or not card.auto_accept:
        return None
    try:
        check_thresholds(card.auto_accept, card.schema)
    except ValueError as e:
        raise ValueError(f"{Path(model_dir or '') / CARD_FILE}: {e}") from e
    return dict(card.auto_accept)


class ReviewService:
    """Queue, open, save, undo and stats over one store, for one schema."""

    def __init__(self, store: FeedbackStore, schema: Schema = RECEIPT_SCHEMA, *,
                 routing: RoutingConfig | None = None, lease_ttl_s: float = 900.0,
                 dataset: str = "default", k: int = 5,
                 thresholds: Thresholds | None = None,
                 acceptance: AcceptancePolicy | None = None) -> None:
        """``thresholds``: per-field auto-accept thresholds fitted with the model (see
        ``thresholds_of_model``); they override the schema's, ``None`` always reviews.
        ``acceptance``: certified straight-through routing instead (``feedback_ui.audit.
        acceptance_policy``)."""
        self.store, self.schema, self.routing = store, schema, routing or RoutingConfig()
        if thresholds is not None:
            check_thresholds(thresholds, schema)
        self.thresholds = dict(thresholds) if thresholds is not None else None
        self.lease_ttl_s, self.dataset, self.k = lease_ttl_s, dataset, k
        self.acceptance = acceptance
        self._routes: dict[int, Route] = {}  # extraction id -> route (results are immutable)
        self._lock = threading.Lock()

    def set_acceptance(self, acceptance: AcceptancePolicy | None) -> None:
        """Route by ``acceptance`` from now on (e.g. after the audit revoked a field): every
        cached route is dropped, so queued documents are routed again."""
        with self._lock:
            self.acceptance = acceptance
            self._routes.clear()

    # -- ingest ---------------------------------------------------------------------------

    def add(self, docs: Iterable[Document], results: Iterable[ExtractionResult]
            ) -> tuple[int, int]:
        """Add documents and their results atomically; returns (new docs, results)."""
        return self.store.add_batch(docs, results, dataset=self.dataset)

    # -- queue ----------------------------------------------------------------------------

    def _latest_routes(self, model_version: str | None,
                       index: list[tuple[int, str, str]] | None = None
                       ) -> dict[str, tuple[int, Route]]:
        index = self.store.extraction_index() if index is None else index
        latest: dict[str, int] = {}
        for eid, doc_id, version in index:
            if model_version is None or version == model_version:
                latest[doc_id] = eid
        with self._lock:
            todo = [e for e in latest.values() if e not in self._routes]
        if todo:
            results = self.store.results(todo)
            docs = self.store.documents({r.doc_id for r in results.values()})
            new = {e: self._route(r, docs.get(r.doc_id)) for e, r in results.items()}
            with self._lock:
                self._routes.update(new)
        return {d: (e, self._routes[e]) for d, e in latest.items()}

    def _route(self, result: ExtractionResult, doc: Document | None) -> Route:
        return route(result, self.schema, doc, self.routing, self.thresholds, self.acceptance)

    def thresholds_in_force(self) -> list[Threshold]:
        """Each field's auto-accept threshold and whether it was fitted or is the schema's."""
        return thresholds_in_force(self.schema, self.thresholds)

    def snapshot(self, flt: QueueFilter | None = None, operator: str = "") -> QueueSnapshot:
        """The store as the queue of ``flt``'s model version reads it, once: a page that lists
        the queue, opens its next document, prepares the one after and shows progress reads
        the store one time for all of them (``snapshot=`` of those methods)."""
        flt = flt or QueueFilter()
        index = self.store.extraction_index()
        routes = self._latest_routes(flt.model_version, index)
        return QueueSnapshot(
            model_version=flt.model_version, operator=operator,
            model_versions=tuple(sorted({version for _, _, version in index})),
            extraction_ids={d: e for d, (e, _) in routes.items()},
            routes=self._with_open_fields(routes),
            reviewed=frozenset(self.store.reviewed_doc_ids()),
            leased_by_others=frozenset(self.store.leased_by_others(operator) if operator
                                       else ()))

    def _snapshot_for(self, flt: QueueFilter, operator: str | None,
                      snapshot: QueueSnapshot | None) -> QueueSnapshot:
        if snapshot is None:
            return self.snapshot(flt, operator or "")
        if snapshot.model_version != flt.model_version or (
                operator is not None and snapshot.operator != operator):
            raise ValueError(f"a queue snapshot of model {snapshot.model_version!r} for "
                             f"operator {snapshot.operator!r} cannot answer for model "
                             f"{flt.model_version!r} and operator {operator!r}")
        return snapshot

    def queue(self, flt: QueueFilter | None = None, operator: str = "", *,
              snapshot: QueueSnapshot | None = None) -> list[QueueItem]:
        """Documents to review, most uncertain first, narrowed by ``flt``."""
        flt = flt or QueueFilter()
        snap = self._snapshot_for(flt, operator, snapshot)
        items = []
        for r in most_uncertain_first(snap.routes):
            reviewed = r.doc_id in snap.reviewed
            if not self._matches(r, flt, reviewed):
                continue
            items.append(QueueItem(doc_id=r.doc_id, extraction_id=snap.extraction_ids[r.doc_id],
                                   model_version=r.model_version,
                                   min_confidence=r.min_confidence,
                                   review_fields=r.review_fields, audit=r.audit,
                                   reviewed=reviewed,
                                   leased_by="another operator"
                                   if r.doc_id in snap.leased_by_others else None))
        return items

    def _with_open_fields(self, routes: dict[str, tuple[int, Route]]) -> list[Route]:
        """Routes with the fields a ``reject`` left open added to their review fields: a
        rejected value needs an operator even where routing had auto-accepted it."""
        open_ = self.store.open_fields()
        return [replace(r, review_fields=[f for f in self.schema.field_names
                                          if f in r.review_fields or f in open_[d]],
                        audit=False) if d in open_ else r
                for d, (_, r) in routes.items()]

    def _matches(self, r: Route, flt: QueueFilter, reviewed: bool, *,
                 check_status: bool = True) -> bool:
        if not r.needs_review and not reviewed:
            return False
        if check_status and flt.status != "all" and reviewed != (flt.status == "reviewed"):
            return False
        if flt.field is not None:
            conf = r.confidences.get(flt.field, 0.0)
            if flt.field not in r.review_fields and not (
                    flt.confidence_below is not None and conf < flt.confidence_below):
                return False
            if flt.confidence_below is not None and conf >= flt.confidence_below:
                return False
        elif flt.confidence_below is not None and r.min_confidence >= flt.confidence_below:
            return False
        return True

    def progress(self, flt: QueueFilter | None = None, *,
                 snapshot: QueueSnapshot | None = None) -> Progress:
        """How many of the documents this filter routes to review are reviewed."""
        flt = flt or QueueFilter()
        snap = self._snapshot_for(flt, None, snapshot)
        total = done = 0
        for r in snap.routes:
            rev = r.doc_id in snap.reviewed
            if (r.needs_review or rev) and self._matches(r, flt, rev, check_status=False):
                total += 1
                done += rev
        return Progress(done=done, total=total)

    # -- one document ---------------------------------------------------------------------

    def open(self, doc_id: str, operator: str, model_version: str | None = None) -> ReviewTask:
        """Take the lease on ``doc_id`` and build what the operator sees.

        Raises ``LeaseHeldError`` while someone else reviews it.
        """
        latest = self.store.latest_result(doc_id, model_version)
        if latest is None:
            raise KeyError(f"document {doc_id!r} has no extraction result"
                           + (f" from model {model_version!r}" if model_version else ""))
        lease = self.store.acquire_lease(doc_id, operator, self.lease_ttl_s)
        eid, result = latest
        doc = self.store.get_document(doc_id)
        r = self._routes.get(eid) or self._route(result, doc)
        current = self.store.current(doc_id)
        views = []
        for spec in self.schema.fields:
            fr = result.fields.get(spec.name)
            cands = fr.candidates[: self.k] if fr else []
            model_value = fr.value if fr else None
            cur = current.get(spec.name)
            rejected_value = cur.shown_value if cur is not None and cur.action == "reject" \
                else None
            value = cur.value if cur is not None else model_value
            problem = field_problem(value, spec, doc)
            state: FieldState
            if rejected_value is not None:
                state = "needs_review"  # known wrong, right value unknown: still open
            elif cur is not None:
                state = "confirmed"
            elif problem:
                state = "failed_validation"
            elif spec.name in r.review_fields:
                state = "needs_review"
            else:
                state = "auto_accepted"
            views.append(FieldView(spec=spec, value=value, confidence=fr.confidence if fr else 0.0,
                                   candidates=cands, state=state, problem=problem,
                                   model_value=model_value,
                                   seen_action_id=cur.action_id if cur else None,
                                   reviewed_by=cur.operator if cur else None,
                                   rejected_value=rejected_value))
        return ReviewTask(doc=doc, result=result, extraction_id=eid, route=r, fields=views,
                          lease=lease)

    def next_document(self, operator: str, flt: QueueFilter | None = None,
                      exclude: Iterable[str] = (), *, snapshot: QueueSnapshot | None = None
                      ) -> ReviewTask | None:
        """Open the most uncertain queued document nobody else holds; ``None`` when done."""
        skip = set(exclude)
        for item in self.queue(flt, operator, snapshot=snapshot):
            if item.doc_id in skip or item.leased_by:
                continue
            try:
                return self.open(item.doc_id, operator, flt.model_version if flt else None)
            except LeaseHeldError:
                continue  # taken between listing and opening
        return None

    def upcoming(self, operator: str, flt: QueueFilter | None = None,
                 exclude: Iterable[str] = (), n: int = 1, *,
                 snapshot: QueueSnapshot | None = None) -> list[Document]:
        """The next ``n`` documents ``next_document`` would open (no lease taken)."""
        skip = set(exclude)
        ids = [q.doc_id for q in self.queue(flt, operator, snapshot=snapshot)
               if q.doc_id not in skip and not q.leased_by][:n]
        docs = self.store.documents(ids)
        return [docs[i] for i in ids if i in docs]

    def candidates_for(self, doc_id: str, field_name: str, k: int | None = None
                       ) -> list[Candidate]:
        """The model's top-k candidates for one field of a document's latest result."""
        latest = self.store.latest_result(doc_id)
        if latest is None:
            return []
        fr = latest[1].fields.get(field_name)
        return fr.candidates[: k or self.k] if fr else []

    def check(self, task: ReviewTask, name: str, value: str | None) -> str | None:
        """Why ``value`` would be a bad value for field ``name`` of ``task`` (or ``None``)."""
        return field_problem(value, task.field(name).spec, task.doc)

    def _final(self, fv: FieldView, choice: FieldChoice) -> tuple[Action, str | None]:
        """The action and final value ``choice`` records, or ``ChoiceError`` saying why it
        cannot be saved. Nothing is cleared or accepted by default: an emptied edit and an
        accept of a value marked wrong are refused (``clear`` is its own action)."""
        if choice.action == "accept":
            if fv.rejected:
                raise ChoiceError(
                    f"{fv.rejected_value!r} was marked wrong by {fv.reviewed_by}; type or pick "
                    "the right value, mark it not present, or mark it wrong again")
            return "accept", fv.value
        if choice.action == "pick":
            idx = choice.pick_index
            if idx is None or not 0 <= idx < len(fv.candidates):
                raise ChoiceError(f"there is no alternative number {idx}")
            return "pick", fv.candidates[idx].value
        if choice.action == "edit":
            typed = collapse_ws(choice.value or "")
            if not typed:
                raise ChoiceError("its box is empty; type the right value, or mark it not "
                                  "present if the document does not show it")
            return "edit", typed
        if choice.action == "reject" and fv.value is None and not fv.rejected:
            raise ChoiceError("no value is shown, so none can be marked wrong")
        return choice.action, None

    def save_correction(self, task: ReviewTask, choices: dict[str, FieldChoice],
                        operator: str, *, release: bool = True) -> SaveRecord:
        """Save every field of ``task`` (fields without a choice are accepted as shown).

        Raises ``InvalidValueError`` (typed value that does not parse), ``StaleValueError``,
        ``LeaseLostError``; in each case nothing is written.
        """
        unknown = set(choices) - {f.name for f in task.fields}
        if unknown:
            raise KeyError(f"document {task.doc_id!r} has no field(s) {sorted(unknown)}")
        actions, problems = [], {}
        for fv in task.fields:
            choice = choices.get(fv.name, FieldChoice())
            try:
                action, final = self._final(fv, choice)
            except ChoiceError as e:
                problems[fv.name] = str(e)
                continue
            if action in ("edit", "pick") and final is not None:
                msg = value_limit_problem(final, fv.spec) or validate_value(final, fv.spec.type)
                if msg:
                    problems[fv.name] = msg
            pick = choice.pick_index if action == "pick" else None
            chosen_from = fv.candidates if pick is None else [fv.candidates[pick]]
            # A second reject of a value already marked wrong names that value again.
            shown = fv.rejected_value if action == "reject" and fv.rejected else fv.value
            actions.append(FieldAction(
                field=fv.name, action=action, final_value=final, shown_value=shown,
                shown_confidence=fv.confidence, candidates_shown=fv.candidates,
                pick_index=pick, seen_action_id=fv.seen_action_id,
                final_span=final_span(task.doc, fv.spec, final, chosen_from)))
        if problems:
            raise InvalidValueError(task.doc_id, problems)
        return self.store.save_review(task.doc_id, operator, actions,
                                      started_at=task.started_at,
                                      extraction_id=task.extraction_id, dataset=self.dataset,
                                      release=release)

    def accept_all(self, task: ReviewTask, operator: str) -> SaveRecord:
        """Confirm every field as shown (refused while a field is open after a reject)."""
        return self.save_correction(task, {}, operator)

    def skip(self, task: ReviewTask, operator: str) -> None:
        """Leave the document for later (its lease is released)."""
        self.store.release_lease(task.doc_id, operator)

    def undo_last(self, operator: str) -> ReviewTask:
        """Undo ``operator``'s last save and reopen that document."""
        undo = self.store.undo_last(operator, self.lease_ttl_s)
        return self.open(undo.doc_id, operator)

    def history(self, doc_id: str) -> list[HistoryEntry]:
        return self.store.history(doc_id)

    def stats(self, now: datetime | None = None) -> Stats:
        """Reviewed today (UTC), corrections per field, agreement with the model, progress."""
        now = now or datetime.now(timezone.utc)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        p = self.progress(QueueFilter(status="all"))
        return Stats(store=self.store.stats(midnight), queue_total=p.total, queue_done=p.done)


def final_span(doc: Document, spec: FieldSpec, value: str | None,
               candidates: list[Candidate]) -> list[int] | None:
    """Where the final value sits on the page, so trainers get its words, not just its text.

    The words of the candidate it is (accept, pick, or an edit that types a candidate's
    value); else the span the aligner finds for it (``extractor.align.match_value``, the
    matching that turns gold values into training tags); ``None`` when no words spell it.
    """
    if value is None:
        return None
    for c in candidates:
        if c.value == value and c.word_indices:
            return list(c.word_indices)
    stream = Stream.of(doc.words)
    if not stream.text:
        return None
    best, _, _ = match_value(doc.words, value, spec, stream)
    return None if best is None else best.indices
