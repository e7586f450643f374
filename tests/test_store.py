"""The feedback store on SQLite and on a real throwaway PostgreSQL cluster."""

from __future__ import annotations

import itertools
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, event, inspect, select, text

from extractor.document import Candidate, Document, ExtractionResult, FieldResult, Word
from feedback_ui.checks import MAX_OPERATOR_CHARS, operator_id
from feedback_ui.store import (
    DocumentConflictError,
    FeedbackStore,
    FieldAction,
    LeaseHeldError,
    LeaseLostError,
    NothingToUndoError,
    StaleValueError,
    UnknownDocumentError,
    as_utc,
    export_jsonl,
    migrate,
    pgtemp,
    to_dataset,
)
from feedback_ui.store.errors import UnstorableValueError
from feedback_ui.store.models import NAME_MAX

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
_db_counter = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    server = request.getfixturevalue("pg_server")
    return pgtemp.create_database(server, f"t{next(_db_counter)}")


class Clock:
    """A clock tests move by hand (lease expiry)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def make_doc(i: int = 1) -> Document:
    words = [Word("SHOP", (10, 10, 80, 30)), Word("SDN", (90, 10, 140, 30)),
             Word("01/02/2018", (10, 40, 120, 60)), Word("TOTAL", (10, 70, 70, 90)),
             Word(f"{i}.50", (100, 70, 150, 90)), Word("CASH", (10, 100, 60, 120)),
             Word("20.00", (100, 100, 150, 120))]
    return Document(id=f"r{i:03d}", words=words, width=200, height=300,
                    source=f"/data/r{i:03d}.jpg")


def make_result(doc: Document, version: str = "m1") -> ExtractionResult:
    n = len(doc.words)
    return ExtractionResult(doc_id=doc.id, model_version=version, doc_hash=doc.content_hash(), fields={
        "company": FieldResult("company", [Candidate("SHOP SDN", 0.9, [0, 1]),
                                           Candidate("SHOP", 0.05, [0])], 0.9),
        "total": FieldResult("total", [Candidate("20.00", 0.6, [n - 1]),
                                       Candidate(doc.words[4].text, 0.3, [4])], 0.6),
    })


def fill(store: FeedbackStore, n: int = 2) -> list[Document]:
    docs = [make_doc(i) for i in range(1, n + 1)]
    store.add_batch(docs, [make_result(d) for d in docs])
    return docs


def pick_total(doc: Document, seen: int | None = None) -> list[FieldAction]:
    res = make_result(doc)
    return [
        FieldAction("company", "accept", "SHOP SDN", "SHOP SDN", 0.9,
                    res.fields["company"].candidates, seen_action_id=None),
        FieldAction("total", "pick", doc.words[4].text, "20.00", 0.6,
                    res.fields["total"].candidates, pick_index=1, seen_action_id=seen),
    ]


def test_migrations_create_schema_and_reopen_is_idempotent(store_url: str) -> None:
    store = FeedbackStore(store_url)
    assert store.schema_revision == migrate.head_revision()
    names = set(inspect(store.engine).get_table_names())
    assert {"documents", "extractions", "saves", "actions", "leases", "alembic_version"} <= names
    store.close()
    again = FeedbackStore(store_url)
    assert migrate.current_revision(again.engine) == migrate.head_revision()
    again.close()


def test_sqlite_uses_wal_and_busy_timeout(tmp_path: Path) -> None:
    store = FeedbackStore(str(tmp_path / "plain-path.db"))  # a bare path works too
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_documents_and_results_round_trip(store_url: str) -> None:
    store = FeedbackStore(store_url)
    doc = make_doc()
    assert store.add_document(doc) is True
    assert store.add_document(doc) is False  # same content: nothing new
    eid = store.add_result(make_result(doc))
    assert store.get_document(doc.id) == doc
    latest = store.latest_result(doc.id)
    assert latest is not None
    got_eid, got = latest
    assert got_eid == eid and got.export() == make_result(doc).export() | {
        "created_at": got.created_at}
    assert store.model_versions() == ["m1"]
    changed = Document(doc.id, [Word("OTHER", (0, 0, 1, 1))], 10, 10)
    with pytest.raises(DocumentConflictError, match="r001"):
        store.add_document(changed)
    with pytest.raises(UnknownDocumentError, match="nope"):
        store.add_result(ExtractionResult("nope", "m1", {}))


def test_add_batch_writes_nothing_when_one_item_fails(store_url: str) -> None:
    store = FeedbackStore(store_url)
    docs = [make_doc(1), make_doc(2)]
    bad = ExtractionResult("missing", "m1", {})
    with pytest.raises(UnknownDocumentError):
        store.add_batch(docs, [make_result(docs[0]), bad])
    assert store.document_ids() == [] and store.extraction_index() == []


def test_save_records_everything_shown_and_derives_current(store_url: str) -> None:
    clock = Clock()
    store = FeedbackStore(store_url, clock=clock)
    doc = fill(store, 1)[0]
    eid = store.extraction_index()[0][0]
    store.acquire_lease(doc.id, "ann")
    clock.now += timedelta(seconds=42)
    save = store.save_review(doc.id, "ann", pick_total(doc), started_at=T0, extraction_id=eid,
                             dataset="sroie-week1")
    assert store.current_values(doc.id) == {"company": "SHOP SDN", "total": "1.50"}
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT field, action, pick_index, shown_value, "
                                 "candidates_shown, prev_value, final_value FROM actions "
                                 "ORDER BY id")).all()
        saved = conn.execute(text("SELECT operator, dataset, kind FROM saves")).all()
    assert saved == [("ann", "sroie-week1", "review")]
    total = rows[1]
    cands = total[4] if isinstance(total[4], list) else json.loads(total[4])
    assert total[:4] == ("total", "pick", 1, "20.00")
    assert [c["value"] for c in cands] == ["20.00", "1.50"]
    assert total[5:] == ("20.00", "1.50")
    assert (save.started_at, save.ended_at) == (T0, T0 + timedelta(seconds=42))


def test_later_correction_never_erases_earlier_one(store_url: str) -> None:
    store = FeedbackStore(store_url)
    doc = fill(store, 1)[0]
    store.acquire_lease(doc.id, "ann")
    store.save_review(doc.id, "ann", pick_total(doc), started_at=T0)
    seen = store.current(doc.id)["total"].action_id
    fix = FieldAction("total", "edit", "1.5", "1.50", 0.6, [], seen_action_id=seen)
    store.save_review(doc.id, "ann", [fix], started_at=T0)
    hist = [(h.field, h.before, h.after) for h in store.history(doc.id)]
    assert hist == [("company", "SHOP SDN", "SHOP SDN"), ("total", "20.00", "1.50"),
                    ("total", "1.50", "1.5")]
    assert store.current_values(doc.id)["total"] == "1.5"


def test_stale_field_is_rejected_not_overwritten(store_url: str) -> None:
    store = FeedbackStore(store_url)
    doc = fill(store, 1)[0]
    store.acquire_lease(doc.id, "ann")
    store.save_review(doc.id, "ann", pick_total(doc), started_at=T0)
    # A second form opened before that save still believes the field was never reviewed.
    with pytest.raises(StaleValueError, match="total.*1.50"):
        store.save_review(doc.id, "ann", pick_total(doc), started_at=T0)
    assert len(store.history(doc.id)) == 2


def test_lease_blocks_others_expires_and_can_be_taken_over(store_url: str) -> None:
    clock = Clock()
    store = FeedbackStore(store_url, clock=clock)
    doc = fill(store, 1)[0]
    store.acquire_lease(doc.id, "ann", ttl_s=60)
    with pytest.raises(LeaseHeldError, match="ann"):
        store.acquire_lease(doc.id, "bob", ttl_s=60)
    with pytest.raises(LeaseLostError, match="bob"):
        store.save_review(doc.id, "bob", pick_total(doc), started_at=T0)
    clock.now += timedelta(seconds=61)
    assert store.lease_of(doc.id) is None
    lease = store.acquire_lease(doc.id, "bob", ttl_s=60)
    assert lease.operator == "bob" and lease.expires_at == clock.now + timedelta(seconds=60)
    with pytest.raises(LeaseLostError, match="held by 'bob'"):
        store.save_review(doc.id, "ann", pick_total(doc), started_at=T0)
    store.save_review(doc.id, "bob", pick_total(doc), started_at=T0, release=True)
    assert store.lease_of(doc.id) is None
    assert store.history(doc.id)[0].operator == "bob"


def test_undo_appends_and_restores_previous_value(store_url: str) -> None:
    store = FeedbackStore(store_url)
    doc = fill(store, 1)[0]
    with pytest.raises(NothingToUndoError):
        store.undo_last("ann")
    store.acquire_lease(doc.id, "ann")
    first = store.save_review(doc.id, "ann", pick_total(doc), started_at=T0, release=True)
    undo = store.undo_last("ann")
    assert undo.kind == "undo" and undo.undoes_id == first.id
    assert store.current_values(doc.id) == {}
    assert store.reviewed_doc_ids() == set()
    hist = store.history(doc.id)
    assert len(hist) == 2 and all(h.undone for h in hist)  # still there, flagged
    assert holder(store, doc.id) == "ann"  # undo hands the document back
    with pytest.raises(NothingToUndoError):
        store.undo_last("ann")


def test_undo_refused_after_someone_else_saved(store_url: str) -> None:
    store = FeedbackStore(store_url)
    doc = fill(store, 1)[0]
    store.acquire_lease(doc.id, "ann")
    store.save_review(doc.id, "ann", pick_total(doc), started_at=T0, release=True)
    store.acquire_lease(doc.id, "bob")
    seen = store.current(doc.id)
    store.save_review(doc.id, "bob", [FieldAction(
        "total", "edit", "9.99", "1.50", 0.6, [], seen_action_id=seen["total"].action_id)],
        started_at=T0, release=True)
    with pytest.raises(StaleValueError, match="bob"):
        store.undo_last("ann")


def test_training_api_corrected_pairs_jsonl_and_dataset(store_url: str, tmp_path: Path) -> None:
    store = FeedbackStore(store_url)
    docs = fill(store, 2)
    store.acquire_lease(docs[0].id, "ann")
    store.save_review(docs[0].id, "ann", pick_total(docs[0]), started_at=T0,
                      extraction_id=store.extraction_index()[0][0])
    corrected = list(store.iter_corrected())
    assert len(corrected) == 1  # the second document was never reviewed
    cd = corrected[0]
    assert cd.document == docs[0] and cd.model_version == "m1"
    assert cd.values == {"company": "SHOP SDN", "total": "1.50"}
    assert list(store.iter_corrected(model_version="other")) == []
    pairs = [(p.field, p.chosen, p.rejected, p.rejected_rank)
             for p in store.iter_preference_pairs()]
    assert pairs == [("company", "SHOP SDN", "SHOP", 1), ("total", "1.50", "20.00", 0)]
    n = export_jsonl(store, str(tmp_path / "pairs.jsonl"), "pairs")
    lines = [json.loads(x) for x in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert n == 2 and lines[1]["rejected"] == "20.00" and lines[1]["doc_id"] == "r001"
    assert "document" not in lines[1]  # pages go once to the documents file beside it
    pages = (tmp_path / "pairs.documents.jsonl").read_text().splitlines()
    assert [Document.from_dict(json.loads(x)) for x in pages] == [docs[0]]
    ds = to_dataset(store, "corrected")
    assert ds.num_rows == 1 and ds[0]["fields"] == ["company", "total"]
    assert ds[0]["values"] == ["SHOP SDN", "1.50"] and ds[0]["words"][4] == "1.50"
    with pytest.raises(ValueError, match="kind"):
        export_jsonl(store, str(tmp_path / "x.jsonl"), "nonsense")


def test_not_present_is_a_preference_over_every_shown_candidate(store_url: str) -> None:
    store = FeedbackStore(store_url)
    doc = fill(store, 1)[0]
    store.acquire_lease(doc.id, "ann")
    cands = make_result(doc).fields["total"].candidates
    store.save_review(doc.id, "ann", [FieldAction("total", "not_present", None, "20.00", 0.6,
                                                  cands)], started_at=T0)
    assert [(p.chosen, p.rejected) for p in store.iter_preference_pairs()] == [
        (None, "20.00"), (None, "1.50")]


def test_stats_count_today_corrections_and_agreement(store_url: str) -> None:
    clock = Clock()
    store = FeedbackStore(store_url, clock=clock)
    docs = fill(store, 2)
    for d in docs:
        store.acquire_lease(d.id, "ann")
        store.save_review(d.id, "ann", pick_total(d), started_at=T0, release=True)
    st = store.stats(since=T0 - timedelta(hours=1))
    assert st.documents == 2 and st.reviewed_documents == 2
    assert st.saves_since == 2 and st.per_operator_since == {"ann": 2}
    assert st.corrections_per_field == {"total": 2}
    assert st.agreement_per_field == {"company": 1.0, "total": 0.0} and st.agreement == 0.5
    assert store.stats(since=T0 + timedelta(hours=1)).saves_since == 0


def test_migrations_downgrade_and_upgrade_again(store_url: str) -> None:
    from alembic import command

    store = FeedbackStore(store_url)
    fill(store, 1)
    cfg = migrate.alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert migrate.current_revision(store.engine) is None
    assert "documents" not in inspect(store.engine).get_table_names()
    assert migrate.upgrade(store.engine) == migrate.head_revision()
    assert FeedbackStore(store_url).document_ids() == []


# -- every row, for comparisons (backups, migrations, crashes) --------------------------------

def table_rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every store table, by primary key, datetimes as aware UTC (reflected, so
    it reads whatever schema revision the database is at)."""
    meta = MetaData()
    meta.reflect(engine)
    out = {}
    with engine.connect() as conn:
        for name, table in sorted(meta.tables.items()):
            if name == "alembic_version":
                continue
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).mappings()
            out[name] = [{k: as_utc(v) if isinstance(v, datetime) else v for k, v in r.items()}
                         for r in rows]
    return out


