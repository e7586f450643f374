"""Stores made by older schema revisions migrate with all their data (SQLite, PostgreSQL).

``fixtures/store_0002.sqlite`` is a store file at revision 0002, the schema before lease
history, built by ``fixtures/make_old_store.py`` (which also lists its rows, ``ROWS``).
"""

from __future__ import annotations

import importlib.util
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import Connection, MetaData, create_engine
from test_store import (  # noqa: F401
    T0,
    Clock,
    holder,
    make_doc,
    make_result,
    store_url,
    table_rows,
)
from test_store_feedback import _seen, _total

from extractor.document import Document
from feedback_ui.store import FeedbackStore, RejectedValue, migrate, pgtemp
from feedback_ui.store.engine import make_engine
from feedback_ui.store.models import Base

FIXTURES = Path(__file__).with_name("fixtures")
_spec = importlib.util.spec_from_file_location("make_old_store", FIXTURES / "make_old_store.py")
assert _spec and _spec.loader
old = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(old)


def _expected_after_upgrade() -> dict[str, list[dict[str, Any]]]:
    """``ROWS`` as the newest schema holds them: unchanged, plus one ``acquire`` event per
    lease that stood at upgrade time (oldest first)."""
    leases = sorted(old.ROWS["leases"], key=lambda r: (r["acquired_at"], r["doc_id"]))
    events = [{"id": i, "doc_id": r["doc_id"], "operator": r["operator"], "event": "acquire",
               "at": r["acquired_at"], "expires_at": r["expires_at"], "previous": None}
              for i, r in enumerate(leases, 1)]
    return {**old.ROWS, "lease_events": events}


