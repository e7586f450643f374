"""A writer killed with SIGKILL in the middle of a save leaves the store as it was before that
save (all of it or none), and the next writer works (SQLite, PostgreSQL).

Two ways to land the kill inside a transaction: a hook stops the child right after a chosen
statement of the save ran (or as it commits) and the parent kills it there; and a child that
saves in a loop is killed at random times, again and again, with the whole store checked
after every kill. The children are forked (they start in milliseconds); the parent disposes of
its engine first so no connection crosses the fork.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from test_store import make_doc, make_result, store_url, table_rows  # noqa: F401
from test_store_concurrency import FIELDS, review

from feedback_ui.store import FeedbackStore

CTX = mp.get_context("fork")
OPERATOR = "ann"
DOCS = 3
KILLS = int(os.environ.get("KVLOOP_STORE_KILLS", "6"))
"""Random kills per back end in the loop test (raise it for a longer run)."""


def _prepared(url: str) -> FeedbackStore:
    """Documents, one finished review by ann (something to undo) and ann's lease on r001."""
    store = FeedbackStore(url)
    docs = [make_doc(i) for i in range(1, DOCS + 1)]
    store.add_batch(docs, [make_result(d) for d in docs])
    store.acquire_lease("r002", OPERATOR)
    store.save_review("r002", OPERATOR, review(store, "r002", "first"), started_at=_now(),
                      release=True)
    store.acquire_lease("r001", OPERATOR)
    return store


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _operation(store: FeedbackStore, what: str) -> None:
    if what == "save":
        store.save_review("r001", OPERATOR, review(store, "r001", "second"), started_at=_now(),
                          release=True)
    elif what == "undo":
        store.undo_last(OPERATOR)
    else:  # an import: new documents and their results in one transaction
        docs = [make_doc(i) for i in range(10, 14)]
        store.add_batch(docs, [make_result(d) for d in docs])


def _stop_here(ready: Any) -> None:
    ready.set()
    time.sleep(600)  # killed here, inside the open transaction


def _doomed(url: str, what: str, after: str | None, ready: Any) -> None:
    store = FeedbackStore(url)
    if after is None:  # as the transaction commits (before the database is told to)
        event.listen(store.engine, "commit", lambda _conn: _stop_here(ready))
    else:
        def hook(_conn: Any, _cur: Any, statement: str, *_: Any) -> None:
            if statement.startswith(after):
                _stop_here(ready)
        event.listen(store.engine, "after_cursor_execute", hook)
    _operation(store, what)
    raise AssertionError(f"{what} finished: the hook on {after!r} never ran")


STAGES = {
    "save: save row written": ("save", "INSERT INTO saves"),
    "save: every action written": ("save", "INSERT INTO actions"),
    "save: lease released": ("save", "INSERT INTO lease_events"),
    "save: committing": ("save", None),
    "undo: undo row written": ("undo", "INSERT INTO saves"),
    "import: results written": ("import", "INSERT INTO extractions"),
}


def _kill(proc: Any) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL


def _check_integrity(store: FeedbackStore) -> None:
    if store.engine.dialect.name == "sqlite":
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


@pytest.mark.parametrize("stage", list(STAGES))
def test_writer_killed_inside_a_transaction_leaves_nothing_and_the_next_one_works(
        store_url: str, stage: str) -> None:  # noqa: F811
    what, after = STAGES[stage]
    store = _prepared(store_url)
    before = table_rows(store.engine)
    store.engine.dispose()
    ready = CTX.Event()
    proc = CTX.Process(target=_doomed, args=(store_url, what, after, ready))
    proc.start()
    assert ready.wait(60), f"the child never reached {stage!r} (exit code {proc.exitcode})"
    _kill(proc)
    assert table_rows(store.engine) == before  # nothing of the killed transaction is left
    _check_integrity(store)
    _operation(store, what)  # the next writer: the same work, done whole
    rows = table_rows(store.engine)
    new_saves = rows["saves"][len(before["saves"]):]
    new_actions = rows["actions"][len(before["actions"]):]
    if what == "save":
        assert [s["kind"] for s in new_saves] == ["review"] and len(new_actions) == FIELDS
        assert store.current_values("r001")["date"] == "second" and store.lease_of("r001") is None
    elif what == "undo":
        assert [(s["kind"], s["undoes_id"]) for s in new_saves] == [("undo", 1)]
        assert store.current_values("r002") == {}
    else:
        assert len(rows["documents"]) == DOCS + 4 and len(rows["extractions"]) == DOCS + 4


# -- killed at random times, again and again ------------------------------------------------