# -- security: hostile strings, names the store cannot keep, who did what ---------------------

HOSTILE = [
    "O'Brien \"the\" `tick`",
    "x'); DROP TABLE saves; --",
    "' OR '1'='1",
    "/* comment */ -- #hash",
    "%s %(name)s :name ? $1 {0} %%",
    "C:\\new\\table\\x00 \\' \\\\",
    "semi;colon\nnew line\r\ncr\ttab",
    "<script>alert('x')</script><b>&amp;</b>",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀 👩‍👩‍👧 𠜎",
    "\u202eright-to-left\u200b\u200dzero\ufeffwidth",
    "n" * NAME_MAX,  # the longest name the store keeps
]
"""Document ids, operators, datasets, field names, model versions and values."""
LONG_VALUE = "9" * 100_000
NUL = "nul\x00byte"


def holder(store: FeedbackStore, doc_id: str) -> str | None:
    """Who holds ``doc_id``'s live lease."""
    lease = store.lease_of(doc_id)
    return None if lease is None else lease.operator


def _latest(store: FeedbackStore, version: str) -> tuple[int, ExtractionResult]:
    got = store.latest_result(version, version)  # document id and version are one name here
    assert got is not None
    return got


def _hostile(store_url: str) -> list[str]:
    # PostgreSQL text cannot hold NUL (its refusal is tested below); SQLite keeps it.
    return HOSTILE + ([NUL] if store_url.startswith("sqlite") else [])


