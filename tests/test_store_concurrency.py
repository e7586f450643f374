"""Several processes reviewing (every action kind), saving and undoing in one store at once lose
nothing (SQLite, PostgreSQL).

Children are forked (they start in milliseconds; spawn re-imports for seconds) after the
parent disposed of its engine, so no connection crosses the fork. ``KVLOOP_STORE_WRITERS=NxM``
runs the N-writers test with more writers and reviews (default 4x12).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pytest
from test_store import holder, store_url  # noqa: F401

from extractor.document import Candidate, Document, ExtractionResult, FieldResult, Word
from feedback_ui.store import (
    ACTIONS,
    FeedbackStore,
    FieldAction,
    LeaseHeldError,
    StaleValueError,
)

CTX = mp.get_context("fork")
WORKERS, DOCS, ROUNDS = 4, 6, 3
N_WRITERS, N_REVIEWS = (int(x) for x in os.environ.get("KVLOOP_STORE_WRITERS", "4x12").split("x"))
UNDO_EVERY = 4


def _now() -> datetime:
    return datetime.now(timezone.utc)


def review(store: FeedbackStore, doc_id: str, marker: str) -> list[FieldAction]:
    """One save with every action kind, seen ids from the store; the edit writes ``marker``."""
    seen = {k: v.action_id for k, v in store.current(doc_id).items()}
    cands = [Candidate("20.00", 0.6, [6]), Candidate("1.50", 0.3, [4])]
    acts = [FieldAction("company", "accept", "SHOP SDN", "SHOP SDN", 0.9, cands),
            FieldAction("total", "pick", "1.50", "20.00", 0.6, cands, pick_index=1),
            FieldAction("date", "edit", marker, "01/02/2018", 0.5, cands),
            FieldAction("address", "clear", None, "x", 0.1, cands),
            FieldAction("tax", "not_present", None, None, 0.0, []),
            FieldAction("cash", "reject", None, "20.00", 0.6, cands)]
    assert {a.action for a in acts} == set(ACTIONS)
    for a in acts:
        a.seen_action_id = seen.get(a.field)
    return acts


FIELDS = 6


def _doc(i: int | str) -> Document:
    return Document(id=f"d{i}", words=[Word("TOTAL", (0, 0, 40, 10)),
                                       Word(f"{i}.00", (50, 0, 90, 10))], width=100, height=20)


def _run(target: Any, store: FeedbackStore, n: int, *args: Any) -> list[Any]:
    """Start ``n`` children ``target(url, i, barrier, out, *args)`` together; their reports."""
    store.engine.dispose()
    barrier, out = CTX.Barrier(n), CTX.Queue()
    procs = [CTX.Process(target=target, args=(store.url, w, barrier, out, *args))
             for w in range(n)]
    for p in procs:
        p.start()
    reported = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return sorted(reported)


# -- N writers, M reviews each ---------------------------------------------------------------

def _writer(url: str, w: int, barrier: Any, out: Any, n_docs: int) -> None:
    """Save ``N_REVIEWS`` reviews on this writer's documents; undo every fourth one."""
    store = FeedbackStore(url)
    op = f"op{w} O'Brien"
    saved, undone = [], []
    barrier.wait()  # start together so the saves really overlap
    for m in range(N_REVIEWS):
        doc_id = f"dw{w}-{m % n_docs}"
        store.acquire_lease(doc_id, op, ttl_s=600)
        acts = review(store, doc_id, f"{op}-{m}")
        rec = store.save_review(doc_id, op, acts, started_at=_now(), release=True)
        saved.append((rec.id, doc_id, op, [(a.field, a.action, a.final_value) for a in acts]))
        if m % UNDO_EVERY == UNDO_EVERY - 1:
            u = store.undo_last(op, ttl_s=600)
            store.release_lease(doc_id, op)
            undone.append((u.id, u.undoes_id, op))
    store.close()
    out.put((w, saved, undone))