def _saver(url: str, log: str, gen: int, ready: Any) -> None:
    """Save forever: each save and undo is logged before it starts and after it returns."""
    store = FeedbackStore(url)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    ready.set()
    for i in range(10**9):
        doc_id, marker = f"r{i % DOCS + 1:03d}", f"g{gen}-s{i}"
        store.acquire_lease(doc_id, OPERATOR, ttl_s=600)
        acts = review(store, doc_id, marker)
        os.write(fd, f"begin {marker} {time.monotonic()}\n".encode())
        store.save_review(doc_id, OPERATOR, acts, started_at=_now(), release=i % 3 != 2)
        os.write(fd, f"done {marker} {time.monotonic()}\n".encode())
        if i % 3 == 2:  # every third save is undone again
            os.write(fd, f"undo-begin {marker}\n".encode())
            store.undo_last(OPERATOR, ttl_s=600)
            os.write(fd, f"undo-done {marker}\n".encode())
            store.release_lease(doc_id, OPERATOR)


def _log(log: Path) -> list[list[str]]:
    return [ln.split() for ln in log.read_text().splitlines()] if log.exists() else []


def _wait_for_saves(log: Path, gen: int, n: int, proc: Any) -> float:
    """Wait until saver ``gen`` finished ``n`` saves and began the next one; returns how long
    a save took it on average."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.is_alive():
        mine = [e for e in _log(log) if e[1].startswith(f"g{gen}-")]
        began = {e[1]: float(e[2]) for e in mine if e[0] == "begin"}
        ended = {e[1]: float(e[2]) for e in mine if e[0] == "done"}
        if len(ended) >= n and len(began) > n:
            return sum(ended[m] - began[m] for m in ended) / len(ended)
        time.sleep(0.005)
    raise AssertionError(f"saver {gen} did not finish {n} save(s) (exit code {proc.exitcode})")


def _consistent(rows: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Every save is whole; returns the number of actions per edit marker."""
    per_save = Counter(a["save_id"] for a in rows["actions"])
    saves = {s["id"]: s for s in rows["saves"]}
    for s in saves.values():
        if s["kind"] == "review":
            assert per_save[s["id"]] == FIELDS, f"save {s['id']} is partial"
        else:
            assert per_save[s["id"]] == 0 and saves[s["undoes_id"]]["kind"] == "review"
    assert set(per_save) <= set(saves)
    # Each field's chain of values never skips one (undone saves aside).
    undone = {s["undoes_id"] for s in saves.values() if s["undoes_id"]}
    last: dict[tuple[str, str], Any] = {}
    for a in rows["actions"]:
        if a["save_id"] in undone:
            continue
        key = (a["doc_id"], a["field"])
        if key in last:
            assert a["prev_value"] == last[key], f"{key}: a value was skipped"
        last[key] = a["final_value"]
    return Counter(a["final_value"] for a in rows["actions"] if a["field"] == "date")


def test_writer_killed_at_random_times_never_leaves_a_partial_save(
        store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    store = _prepared(store_url)
    store.release_lease("r001", OPERATOR)
    rng = random.Random(12)
    log = tmp_path / "saves.log"
    in_flight = Counter[str]()
    for gen in range(KILLS):
        store.engine.dispose()
        ready = CTX.Event()
        proc = CTX.Process(target=_saver, args=(store_url, str(log), gen, ready))
        proc.start()
        assert ready.wait(60), f"saver {gen} did not start (exit code {proc.exitcode})"
        # After a random number of saves returned (counted, so a loaded machine still sees
        # saves between kills), kill at a random moment while the next save is under way.
        took = _wait_for_saves(log, gen, rng.randint(1, 3), proc)
        time.sleep(rng.uniform(0.0, 1.2 * took))
        _kill(proc)
        rows = table_rows(store.engine)
        _check_integrity(store)
        dates = _consistent(rows)
        entries = [e[:2] for e in _log(log)]
        done = {m for k, m in entries if k == "done"}
        assert all(dates[m] == 1 for m in done)  # every save that returned is there
        begun = [m for k, m in entries if k == "begin" and m.startswith(f"g{gen}-")]
        if begun and begun[-1] not in done:  # killed with a save under way
            in_flight["committed" if dates[begun[-1]] else "absent"] += 1
        undos = [m for k, m in entries if k == "undo-begin" and m.startswith(f"g{gen}-")]
        if undos and ["undo-done", undos[-1]] not in entries:  # killed with an undo under way
            [target] = {a["save_id"] for a in rows["actions"] if a["final_value"] == undos[-1]}
            undone = any(s["undoes_id"] == target for s in rows["saves"])
            in_flight["undo committed" if undone else "undo absent"] += 1
    # The next writer after the last kill works.
    store.acquire_lease("r001", OPERATOR)
    store.save_review("r001", OPERATOR, review(store, "r001", "after"), started_at=_now())
    assert _consistent(table_rows(store.engine))["after"] == 1
    n_done = sum(1 for ln in log.read_text().splitlines() if ln.startswith("done"))
    with capsys.disabled():
        print(f"\n[{store.engine.dialect.name}] {KILLS} kills, {n_done} saves returned; killed "
              f"with a save under way: {in_flight['committed'] + in_flight['absent']} "
              f"({in_flight['committed']} committed whole, {in_flight['absent']} absent), "
              f"with an undo under way: {in_flight['undo committed'] + in_flight['undo absent']} "
              f"({in_flight['undo committed']} committed, {in_flight['undo absent']} absent); "
              "partial saves: 0")