def as_operator(name: str, i: int) -> str:
    """``name`` when the review UI records it as given, else a stand-in: the store refuses the
    operator ids the UI would (``test_operator_ids_the_ui_refuses_are_refused_by_the_store``)."""
    try:
        return name if operator_id(name) == name else f"operator {i}"
    except ValueError:
        return f"operator {i}"


def test_hostile_strings_survive_a_save_and_read_back_as_parameters(store_url: str) -> None:
    names = _hostile(store_url)
    values = names + [LONG_VALUE, ""]
    store = FeedbackStore(store_url, clock=Clock())
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda _c, _cur, stmt, *_: statements.append(stmt))
    tables = set(inspect(store.engine).get_table_names())
    for i, name in enumerate(names):
        # One document per name: the name as id, source, dataset, operator, model version
        # and field name; every value as a word, a candidate, a shown and a final value.
        doc = Document(id=name, words=[Word(v, (k, 0, k + 1, 1)) for k, v in enumerate(values)],
                       width=10, height=10, source=name)
        cands = [Candidate(v, 1.0 / (k + 2), [k]) for k, v in enumerate(values)]
        res = ExtractionResult(name, name, {name: FieldResult(name, cands, 0.25)},
                               doc_hash=doc.content_hash())
        store.add_batch([doc], [res], dataset=name)
        eid = _latest(store, name)[0]
        op = as_operator(name, i)
        store.acquire_lease(name, op)
        acts = [FieldAction(name, "pick", values[i], values[0], 0.25, cands, pick_index=i,
                            final_span=[i])]
        acts += [FieldAction(f"f{k}", "edit", v, values[k - 1], 0.5, cands[:2])
                 for k, v in enumerate(values)]
        save = store.save_review(name, op, acts, started_at=T0, extraction_id=eid,
                                 dataset=name)

        assert store.get_document(name) == doc and store.documents([name]) == {name: doc}
        assert _latest(store, name)[1].export() == res.export()
        assert store.current_values(name) == {name: values[i]} | {
            f"f{k}": v for k, v in enumerate(values)}
        hist = store.history(name)
        assert [(h.field, h.before, h.after, h.shown_value, h.operator) for h in hist] == [
            (a.field, a.shown_value, a.final_value, a.shown_value, op) for a in acts]
        assert [(s.operator, s.dataset) for s in store.saves(name)] == [(op, name)]
        assert holder(store, name) == op
        [fb] = store.iter_feedback(operator=op, model_version=name, dataset=name)
        assert fb.document == doc and fb.operator == op
        assert fb.fields[name].final_value == values[i]
        assert fb.fields[name].shown == cands and fb.fields[name].final_span == [i]
        undo = store.undo_last(op)
        assert (undo.operator, undo.undoes_id, store.current_values(name)) == (op, save.id, {})
        assert [e.operator for e in store.lease_history(name)] == [op, op]
    assert set(store.model_versions()) == set(names)
    assert store.document_ids() == sorted(names)
    # The strings went as parameters: none appears in any SQL text, every table is still there.
    assert len(statements) > 100
    for name in names[:-1]:
        assert not any(name in stmt for stmt in statements), name
    assert set(inspect(store.engine).get_table_names()) == tables
    assert len(store.saves()) == 2 * len(names)