def _by_name(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """``rows`` as ``table_rows`` lists them: tables by name, rows by primary key."""
    pk = {t.name: [c.name for c in t.primary_key.columns] for t in Base.metadata.sorted_tables}
    return {t: sorted(rows[t], key=lambda r: [r[c] for c in pk[t]]) for t in sorted(rows)}


def _check_migrated(store: FeedbackStore) -> None:
    """Every old row is there as it was, and the store reads and writes them as before."""
    store.clock.now = T0 + timedelta(days=1)  # type: ignore[attr-defined]  # bob's lease expired
    assert store.schema_revision == migrate.head_revision()
    assert table_rows(store.engine) == _by_name(_expected_after_upgrade())
    quoted = old.QUOTED
    assert store.current_values("r001") == {"company": "SHOP SDN BHD", "total": "1.50",
                                            "date": "01-02-2018"}  # save 3 was undone
    assert [(h.save_id, h.after, h.undone) for h in store.history("r001")] == [
        (1, "SHOP SDN BHD", False), (1, "1.50", False), (1, "01-02-2018", False),
        (3, "<b>1.55</b> & 'x'", True)]
    assert store.current_values(quoted) == {"total": None, "date": None, "company": None}
    assert store.reviewed_doc_ids() == {"r001"} and store.open_fields() == {quoted: {"total"}}
    assert store.get_document(quoted) == old.DOCS[1]
    [fb] = store.iter_feedback(model_version=old.MODEL, actions={"accept", "pick", "edit"})
    assert fb.document == old.DOCS[0] and fb.seconds == 42.25
    assert fb.fields["total"].final_span == [5]
    assert fb.fields["total"].rejected == [RejectedValue("20.00", None, 0.6, 0, False)]
    assert list(store.iter_preference_pairs(model_version="kv.ensemble.v1@99ff")) == []  # undone
    assert holder(store, "r003") == "ann" and holder(store, quoted) is None
    # The migrated store takes new work: a takeover, a review, an undo, with new ids.
    store.acquire_lease(quoted, "cy", ttl_s=60)
    save = store.save_review(quoted, "cy", [_total("edit", "9.90", None,
                                                   seen=_seen(store, quoted, "total"))],
                             started_at=store.clock(), release=True)
    assert save.id == 5 and store.current_values(quoted)["total"] == "9.90"
    assert [(e.operator, e.event, e.previous) for e in store.lease_history(quoted)] == [
        ("bob o'neil", "acquire", None), ("cy", "takeover", "bob o'neil"), ("cy", "release", None)]
    assert store.undo_last("cy").undoes_id == 5


def test_committed_fixture_holds_what_its_script_builds(tmp_path: Path) -> None:
    committed = create_engine(f"sqlite:///{FIXTURES / 'store_0002.sqlite'}")
    rebuilt = create_engine(f"sqlite:///{old.build(tmp_path / 'rebuilt.sqlite')}")
    try:
        assert migrate.current_revision(committed) == old.REVISION == "0002"
        assert table_rows(committed) == table_rows(rebuilt) == _by_name(old.ROWS)
    finally:
        committed.dispose()
        rebuilt.dispose()


def test_store_file_of_the_previous_schema_migrates_with_all_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    shutil.copy(FIXTURES / "store_0002.sqlite", path)
    _check_migrated(FeedbackStore(path, clock=Clock()))
    assert migrate.current_revision(make_engine(path)) == migrate.head_revision()


def test_postgresql_store_of_the_previous_schema_migrates_with_all_its_data(pg_server: str
                                                                             ) -> None:
    url = pgtemp.create_database(pg_server, "old_0002")
    engine = make_engine(url)
    with engine.begin() as conn:
        old.fill(conn)
    assert migrate.current_revision(engine) == "0002"
    engine.dispose()
    _check_migrated(FeedbackStore(url, clock=Clock()))


def _rows_at_0001(conn: Connection, doc: Document) -> None:
    """As 0001 stored them: a review (pick), a second review (edit) that was undone, a lease."""
    t = MetaData()
    t.reflect(conn)

    def insert(table: str, **row: Any) -> int | None:
        res = conn.execute(t.tables[table].insert(), row)
        return res.inserted_primary_key[0] if res.inserted_primary_key else None

    res = make_result(doc)
    cands = [c.export() for c in res.fields["total"].candidates]
    insert("documents", id=doc.id, source=doc.source, content_hash=doc.content_hash(),
           data=doc.export(), dataset="default", created_at=T0, revision=3)
    eid = insert("extractions", doc_id=doc.id, model_version="m1", data=res.export(),
                 created_at=T0)
    ids = []
    for op, final, shown, secs in (("ann", "1.50", "20.00", 20), ("bob", "9.99", "1.50", 40)):
        sid = insert("saves", doc_id=doc.id, extraction_id=eid, kind="review", undoes_id=None,
                     operator=op, dataset="default", started_at=T0,
                     ended_at=T0 + timedelta(seconds=secs))
        insert("actions", save_id=sid, doc_id=doc.id, field="total",
               action="pick" if op == "ann" else "edit", pick_index=1 if op == "ann" else None,
               shown_value=shown, shown_confidence=0.6, candidates_shown=cands,
               prev_value=shown, final_value=final)
        ids.append(sid)
    insert("saves", doc_id=doc.id, extraction_id=eid, kind="undo", undoes_id=ids[1],
           operator="bob", dataset="default", started_at=T0, ended_at=T0)
    insert("leases", doc_id=doc.id, operator="ann", acquired_at=T0,
           expires_at=datetime.now(timezone.utc) + timedelta(hours=1))


def test_store_made_at_0001_upgrades_with_its_data(store_url: str) -> None:  # noqa: F811
    doc = make_doc(1)
    engine = make_engine(store_url)
    cfg = migrate.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        _rows_at_0001(conn, doc)
    engine.dispose()
    store = FeedbackStore(store_url)
    assert store.schema_revision == migrate.head_revision()
    assert store.current_values(doc.id) == {"total": "1.50"}
    assert [(h.after, h.undone) for h in store.history(doc.id)] == [("1.50", False),
                                                                     ("9.99", True)]
    assert store.reviewed_doc_ids() == {doc.id}
    [fb] = store.iter_feedback()
    total = fb.fields["total"]
    assert (total.final_value, total.final_span, fb.seconds) == ("1.50", None, 20.0)
    assert total.rejected == [RejectedValue("20.00", [6], 0.6, 0, False)]
    lease = store.lease_of(doc.id)
    assert lease is not None and lease.operator == "ann"
    assert [(e.operator, e.event, e.at) for e in store.lease_history(doc.id)] == [
        ("ann", "acquire", T0)]
    # The upgraded store takes new rows with spans beside the old ones.
    store.save_review(doc.id, "ann", [_total("pick", "1.50", "1.50", span=[4],
                                            seen=_seen(store, doc.id, "total"))],
                      started_at=T0)
    [fb] = store.iter_feedback()
    assert fb.fields["total"].final_span == [4]
