"""``kvloop store export --kind backup`` / ``import``: every row of every table comes back, on
SQLite, on PostgreSQL and from one to the other; a bad backup restores nothing."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from test_store import (  # noqa: F401
    HOSTILE,
    T0,
    Clock,
    fill,
    make_doc,
    make_result,
    pick_total,
    store_url,
    table_rows,
)
from test_store_migration import FIXTURES, _by_name, _expected_after_upgrade

from extractor.document import Candidate, Document, Word
from feedback_ui.store import FeedbackStore, FieldAction, migrate, pgtemp
from feedback_ui.store.backup import TABLES, BackupError, export_backup, import_backup
from feedback_ui.store.models import Base

ODD = HOSTILE[1]  # "x'); DROP TABLE saves; --"


def busy_store(url: str) -> FeedbackStore:
    """A store with a row in every table: results of two models, reviews with every action
    kind, an undo, a lease taken over, one released and one live, awkward strings and floats."""
    clock = Clock()
    store = FeedbackStore(url, clock=clock)
    docs = fill(store, 3)
    odd = Document(ODD, [Word(HOSTILE[8], (0, 0, 5, 5)), Word(HOSTILE[7], (5, 0, 9, 5))],
                   10, 10, source=HOSTILE[5])
    store.add_batch([odd], [make_result(d, "m2") for d in docs], dataset=HOSTILE[2])
    eid = store.extraction_index()[0][0]  # r001's m1 result
    store.acquire_lease("r001", "ann")
    clock.now += timedelta(seconds=33.125)
    store.save_review("r001", "ann", pick_total(docs[0]), started_at=T0, extraction_id=eid,
                      release=True)
    store.acquire_lease(ODD, HOSTILE[0])
    cands = [Candidate(HOSTILE[3], 0.1 + 0.2, [0]), Candidate("x", 1e-300, [])]
    store.save_review(ODD, HOSTILE[0], [
        FieldAction("total", "reject", None, HOSTILE[3], 2 / 3, cands),
        FieldAction("date", "clear", None, "x", None, cands),
        FieldAction("company", "not_present", None, None, 0.0, []),
        FieldAction(HOSTILE[4], "edit", HOSTILE[6], "x", 0.5, cands, final_span=[0, 1])],
        started_at=T0, dataset=HOSTILE[2], release=True)
    store.acquire_lease("r001", "ann")
    seen = store.current("r001")["total"].action_id
    store.save_review("r001", "ann", [FieldAction("total", "edit", "1.55", "1.50", 0.3, [],
                                                  seen_action_id=seen)], started_at=clock.now)
    store.undo_last("ann")  # hands r001 back to ann ...
    clock.now += timedelta(minutes=20)
    store.acquire_lease("r001", "cy")  # ... who left: cy takes the expired lease over
    store.acquire_lease("r003", "dee", ttl_s=3600)
    return store


def _same_rows(a: FeedbackStore, b: FeedbackStore) -> None:
    rows = table_rows(a.engine)
    assert set(rows) == set(TABLES) and all(rows.values())  # every table has rows
    assert table_rows(b.engine) == rows


def test_backup_lists_every_table() -> None:
    assert set(TABLES) == set(Base.metadata.tables)


@pytest.mark.parametrize("name", ["backup.jsonl", "backup.jsonl.gz"])
def test_backup_round_trips_every_row(store_url: str, tmp_path: Path, name: str,  # noqa: F811
                                      request: pytest.FixtureRequest) -> None:
    src = busy_store(store_url)
    out = export_backup(src, tmp_path / name)
    assert out.rows == {t: len(r) for t, r in table_rows(src.engine).items()}
    if store_url.startswith("sqlite"):
        dst_url = f"sqlite:///{tmp_path / 'restored.db'}"
    else:
        dst_url = pgtemp.create_database(request.getfixturevalue("pg_server"),
                                         f"r_{name.replace('.', '_')}")
    got = import_backup(dst_url, tmp_path / name)
    assert got.rows == out.rows and got.schema_revision == migrate.head_revision()
    dst = FeedbackStore(dst_url, clock=src.clock)
    _same_rows(src, dst)
    again = export_backup(dst, tmp_path / f"again-{name}")
    read = gzip.open if name.endswith(".gz") else open
    with read(tmp_path / name, "rb") as a, read(again.path, "rb") as b:
        assert a.read() == b.read()
    # The restored store goes on: new rows get new ids (PostgreSQL's sequences were moved).
    dst.acquire_lease("r002", "eve")
    save = dst.save_review("r002", "eve", pick_total(make_doc(2)), started_at=T0)
    assert save.id == max(s.id for s in src.saves()) + 1


def test_backup_moves_between_sqlite_and_postgresql(pg_server: str, tmp_path: Path) -> None:
    lite = busy_store(f"sqlite:///{tmp_path / 'a.db'}")
    export_backup(lite, tmp_path / "a.jsonl")
    pg_url = pgtemp.create_database(pg_server, "from_sqlite")
    import_backup(pg_url, tmp_path / "a.jsonl")
    pg = FeedbackStore(pg_url)
    _same_rows(lite, pg)
    export_backup(pg, tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    import_backup(tmp_path / "back.db", tmp_path / "b.jsonl")
    _same_rows(lite, FeedbackStore(tmp_path / "back.db"))


def test_backup_of_the_previous_schema_restores_migrated(tmp_path: Path) -> None:
    # A backup as kvloop at revision 0002 wrote it: the fixture store's rows, no lease history.
    engine = create_engine(f"sqlite:///{FIXTURES / 'store_0002.sqlite'}")
    rows = table_rows(engine)
    engine.dispose()
    lines = [{"kvloop_store_backup": 1, "schema_revision": "0002"}]
    lines += [{"table": t, "row": r} for t in TABLES if t in rows for r in rows[t]]
    lines.append({"end": {t: len(rows[t]) for t in TABLES if t in rows}})
    path = tmp_path / "old.jsonl"
    path.write_text("".join(json.dumps(x, default=lambda d: d.isoformat()) + "\n"
                            for x in lines), encoding="utf-8")
    report = import_backup(tmp_path / "new.db", path)
    assert report.schema_revision == "0002" and "lease_events" not in report.rows
    store = FeedbackStore(tmp_path / "new.db")
    assert table_rows(store.engine) == _by_name(_expected_after_upgrade())


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


BAD = {
    "not a backup": (lambda ls: ['{"documents": []}\n'] + ls[1:], "line 1: not a kvloop store"),
    "newer schema": (lambda ls: ['{"kvloop_store_backup": 1, "schema_revision": "9999"}\n']
                     + ls[1:], "revision '9999' is unknown"),
    "cut short": (lambda ls: ls[:-3], "cut short"),
    "count mismatch": (lambda ls: ls[:-2] + ls[-1:], "end line counts"),
    "dangling row": (lambda ls: ls[:1] + ls[2:],
                     r"lines 5-\d+: the extractions rows break the store's rules \(FOREIGN KEY"),
    "duplicate id": (lambda ls: ls[:2] + ls[1:], "lines 2-6: the documents rows break .*UNIQUE"),
    "bad JSON": (lambda ls: ls[:4] + ['{"table": "saves", \n'] + ls[4:], "line 5: not valid JSON"),
    "unknown table": (lambda ls: ls[:2] + ['{"table": "users", "row": {}}\n'] + ls[2:],
                      "line 3: not a row of a store table"),
    "unknown column": (lambda ls: ls[:1] + [ls[1].replace('"source"', '"sauce"')] + ls[2:],
                       "line 2: documents has no column"),
    "out of order": (lambda ls: ls[:1] + ls[-2:-1] + ls[1:-2] + ls[-1:],
                     "line 3: a documents row after lease_events"),
    "bad date": (lambda ls: [ls[0], ls[1].replace('"created_at": "', '"created_at": "x')]
                 + ls[2:], "line 2: documents: Invalid isoformat"),
    "data after end": (lambda ls: ls + ls[1:2], "data after the end line"),
}


@pytest.mark.parametrize("defect", list(BAD))
def test_a_bad_backup_is_refused_naming_the_problem_and_restores_nothing(
        tmp_path: Path, defect: str) -> None:
    good = export_backup(busy_store(f"sqlite:///{tmp_path / 'a.db'}"), tmp_path / "a.jsonl")
    change, message = BAD[defect]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(change(_lines(good.path))), encoding="utf-8")
    with pytest.raises(BackupError, match=message) as err:
        import_backup(tmp_path / "new.db", bad)
    assert str(bad) in str(err.value)
    engine = create_engine(f"sqlite:///{tmp_path / 'new.db'}")
    assert inspect(engine).get_table_names() == []  # not even the schema stayed


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no such backup file"):
        import_backup(tmp_path / "new.db", tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(BackupError, match="empty.jsonl: the file is empty"):
        import_backup(tmp_path / "new.db", tmp_path / "empty.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"kvloop_store_backup": 1}\n\xe9\xff\n')
    with pytest.raises(BackupError, match="latin1.jsonl: not UTF-8"):
        import_backup(tmp_path / "new.db", tmp_path / "latin1.jsonl")
    good = export_backup(busy_store(f"sqlite:///{tmp_path / 'a.db'}"), tmp_path / "a.jsonl.gz")
    (tmp_path / "cut.jsonl.gz").write_bytes(good.path.read_bytes()[:300])
    with pytest.raises(BackupError, match="cut.jsonl.gz: cannot read"):
        import_backup(tmp_path / "new.db", tmp_path / "cut.jsonl.gz")


def test_a_backup_goes_only_into_an_empty_store(store_url: str,  # noqa: F811
                                                tmp_path: Path) -> None:
    store = busy_store(store_url)
    export_backup(store, tmp_path / "a.jsonl")
    before = table_rows(store.engine)
    with pytest.raises(BackupError, match=r"already holds rows \(\d+ actions, .*new, empty store"):
        import_backup(store_url, tmp_path / "a.jsonl")
    assert table_rows(store.engine) == before


def test_a_cut_short_backup_leaves_postgresql_as_it_was(pg_server: str, tmp_path: Path) -> None:
    good = export_backup(busy_store(f"sqlite:///{tmp_path / 'a.db'}"), tmp_path / "a.jsonl")
    (tmp_path / "cut.jsonl").write_text("".join(_lines(good.path)[:-1]), encoding="utf-8")
    url = pgtemp.create_database(pg_server, "cut_short")
    FeedbackStore(url).close()  # an empty store at the newest schema
    with pytest.raises(BackupError, match="cut short"):
        import_backup(url, tmp_path / "cut.jsonl")
    store = FeedbackStore(url)
    assert store.schema_revision == migrate.head_revision()
    assert not any(table_rows(store.engine).values())  # schema back as it was, no rows
