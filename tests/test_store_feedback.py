"""The store's feedback records: rejects, final spans and the training API.

Real SQLite files and a real throwaway PostgreSQL cluster; the clock is moved by hand.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from test_store import T0, Clock, make_doc, make_result

from extractor.document import Candidate, Document, ExtractionResult, FieldResult, Word
from feedback_ui.store import (
    FeedbackFilter,
    FeedbackStore,
    FieldAction,
    RejectedValue,
    StaleValueError,
    export_jsonl,
    pgtemp,
    to_dataset,
)

_db_counter = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    return pgtemp.create_database(request.getfixturevalue("pg_server"), f"fb{next(_db_counter)}")


def _store(url: str, n: int = 0, versions: tuple[str, ...] = ("m1",)) -> FeedbackStore:
    store = FeedbackStore(url, clock=Clock())
    docs = [make_doc(i) for i in range(1, n + 1)]
    store.add_batch(docs, [make_result(d, v) for d in docs for v in versions])
    return store


def _eid(store: FeedbackStore, doc_id: str, version: str = "m1") -> int:
    return next(e for e, d, v in store.extraction_index() if d == doc_id and v == version)


def _review(store: FeedbackStore, doc_id: str, operator: str, actions: list[FieldAction], *,
            at: datetime, version: str = "m1", dataset: str = "default") -> None:
    """``operator`` opens ``doc_id`` 30 s before ``at`` and saves ``actions`` at ``at``."""
    store.clock.now = at  # type: ignore[attr-defined]
    store.acquire_lease(doc_id, operator)
    store.save_review(doc_id, operator, actions, started_at=at - timedelta(seconds=30),
                      extraction_id=_eid(store, doc_id, version), dataset=dataset,
                      release=True)


def _company(seen: int | None = None) -> FieldAction:
    cands = [Candidate("SHOP SDN", 0.9, [0, 1]), Candidate("SHOP", 0.05, [0])]
    return FieldAction("company", "accept", "SHOP SDN", "SHOP SDN", 0.9, cands,
                       seen_action_id=seen, final_span=[0, 1])


def _total(action: str, final: str | None, shown: str | None = "20.00", *,
           seen: int | None = None, span: list[int] | None = None) -> FieldAction:
    cands = [Candidate("20.00", 0.6, [6]), Candidate("1.50", 0.3, [4])]
    return FieldAction("total", action, final, shown, 0.6, cands,  # type: ignore[arg-type]
                       pick_index=1 if action == "pick" else None, seen_action_id=seen,
                       final_span=span)


def _seen(store: FeedbackStore, doc_id: str, name: str) -> int:
    return store.current(doc_id)[name].action_id


# -- reject ----------------------------------------------------------------------------------

def test_reject_keeps_the_field_open_until_someone_finishes_it(store_url: str) -> None:
    store = _store(store_url, 1)
    _review(store, "r001", "ann", [_company(), _total("reject", None)], at=T0)
    cur = store.current("r001")["total"]
    assert (cur.value, cur.action, cur.operator) == (None, "reject", "ann")
    assert store.reviewed_doc_ids() == set()  # back in the queue
    with pytest.raises(StaleValueError, match="total"):  # a form opened before the reject
        _review(store, "r001", "bob", [_total("edit", "1.50")], at=T0)
    _review(store, "r001", "bob", [_total("edit", "1.50", None, seen=cur.action_id, span=[4])],
            at=T0 + timedelta(minutes=5))
    assert store.reviewed_doc_ids() == {"r001"}
    assert store.current_values("r001") == {"company": "SHOP SDN", "total": "1.50"}
    st = store.stats(since=T0 - timedelta(hours=1))
    assert st.rejects_per_field == {"total": 1} and st.reviewed_documents == 1
    assert st.corrections_per_field == {"total": 2}  # the reject and the edit


def test_undo_of_a_save_with_a_reject(store_url: str) -> None:
    store = _store(store_url, 1)
    _review(store, "r001", "ann", [_company(), _total("pick", "1.50", span=[4])], at=T0)
    seen = _seen(store, "r001", "total")
    _review(store, "r001", "bob", [_total("reject", None, "1.50", seen=seen)], at=T0)
    assert store.reviewed_doc_ids() == set()
    store.undo_last("bob")
    assert store.reviewed_doc_ids() == {"r001"}
    assert store.current("r001")["total"].action == "pick"
    assert [h.undone for h in store.history("r001")] == [False, False, True]
    assert store.stats(since=T0).rejects_per_field == {}


def test_a_reject_needs_a_shown_value_and_no_final_value() -> None:
    with pytest.raises(ValueError, match="reject"):
        FieldAction("total", "reject", None, None)
    with pytest.raises(ValueError, match="reject"):
        FieldAction("total", "reject", "1.50", "20.00")
    with pytest.raises(ValueError, match="span"):
        FieldAction("total", "not_present", None, "20.00", final_span=[6])


# -- iter_feedback ---------------------------------------------------------------------------

def test_feedback_records_shown_rejected_spans_operator_and_time(store_url: str) -> None:
    store = _store(store_url, 1)
    _review(store, "r001", "ann", [_company(), _total("pick", "1.50", span=[4])], at=T0)
    [fb] = store.iter_feedback()
    assert fb.document == make_doc(1) and fb.seconds == 30.0
    assert (fb.operator, fb.model_version, fb.reviewed_at) == ("ann", "m1", T0)
    total = fb.fields["total"]
    assert (total.action, total.final_value, total.final_span, total.has_final) == (
        "pick", "1.50", [4], True)
    assert [c.value for c in total.shown] == ["20.00", "1.50"]
    assert total.rejected == [RejectedValue("20.00", [6], 0.6, 0, False)]
    # bob replaces ann's value: it was shown to him and not chosen, so it is rejected now.
    seen = _seen(store, "r001", "total")
    _review(store, "r001", "bob", [_total("edit", "7.77", "1.50", seen=seen)],
            at=T0 + timedelta(hours=1), version="m1")
    [fb] = store.iter_feedback()
    total = fb.fields["total"]
    assert (fb.operator, fb.seconds, total.final_span) == ("bob", 60.0, None)
    assert total.rejected == [RejectedValue("20.00", [6], 0.6, 0, False),
                              RejectedValue("1.50", [4], 0.3, 1, False)]
    assert fb.fields["company"].operator == "ann"  # each field knows who set it


def test_reject_only_field_is_feedback_but_no_target_and_no_pair(store_url: str) -> None:
    store = _store(store_url, 2)
    _review(store, "r001", "ann", [_company(), _total("reject", None)], at=T0)
    _review(store, "r002", "ann", [_total("reject", None)], at=T0)
    fbs = {fb.document.id: fb for fb in store.iter_feedback()}
    total = fbs["r001"].fields["total"]
    assert (total.has_final, total.final_value, total.action) == (False, None, "reject")
    assert total.rejected == [RejectedValue("20.00", [6], 0.6, 0, True),
                              RejectedValue("1.50", [4], 0.3, 1, False)]
    corrected = list(store.iter_corrected())
    assert [(c.document.id, c.values) for c in corrected] == [("r001", {"company": "SHOP SDN"})]
    assert corrected[0].spans == {"company": [0, 1]}
    assert {p.field for p in store.iter_preference_pairs()} == {"company"}


def test_lenient_spellings_of_one_value_are_never_a_pair(store_url: str) -> None:
    store = FeedbackStore(store_url, clock=Clock())
    words = [Word("27,JALAN", (0, 0, 50, 10)), Word("MAJU", (60, 0, 90, 10)),
             Word("NO", (0, 20, 20, 30)), Word("5", (30, 20, 40, 30))]
    doc = Document("addr", words, 100, 40)
    cands = [Candidate("27,JALAN MAJU", 0.5, [0, 1]), Candidate("NO 5", 0.3, [2, 3])]
    store.add_batch([doc], [ExtractionResult("addr", "m1", {"address": FieldResult(
        "address", cands, 0.5)})])
    _review(store, "addr", "ann", [FieldAction("address", "reject", None, "27,JALAN MAJU", 0.5,
                                               cands)], at=T0)
    _review(store, "addr", "bob", [FieldAction(
        "address", "edit", "27, JALAN MAJU", None, 0.5, cands, final_span=[0, 1],
        seen_action_id=_seen(store, "addr", "address"))], at=T0)
    pairs = [(p.chosen, p.rejected, p.rejected_rank, p.explicit)
             for p in store.iter_preference_pairs()]
    assert pairs == [("27, JALAN MAJU", "NO 5", 1, False)]
    [fb] = store.iter_feedback()
    assert [r.value for r in fb.fields["address"].rejected] == ["NO 5"]


def _filtered_store(url: str) -> FeedbackStore:
    """r001 ann/m1/a at T0, r002 bob/m2/b at T0+1h (edit), r003 bob/m1/a at T0+2h (reject)."""
    store = _store(url, 4, versions=("m1", "m2"))
    _review(store, "r001", "ann", [_company(), _total("pick", "1.50")], at=T0, dataset="a")
    _review(store, "r002", "bob", [_company(), _total("edit", "2.50")],
            at=T0 + timedelta(hours=1), version="m2", dataset="b")
    _review(store, "r003", "bob", [_company(), _total("reject", None)],
            at=T0 + timedelta(hours=2), dataset="a")
    return store


def _ids(store: FeedbackStore, **kw: Any) -> list[str]:
    return [fb.document.id for fb in store.iter_feedback(FeedbackFilter(**kw))]


def test_feedback_filters(store_url: str) -> None:
    store = _filtered_store(store_url)
    half = timedelta(minutes=30)
    assert _ids(store) == ["r001", "r002", "r003"]  # r004 was never reviewed
    assert _ids(store, model_version="m2") == ["r002"]
    assert _ids(store, model_version="m1") == ["r001", "r003"]
    assert _ids(store, dataset="a") == ["r001", "r003"]
    assert _ids(store, operator="bob") == ["r002", "r003"]
    assert _ids(store, since=T0 + half) == ["r002", "r003"]
    assert _ids(store, until=T0 + half) == ["r001"]
    assert _ids(store, since=T0 + half, until=T0 + 3 * half) == ["r002"]
    assert _ids(store, limit=2) == ["r001", "r002"] and _ids(store, limit=0) == []
    [fb] = store.iter_feedback(actions={"reject"})
    assert fb.document.id == "r003" and list(fb.fields) == ["total"]
    assert {p.doc_id for p in store.iter_preference_pairs(actions={"edit"})} == {"r002"}
    assert [c.document.id for c in store.iter_corrected(operator="bob")] == ["r002", "r003"]
    with pytest.raises(ValueError, match="unknown action"):
        FeedbackFilter(actions={"approve"})


def _count_queries(store: FeedbackStore, run: Any) -> int:
    n = 0

    def count(*_: Any) -> None:
        nonlocal n
        n += 1

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        run()
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    return n


@pytest.mark.parametrize("n_docs", [2, 8])
def test_one_call_runs_a_fixed_number_of_queries(store_url: str, n_docs: int) -> None:
    store = _store(store_url, n_docs)
    for i in range(1, n_docs + 1):
        _review(store, f"r{i:03d}", "ann", [_company(), _total("pick", f"{i}.50")], at=T0)
        seen = _seen(store, f"r{i:03d}", "total")
        _review(store, f"r{i:03d}", "bob", [_total("reject", None, f"{i}.50", seen=seen)], at=T0)
    flt = FeedbackFilter(model_version="m1", operator="ann")
    got: list[Any] = []
    n = _count_queries(store, lambda: got.extend(store.iter_feedback(flt)))
    assert len(got) == n_docs and all(list(fb.fields) == ["company"] for fb in got)
    # SQLite also counts its BEGIN; PostgreSQL begins implicitly.
    assert n == (3 if store.engine.dialect.name == "sqlite" else 2)
    assert _count_queries(store, lambda: list(store.iter_preference_pairs())) <= 2


# -- export ----------------------------------------------------------------------------------

def test_pairs_export_writes_each_page_once(store_url: str, tmp_path: Path) -> None:
    store = _filtered_store(store_url)
    out = tmp_path / "pairs.jsonl"
    n = export_jsonl(store, out, "pairs", FeedbackFilter(dataset="a"),
                     documents=tmp_path / "pages.jsonl")
    pairs = [json.loads(x) for x in out.read_text().splitlines()]
    pages = [json.loads(x) for x in (tmp_path / "pages.jsonl").read_text().splitlines()]
    assert n == len(pairs) == 3  # r001: company + total; r003: company (total is open)
    assert sorted({p["doc_id"] for p in pairs}) == [d["id"] for d in pages] == ["r001", "r003"]
    assert pairs[1] == {"doc_id": "r001", "field": "total", "chosen": "1.50",
                        "chosen_span": None, "rejected": "20.00", "rejected_span": [6],
                        "rejected_score": 0.6, "rejected_rank": 0, "explicit": False,
                        "model_version": "m1"}
    ds = to_dataset(store, "pairs", model_version="m2")  # company: SHOP; total: 20.00, 1.50
    assert ds.num_rows == 3 and set(ds["doc_id"]) == {"r002"}