def test_postgresql_refuses_nul_naming_the_value_and_saves_nothing(pg_server: str) -> None:
    store = FeedbackStore(pgtemp.create_database(pg_server, "nul_refused"))
    doc = fill(store, 1)[0]
    before = table_rows(store.engine)
    with pytest.raises(UnstorableValueError, match=r"NUL.*nul\\x00byte.*nothing was written"):
        store.add_document(Document(NUL, doc.words, 200, 300))
    with pytest.raises(ValueError, match="operator name holds control .*U\\+0000"):
        store.acquire_lease(doc.id, NUL)  # refused by the UI's rule, before the database
    store.acquire_lease(doc.id, "ann")
    with pytest.raises(UnstorableValueError, match=r"NUL.*final_value.*nothing was written"):
        store.save_review(doc.id, "ann", [FieldAction("total", "edit", NUL, "1.50")],
                          started_at=T0)
    after = table_rows(store.engine)
    assert after["saves"] == before["saves"] == [] and after["actions"] == []
    # Only ann's lease bumped the revision: both refused writes rolled back whole.
    assert after["documents"][0] == before["documents"][0] | {"revision": 1}
    assert holder(store, doc.id) == "ann"
    # Inside a page (a JSON column) NUL is escaped text, which PostgreSQL keeps.
    page = Document("with-nul", [Word(NUL, (0, 0, 1, 1))], 10, 10)
    store.add_document(page)
    assert store.get_document("with-nul") == page


