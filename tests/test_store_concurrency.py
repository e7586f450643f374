"""Several processes reviewing and saving into one store at once lose nothing (SQLite, PG)."""

from __future__ import annotations

import multiprocessing as mp
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from extractor.document import Candidate, Document, ExtractionResult, FieldResult, Word
from feedback_ui.store import FeedbackStore, FieldAction, LeaseHeldError, pgtemp

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


def _worker(url: str, worker: int, barrier: Any, out: Any) -> None:
    """Every worker walks every document in its own order; whoever holds the lease saves."""
    store = FeedbackStore(url)
    rng = random.Random(worker)
    op = f"op{worker}"
    saved: list[tuple[str, str]] = []
    barrier.wait()  # start together so saves really overlap
    for rnd in range(ROUNDS):
        order = list(range(DOCS))
        rng.shuffle(order)
        for i in order:
            doc_id = f"d{i}"
            try:
                store.acquire_lease(doc_id, op, ttl_s=60)
            except LeaseHeldError:
                continue
            cur = store.current(doc_id).get("total")
            value = f"{op}-r{rnd}"
            store.save_review(doc_id, op, [FieldAction(
                "total", "edit", value, cur.value if cur else f"{i}.00", 0.5,
                [Candidate(f"{i}.00", 0.5, [1])], seen_action_id=cur.action_id if cur else None)],
                started_at=datetime.now(timezone.utc), release=True)
            saved.append((doc_id, value))
    store.close()
    out.put((worker, saved))


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
    reported = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    claimed = [s for saves in reported.values() for s in saves]
    assert len(claimed) >= DOCS * ROUNDS  # every document was saved in every round at least
    stored = []
    for d in docs:
        hist = store.history(d.id)
        stored += [(d.id, h.after) for h in hist]
        # Each save saw the one before it: the chain before -> after never skips a value.
        befores = [h.before for h in hist]
        assert befores == [f"{d.words[1].text}"] + [h.after for h in hist[:-1]]
        assert store.current_values(d.id)["total"] == hist[-1].after
    assert sorted(stored) == sorted(claimed)


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
