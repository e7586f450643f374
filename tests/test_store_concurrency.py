"""Several processes reviewing, rejecting, saving and undoing in one store at once lose nothing
(SQLite, PostgreSQL)."""

from __future__ import annotations

import multiprocessing as mp
import random
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from extractor.document import Candidate, Document, ExtractionResult, FieldResult, Word
from feedback_ui.store import FeedbackStore, FieldAction, LeaseHeldError, StaleValueError, pgtemp

WORKERS, DOCS, ROUNDS = 4, 6, 3


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    name = f"c_{request.node.name.split('[')[0][5:40]}"  # one database per test
    return pgtemp.create_database(request.getfixturevalue("pg_server"), name)


def _doc(i: int) -> Document:
    return Document(id=f"d{i}", words=[Word("TOTAL", (0, 0, 40, 10)), Word(f"{i}.00", (50, 0, 90, 10))],
                    width=100, height=20)


def _visit(store: FeedbackStore, op: str, i: int, rnd: int, rng: random.Random) -> str | None:
    """Save an edit, or (three times in ten) a reject of the value shown; returns the value."""
    doc_id = f"d{i}"
    cur = store.current(doc_id).get("total")
    shown = cur.value if cur else f"{i}.00"
    reject = shown is not None and rng.random() < 0.3
    store.save_review(doc_id, op, [FieldAction(
        "total", "reject" if reject else "edit", None if reject else f"{op}-r{rnd}", shown, 0.5,
        [Candidate(f"{i}.00", 0.5, [1])], seen_action_id=cur.action_id if cur else None)],
        started_at=datetime.now(timezone.utc), release=True)
    return None if reject else f"{op}-r{rnd}"


def _worker(url: str, worker: int, barrier: Any, out: Any) -> None:
    """Every worker walks every document in its own order; whoever holds the lease saves, and
    now and then undoes that save again (refused if someone saved or took the lease since)."""
    store = FeedbackStore(url)
    rng = random.Random(worker)
    op = f"op{worker}"
    saved: list[tuple[str, str | None]] = []
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
            saved.append((f"d{i}", _visit(store, op, i, rnd, rng)))
            if rng.random() < 0.25:
                try:
                    undone.append(store.undo_last(op, ttl_s=60).undoes_id)
                    store.release_lease(f"d{i}", op)
                except (LeaseHeldError, StaleValueError):
                    pass
    store.close()
    out.put((worker, saved, undone))


def test_concurrent_processes_lose_no_save(store_url: str) -> None:
    store = FeedbackStore(store_url)
    docs = [_doc(i) for i in range(DOCS)]
    store.add_batch(docs, [ExtractionResult(d.id, "m1", {"total": FieldResult(
        "total", [Candidate(d.words[1].text, 0.5, [1])], 0.5)}) for d in docs])
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(store_url, w, barrier, out))
             for w in range(WORKERS)]
    for p in procs:
        p.start()
    reported = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    claimed = [s for _, saves, _ in reported for s in saves]
    undone = {u for _, _, us in reported for u in us}
    assert len(claimed) >= DOCS * ROUNDS  # every document was saved in every round at least
    assert undone and None in {v for _, v in claimed}  # some undos and rejects happened
    stored, flagged, reviewed = [], set(), set()
    for d in docs:
        hist = store.history(d.id)
        stored += [(d.id, h.after) for h in hist]
        flagged |= {h.save_id for h in hist if h.undone}
        live = [h for h in hist if not h.undone]
        # Each save saw the one before it (undone ones aside): the chain never skips a value.
        assert [h.before for h in live] == [d.words[1].text] + [h.after for h in live[:-1]]
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


def test_only_one_process_wins_a_contested_lease(store_url: str) -> None:
    store = FeedbackStore(store_url)
    store.add_document(_doc(0))
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_grab, args=(store_url, w, barrier, out)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    won = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    winners = [w for w, ok in won.items() if ok]
    assert len(winners) == 1
    assert store.lease_of("d0").operator == f"op{winners[0]}"