def test_names_longer_than_the_store_keeps_are_refused_on_both_backends(store_url: str) -> None:
    store = FeedbackStore(store_url)
    doc = fill(store, 1)[0]
    long = "n" * (NAME_MAX + 1)
    with pytest.raises(ValueError, match=f"documents.id is {NAME_MAX + 1} characters long"):
        store.add_document(Document(long, doc.words, 200, 300))
    with pytest.raises(ValueError, match="operator name is 256 characters long"):
        store.acquire_lease(doc.id, long)
    store.acquire_lease(doc.id, "ann")
    with pytest.raises(ValueError, match="actions.field is 256 characters long"):
        store.save_review(doc.id, "ann", [FieldAction(long, "edit", "x")], started_at=T0)
    with pytest.raises(ValueError, match="saves.dataset is 256"):
        store.save_review(doc.id, "ann", [FieldAction("total", "edit", "x")], started_at=T0,
                          dataset=long)
    with pytest.raises(ValueError, match="extractions.model_version is 256"):
        store.add_result(ExtractionResult(doc.id, long, {}))
    assert store.document_ids() == [doc.id] and store.saves() == []
    assert len(store.extraction_index()) == 1


def test_every_save_and_lease_change_records_who_did_it(store_url: str) -> None:
    clock = Clock()
    store = FeedbackStore(store_url, clock=clock)
    doc = fill(store, 1)[0]
    calls = [lambda op: store.acquire_lease(doc.id, op), lambda op: store.release_lease(doc.id, op),
             store.undo_last, lambda op: store.save_review(doc.id, op, pick_total(doc),
                                                           started_at=T0)]
    for blank, call in itertools.product(("", "   "), calls):
        with pytest.raises(ValueError, match="operator name is empty"):
            call(blank)
    store.acquire_lease(doc.id, "ann", ttl_s=60)
    store.acquire_lease(doc.id, "ann", ttl_s=60)
    store.save_review(doc.id, "ann", pick_total(doc), started_at=T0)
    clock.now += timedelta(seconds=120)  # ann walked away: bob takes the document over
    store.acquire_lease(doc.id, "bob", ttl_s=60)
    seen = store.current(doc.id)["total"].action_id
    store.save_review(doc.id, "bob", [FieldAction("total", "edit", "9.99", "1.50", 0.6, [],
                                                  seen_action_id=seen)], started_at=T0)
    store.undo_last("bob", ttl_s=60)
    store.release_lease(doc.id, "bob")
    assert [(s.kind, s.operator) for s in store.saves(doc.id)] == [
        ("review", "ann"), ("review", "bob"), ("undo", "bob")]
    assert {h.operator for h in store.history(doc.id)} == {"ann", "bob"}
    t1 = T0 + timedelta(seconds=120)
    assert [(e.operator, e.event, e.previous, e.at, e.expires_at)
            for e in store.lease_history(doc.id)] == [
        ("ann", "acquire", None, T0, T0 + timedelta(seconds=60)),
        ("ann", "renew", None, T0, T0 + timedelta(seconds=60)),
        ("bob", "takeover", "ann", t1, t1 + timedelta(seconds=60)),
        ("bob", "renew", None, t1, t1 + timedelta(seconds=60)),  # the undo hands it back
        ("bob", "release", None, t1, None)]