def test_n_writers_each_saving_m_reviews_keep_n_times_m(store_url: str,  # noqa: F811
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    n_docs = 3
    store = FeedbackStore(store_url)
    store.add_batch([_doc(f"w{w}-{j}") for w in range(N_WRITERS) for j in range(n_docs)], [])
    reported = _run(_writer, store, N_WRITERS, n_docs)
    saves = {s.id: s for s in store.saves()}
    reviews = {i: s for i, s in saves.items() if s.kind == "review"}
    undos = {i: s for i, s in saves.items() if s.kind == "undo"}
    claimed = [s for _, ss, _ in reported for s in ss]
    claimed_undos = [u for _, _, us in reported for u in us]
    assert len(claimed) == len(reviews) == N_WRITERS * N_REVIEWS
    assert len(claimed_undos) == len(undos) == N_WRITERS * (N_REVIEWS // UNDO_EVERY)
    # Every review is stored as its writer made it: document, operator, each field's action.
    stored: dict[int, list[tuple[str, str, str | None]]] = {}
    for d in {s.doc_id for s in reviews.values()}:
        for h in store.history(d):
            stored.setdefault(h.save_id, []).append((h.field, h.action, h.after))
    assert sum(len(v) for v in stored.values()) == N_WRITERS * N_REVIEWS * FIELDS
    for sid, doc_id, op, acts in claimed:
        assert (reviews[sid].doc_id, reviews[sid].operator, stored[sid]) == (doc_id, op, acts)
    assert {(u.id, u.undoes_id, u.operator) for u in undos.values()} == set(claimed_undos)
    for d in {s.doc_id for s in reviews.values()}:  # current = the last save not undone
        undone = {u.undoes_id for u in undos.values()}
        last = max(i for i, s in reviews.items() if s.doc_id == d and i not in undone)
        assert store.current_values(d)["date"] == next(
            v for f, _, v in stored[last] if f == "date")
    with capsys.disabled():
        print(f"\n[{store.engine.dialect.name}] {N_WRITERS} writers x {N_REVIEWS} reviews: "
              f"{len(reviews)} reviews kept of {N_WRITERS * N_REVIEWS}, "
              f"{sum(len(v) for v in stored.values())} actions, {len(undos)} undos")


# -- writers contending for the same documents ------------------------------------------------

def _visit(store: FeedbackStore, op: str, i: int, rnd: int, rng: random.Random
           ) -> tuple[str, str | None]:
    """Save one action of a random kind on the field; returns (action, value saved)."""
    doc_id = f"d{i}"
    cur = store.current(doc_id).get("total")
    shown = cur.value if cur else f"{i}.00"
    kind = rng.choice(ACTIONS)
    if kind in ("accept", "reject") and shown is None:
        kind = "edit"
    final = {"accept": shown, "pick": f"{i}.00", "edit": f"{op}-r{rnd}"}.get(kind)
    act = FieldAction("total", kind, final, shown, 0.5,  # type: ignore[arg-type]
                      [Candidate(f"{i}.00", 0.5, [1])], pick_index=0 if kind == "pick" else None,
                      seen_action_id=cur.action_id if cur else None)
    store.save_review(doc_id, op, [act], started_at=_now(), release=True)
    return kind, final


def _worker(url: str, worker: int, barrier: Any, out: Any) -> None:
    """Every worker walks every document in its own order; whoever holds the lease saves, and
    now and then undoes that save again (refused if someone saved or took the lease since)."""
    store = FeedbackStore(url)
    rng = random.Random(worker)
    op = f"op{worker}"
    saved: list[tuple[str, str, str | None]] = []
    undone: list[int | None] = []
    barrier.wait()  # start together so saves really overlap
    for rnd in range(ROUNDS):
        order = list(range(DOCS))
        rng.shuffle(order)
        for i in order:
            try:
                store.acquire_lease(f"d{i}", op, ttl_s=60)
            except LeaseHeldError:
                continue
            saved.append((f"d{i}", *_visit(store, op, i, rnd, rng)))
            if rng.random() < 0.25:
                try:
                    undone.append(store.undo_last(op, ttl_s=60).undoes_id)
                    store.release_lease(f"d{i}", op)
                except (LeaseHeldError, StaleValueError):
                    pass
    store.close()
    out.put((worker, saved, undone))


def test_concurrent_processes_lose_no_save(store_url: str) -> None:  # noqa: F811
    store = FeedbackStore(store_url)
    docs = [_doc(i) for i in range(DOCS)]
    store.add_batch(docs, [ExtractionResult(d.id, "m1", {"total": FieldResult(
        "total", [Candidate(d.words[1].text, 0.5, [1])], 0.5)}) for d in docs])
    reported = _run(_worker, store, WORKERS)
    claimed = [(d, v) for _, saves, _ in reported for d, _, v in saves]
    kinds = {k for _, saves, _ in reported for _, k, _ in saves}
    undone = {u for _, _, us in reported for u in us}
    assert len(claimed) >= DOCS * ROUNDS  # every document was saved in every round at least
    assert undone and kinds == set(ACTIONS)  # some undos and every action kind happened
    stored, flagged, reviewed = [], set(), set()
    for d in docs:
        hist = store.history(d.id)
        stored += [(d.id, h.after) for h in hist]
        flagged |= {h.save_id for h in hist if h.undone}
        live = [h for h in hist if not h.undone]
        # Each save saw the one before it (undone ones aside): the chain never skips a value.
        # (Every save of a document may have been undone: then there is no chain to check.)
        chain = [d.words[1].text] + [h.after for h in live]
        assert [h.before for h in live] == chain[:len(live)]
        assert store.current_values(d.id) == ({"total": live[-1].after} if live else {})
        if live and live[-1].action != "reject":
            reviewed.add(d.id)
    assert Counter(stored) == Counter(claimed)
    assert flagged == undone and store.reviewed_doc_ids() == reviewed


def _grab(url: str, worker: int, barrier: Any, out: Any) -> None:
    store = FeedbackStore(url)
    barrier.wait()
    try:
        store.acquire_lease("d0", f"op{worker}", ttl_s=60)
        out.put((worker, True))
    except LeaseHeldError:
        out.put((worker, False))
    store.close()


def test_only_one_process_wins_a_contested_lease(store_url: str) -> None:  # noqa: F811
    store = FeedbackStore(store_url)
    store.add_document(_doc(0))
    won = dict(_run(_grab, store, WORKERS))
    winners = [w for w, ok in won.items() if ok]
    assert len(winners) == 1
    assert holder(store, "d0") == f"op{winners[0]}"
    assert [(e.operator, e.event) for e in store.lease_history("d0")] == [
        (f"op{winners[0]}", "acquire")]