UI_REFUSED = [("", "operator name is empty"), ("ann\x00", "U+0000"), ("ann\x1b[2J", "U+001B"),
              ("ann\u202eeve", "U+202E"), ("a\u200bb", "U+200B"),
              ("a" * (MAX_OPERATOR_CHARS + 1), f"{MAX_OPERATOR_CHARS + 1} characters long"),
              (" ann", "record it as 'ann'"), ("ann\tlee", "record it as 'ann lee'")]


def test_operator_ids_the_ui_refuses_are_refused_by_the_store(tmp_path: Path) -> None:
    """A script writing to the store directly cannot record an operator id the review UI would
    refuse (``feedback_ui.checks.operator_id``) or would record otherwise."""
    from kvloop.compare.runner import OPERATOR  # the simulated operator of `kvloop compare`

    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    doc = fill(store, 1)[0]
    calls = [lambda op: store.acquire_lease(doc.id, op), lambda op: store.release_lease(doc.id, op),
             store.undo_last, lambda op: store.save_review(doc.id, op, pick_total(doc),
                                                           started_at=T0)]
    for (bad, why), call in itertools.product(UI_REFUSED, calls):
        with pytest.raises(ValueError, match=re.escape(why)) as refused:
            call(bad)
        assert str(refused.value).startswith("operator name ")
    assert store.saves() == [] and store.lease_history(doc.id) == []
    for name in ["ann", "Ann O'Brien", "a" * MAX_OPERATOR_CHARS, "收据 李", OPERATOR]:
        assert operator_id(name) == name
        store.acquire_lease(doc.id, name)
        store.save_review(doc.id, name, pick_total(doc), started_at=T0)  # releases the lease
        store.undo_last(name)
        assert store.release_lease(doc.id, name)
    assert OPERATOR == "simulated-operator"
    assert MAX_OPERATOR_CHARS <= NAME_MAX  # every id the rule lets through fits the column
    assert [s.operator for s in store.saves(doc.id)][-2:] == [OPERATOR, OPERATOR]
