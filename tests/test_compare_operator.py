"""kvloop/compare/operator.py: the simulated operator's decisions per regime, its slips, the
effort model, and reviews through a real ReviewService on a temporary SQLite store."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from extractor.document import (
    RECEIPT_SCHEMA,
    Candidate,
    Document,
    ExtractionResult,
    FieldResult,
    Word,
)
from extractor.normalize import lenient_key
from feedback_ui.routing import RoutingConfig
from feedback_ui.service import FieldChoice, FieldView, ReviewService
from feedback_ui.store import FeedbackStore
from kvloop.compare.operator import (
    Decision,
    DocumentReview,
    EffortModel,
    OperatorConfig,
    ReviewLog,
    SimulatedOperator,
    choice_only_choice,
    decide,
    full_choice,
    mistype,
    noisy_choice,
    slip,
)


def _mock_view(value: str | None, candidates: list[str], name: str = "total") -> FieldView:
    cands = [Candidate(v, 0.5, [i]) for i, v in enumerate(candidates)]
    return FieldView(spec=RECEIPT_SCHEMA[name], value=value, confidence=0.5, candidates=cands,
                     state="needs_review", problem=None, model_value=value)


def _stored(view: FieldView, c: FieldChoice) -> str | None:
    """The value a choice leaves in the store."""
    if c.action == "accept":
        return view.value
    if c.action == "pick":
        assert c.pick_index is not None
        return view.candidates[c.pick_index].value
    return c.value if c.action == "edit" else None


# Every kind of field an operator meets: (shown value, alternatives, gold).
GRID = [
    ("9.00", ["9.00", "7.00"], "9.00"),          # right value shown
    ("abc  sdn bhd", ["abc  sdn bhd"], "ABC SDN BHD"),  # right up to case and spaces
    ("7.00", ["7.00", "8.00", "9.00"], "9.00"),  # right alternative 2
    ("7.00", ["7.00", "8.00"], "9.00"),          # no right alternative
    (None, [], "9.00"),                          # nothing shown, nothing to pick
    (None, ["8.00", "9.00"], "9.00"),            # nothing shown, right alternative
    ("7.00", ["7.00", "8.00"], None),            # value shown, gold absent
    (None, [], None),                            # empty and absent
    (None, ["7.00"], None),                      # empty and absent, alternatives on screen
]
GRID_IDS = [f"{v}|{'/'.join(c)}|{g}" for v, c, g in GRID]


# -- regimes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, cands, gold", GRID, ids=GRID_IDS)
def test_the_demo_operator_is_the_full_regime(value, cands, gold) -> None:
    from kvloop.demo import simulated_choice

    view = _mock_view(value, cands)
    assert simulated_choice(view, gold) == full_choice(view, gold)


@pytest.mark.parametrize("value, cands, gold, full, choice_only", [
    ("9.00", ["9.00", "7.00"], "9.00", FieldChoice("accept"), FieldChoice("accept")),
    ("7.00", ["7.00", "9.00"], "9.00", FieldChoice("pick", pick_index=1),
     FieldChoice("pick", pick_index=1)),
    ("7.00", ["7.00"], "9.00", FieldChoice("edit", "9.00"), FieldChoice("reject")),
    (None, [], "9.00", FieldChoice("edit", "9.00"), None),
    ("7.00", ["7.00"], None, FieldChoice("not_present"), FieldChoice("not_present")),
    (None, [], None, FieldChoice("accept"), FieldChoice("accept")),
])
def test_full_and_choice_only_decisions(value, cands, gold, full, choice_only) -> None:
    view = _mock_view(value, cands)
    assert full_choice(view, gold) == full
    assert choice_only_choice(view, gold) == choice_only
    for regime, want in (("full", full), ("choice-only", choice_only)):
        assert decide(OperatorConfig(regime), view, gold, random.Random(0)) == Decision(want)


@pytest.mark.parametrize("base", ["full", "choice-only"])
@pytest.mark.parametrize("value, cands, gold", GRID, ids=GRID_IDS)
def test_noisy_at_rate_zero_never_errs(base, value, cands, gold) -> None:
    view = _mock_view(value, cands)
    intended = full_choice(view, gold) if base == "full" else choice_only_choice(view, gold)
    for seed in range(20):
        d = decide(OperatorConfig("noisy", base, 0.0), view, gold, random.Random(seed))
        assert d == Decision(intended)


def _can_err(value: str | None, cands: list[str], gold: str | None) -> bool:
    """Only a right accept with no wrong alternative on screen cannot go wrong."""
    right = [v for v in cands if gold is not None and lenient_key(v) == lenient_key(gold)]
    accepts = (gold is None and value is None) or (
        value is not None and gold is not None and lenient_key(value) == lenient_key(gold))
    return not (accepts and len(right) == len(cands))


@pytest.mark.parametrize("base", ["full", "choice-only"])
@pytest.mark.parametrize("value, cands, gold", GRID, ids=GRID_IDS)
def test_noisy_at_rate_one_always_errs_with_a_wrong_answer(base, value, cands, gold) -> None:
    view = _mock_view(value, cands)
    intended = full_choice(view, gold) if base == "full" else choice_only_choice(view, gold)
    for seed in range(20):
        d = decide(OperatorConfig("noisy", base, 1.0), view, gold, random.Random(seed))
        if not _can_err(value, cands, gold):
            assert d == Decision(intended)
            continue
        assert d.erred and d.choice is not None and d.choice != intended
        assert d.choice.action in ("accept", "pick", "edit")
        assert lenient_key(_stored(view, d.choice)) != lenient_key(gold)  # a wrong answer
        if base == "choice-only":
            assert d.choice.action != "edit"  # a choice-only operator never types
        if intended is not None and intended.action == "edit":
            assert d.choice.action == "edit"  # a typist's slip is a typo


def test_the_only_unfailable_decision_is_a_right_accept_alone() -> None:
    view = _mock_view("9.00", ["9.00"])
    assert slip(view, "9.00", FieldChoice("accept"), random.Random(0)) is None
    assert slip(_mock_view("9.00", ["9.00", "7.00"]), "9.00", FieldChoice("accept"),
                random.Random(0)) == FieldChoice("pick", pick_index=1)


def test_noisy_errors_at_about_the_rate_and_the_same_seed_gives_the_same_choices() -> None:
    view = _mock_view("7.00", ["7.00", "8.00", "9.00"])

    def run(seed: int) -> list[FieldChoice | None]:
        rng = random.Random(seed)
        return [noisy_choice(view, "9.00", rng, base="full", error_rate=0.3)
                for _ in range(2000)]

    a = run(5)
    assert a == run(5) and a != run(6)
    wrong = sum(c != FieldChoice("pick", pick_index=2) for c in a)
    assert 0.26 < wrong / len(a) < 0.34


def test_mistype_changes_one_visible_character() -> None:
    kinds = set()
    for seed in range(300):
        for value in ("12.50", "ABC SDN BHD", "x", "27, Jalan  Dedap"):
            got = mistype(value, random.Random(seed))
            assert got is not None and lenient_key(got) != lenient_key(value)
            assert got.count(" ") == value.count(" ")  # whitespace untouched
            assert abs(len(got) - len(value)) <= 1 and got.strip()
            kinds.add(len(got) - len(value))
    assert kinds == {-1, 0, 1}  # dropped, substituted, doubled
    assert mistype("   ", random.Random(0)) is None
    assert {mistype("7", random.Random(s)) for s in range(50)} <= (
        {str(d) for d in range(10)} - {"7"}) | {"77"}  # a digit stays a digit, never dropped


# -- configuration -------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"regime": "lazy"}, "regime must be one of"),
    ({"regime": "noisy", "noise_base": "noisy"}, "noise_base must be one of"),
    ({"regime": "noisy", "error_rate": 1.5}, r"error_rate must be a number in \[0, 1\]"),
    ({"regime": "noisy", "error_rate": -0.1}, "error_rate must be"),
    ({"regime": "full", "error_rate": 0.1}, "needs regime 'noisy'"),
])
def test_operator_config_rejects_bad_settings(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        OperatorConfig(**kwargs)


def test_operator_config_round_trip_and_unknown_keys() -> None:
    cfg = OperatorConfig("noisy", "choice-only", 0.2, 7)
    assert OperatorConfig.from_dict(cfg.export()) == cfg and cfg.base == "choice-only"
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['error'\]"):
        OperatorConfig.from_dict({"regime": "noisy", "error": 0.1})


# -- effort --------------------------------------------------------------------------------------

def test_effort_orders_accept_reject_pick_type() -> None:
    e = EffortModel()
    value = "KEDAI MAJU SDN BHD 1"  # a typical 20-character value
    assert len(value) == 20
    accept, reject = e.action_s(FieldChoice("accept")), e.action_s(FieldChoice("reject"))
    picks = [e.action_s(FieldChoice("pick", pick_index=i)) for i in range(5)]
    typed = e.action_s(FieldChoice("edit", value))
    assert accept < reject < min(picks) and max(picks) < typed
    assert picks == sorted(picks)  # a lower alternative takes longer to reach
    assert (accept, reject, picks[0], typed) == pytest.approx((0.56, 1.91, 2.41, 8.19))


def test_effort_of_one_document_by_hand() -> None:
    e = EffortModel()
    views = [_mock_view("KEDAI MAJU", ["KEDAI MAJU"], "company"),
             _mock_view("01/02/2018", ["01/02/2018", "02/01/2018"], "date"),
             _mock_view("JALAN 1", ["JALAN 1"], "address"),
             _mock_view("50.00", ["50.00"], "total")]
    choices = {"date": FieldChoice("pick", pick_index=1),  # company: no choice, accepted
               "address": FieldChoice("not_present"), "total": FieldChoice("edit", "12.50")}
    # verify 4 x (1.35 + 1.2) = 10.2; accept (Alt+A) 2 x 0.28 = 0.56; pick #2 2 x 0.5 + 1.35
    # + 0.56 = 2.91; not present (Alt+N) 1.35 + 0.56 = 1.91; typing 5 characters 1.35 + 0.4
    # + 8 x 0.28 = 3.99; the page 2.0 + Ctrl+Enter 2 x 0.28 + latency 0.26 = 2.82.
    assert e.seconds(choices, views) == pytest.approx(22.39)
    # Skipped for a field it cannot express: M for that field, "Skip" (0.4 + 1.1 + 0.28)
    # instead of Ctrl+Enter: 2 x 2.55 + 0.56 + 1.35 + 2.0 + 1.78 + 0.26 = 11.05.
    assert e.seconds({"company": FieldChoice(), "date": None}, views[:2]) == pytest.approx(11.05)


def test_effort_from_dict_overrides_and_rejects_unknown_or_negative() -> None:
    e = EffortModel.from_dict({"keystroke_s": 0.2, "latency_s": 0})
    assert (e.keystroke_s, e.latency_s, e.mental_s) == (0.2, 0, 1.35)
    assert EffortModel.from_dict(e.export()) == e
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['typing_s'\].*keystroke_s"):
        EffortModel.from_dict({"typing_s": 0.2})
    with pytest.raises(ValueError, match="point_s must be a number >= 0"):
        EffortModel.from_dict({"point_s": -1})
    with pytest.raises(ValueError, match="mental_s"):
        EffortModel.from_dict({"mental_s": "slow"})


def test_review_log_totals_and_export() -> None:
    log = ReviewLog()
    log.add(DocumentReview("a", {"total": "pick", "date": "accept"}, None, 10.0, errors=1))
    log.add(DocumentReview("b", {"total": None, "date": "accept"}, "unexpressible", 4.0,
                           errors=1))
    log.add(DocumentReview("c", {"total": "edit", "date": "accept"}, "invalid", 6.0))
    assert (log.reviewed, log.skipped_unexpressible, log.skipped_invalid) == (1, 1, 1)
    assert log.actions == {"pick": 1, "accept": 1}  # saved documents only
    assert (log.seconds, log.errors_injected, log.errors_saved) == (20.0, 2, 1)
    out = json.loads(json.dumps(log.export()))
    assert out["actions"] == {"accept": 1, "pick": 1} and out["seconds"] == 20.0
    assert [d["doc_id"] for d in out["documents"]] == ["a", "b", "c"]
    assert out["documents"][1]["actions"]["total"] is None


# -- through the real service ----------------------------------------------------------------------

def _receipt(i: int) -> tuple[Document, ExtractionResult]:
    """A tiny receipt: the model shows total 50.00 with alternative ``i``.50, no address."""
    words = [Word("KEDAI", (10, 10, 80, 30)), Word("MAJU", (90, 10, 150, 30)),
             Word("01/02/2018", (10, 40, 120, 60)), Word("TOTAL", (10, 70, 70, 90)),
             Word(f"{i}.50", (100, 70, 150, 90)), Word("CASH", (10, 100, 60, 120)),
             Word("50.00", (100, 100, 150, 120))]
    doc = Document(id=f"rcpt{i}", words=words, width=200, height=300)
    res = ExtractionResult(doc.id, "m1", {
        "company": FieldResult("company", [Candidate("KEDAI MAJU", 0.99, [0, 1])], 0.99),
        "date": FieldResult("date", [Candidate("01/02/2018", 0.99, [2])], 0.99),
        "address": FieldResult("address", [], 0.99),
        "total": FieldResult("total", [Candidate("50.00", 0.4, [6]),
                                       Candidate(f"{i}.50", 0.2, [4])], 0.4),
    }, doc_hash=doc.content_hash())
    return doc, res


GOLD = {"rcpt1": {"total": "1.50"},                     # pick alternative 2
        "rcpt2": {"total": "7.77"},                     # full types, choice-only rejects
        "rcpt3": {"total": "50.00", "address": "JALAN 1"},  # nothing shown: choice-only skips
        "rcpt4": {"total": "12,5O"}}                    # full types a value that does not parse
BASE_GOLD = {"company": "KEDAI MAJU", "date": "01/02/2018", "address": None}


@pytest.fixture
def docs() -> list[Document]:
    """The receipts with gold (the store gets them without)."""
    return [dataclasses.replace(_receipt(i)[0], gold={**BASE_GOLD, **GOLD[f"rcpt{i}"]})
            for i in range(1, 5)]


@pytest.fixture
def service(tmp_path: Path, docs: list[Document]) -> Iterator[ReviewService]:
    svc = ReviewService(FeedbackStore(tmp_path / "f.db"), RECEIPT_SCHEMA,
                        routing=RoutingConfig(0.0))
    svc.add([_receipt(i)[0] for i in range(1, 5)], [_receipt(i)[1] for i in range(1, 5)])
    yield svc
    svc.store.close()


def test_full_operator_through_the_service(service: ReviewService, docs: list[Document]
                                           ) -> None:
    log = SimulatedOperator(OperatorConfig("full")).review(service, docs, "sim")
    by_id = {d.doc_id: d for d in log.documents}
    assert (log.reviewed, log.skipped_unexpressible, log.skipped_invalid) == (3, 0, 1)
    assert by_id["rcpt4"].skipped == "invalid" and by_id["rcpt4"].actions["total"] == "edit"
    store = service.store
    assert len(store.saves()) == 3 and store.reviewed_doc_ids() == {"rcpt1", "rcpt2", "rcpt3"}
    assert store.current_values("rcpt1")["total"] == "1.50"
    assert store.current_values("rcpt2")["total"] == "7.77"
    assert store.current_values("rcpt3")["address"] == "JALAN 1"
    hist = {h.field: h.action for h in service.history("rcpt1")}
    assert hist == {"company": "accept", "date": "accept", "address": "accept", "total": "pick"}
    assert log.actions == {"accept": 9, "pick": 1, "edit": 2}
    assert all(store.lease_of(d) is None for d in GOLD)  # saved or skipped: released
    # Default effort: 4 fields verified (4 x 2.55), 3 accepts (3 x 0.56), pick #2 (2.91),
    # the page and "save and next" (2.82); rcpt4 types 5 characters (3.99) then skips (4.04).
    assert by_id["rcpt1"].seconds == pytest.approx(10.2 + 1.68 + 2.91 + 2.82)
    assert by_id["rcpt4"].seconds == pytest.approx(10.2 + 1.68 + 3.99 + 4.04)
    assert log.seconds == pytest.approx(sum(d.seconds for d in log.documents))
    assert log.summary()["seconds"] == pytest.approx(log.seconds, abs=1e-3)


def test_choice_only_operator_rejects_and_skips_through_the_service(
        service: ReviewService, docs: list[Document]) -> None:
    log = SimulatedOperator(OperatorConfig("choice-only")).review(service, docs, "sim")
    by_id = {d.doc_id: d for d in log.documents}
    assert by_id["rcpt3"].skipped == "unexpressible" and by_id["rcpt3"].actions["address"] is None
    assert (log.reviewed, log.skipped_unexpressible, log.skipped_invalid) == (3, 1, 0)
    assert log.actions == {"accept": 9, "pick": 1, "reject": 2}
    store = service.store
    assert len(store.saves()) == 3 and not store.saves("rcpt3")
    cur = store.current("rcpt2")["total"]
    assert (cur.action, cur.value, cur.operator) == ("reject", None, "sim")
    assert {h.field: h.action for h in service.history("rcpt4")}["total"] == "reject"
    assert store.reviewed_doc_ids() == {"rcpt1"}  # a rejected field leaves a document open
    assert store.lease_of("rcpt3") is None


def test_review_queue_visits_each_document_once_despite_rejects(
        service: ReviewService, docs: list[Document]) -> None:
    gold = {d.id: d.gold or {} for d in docs}
    log = SimulatedOperator(OperatorConfig("choice-only")).review_queue(service, gold, "sim")
    assert sorted(d.doc_id for d in log.documents) == sorted(GOLD)  # terminates: once each
    assert [q.doc_id for q in service.queue()] == ["rcpt2", "rcpt3", "rcpt4"]  # still open


def test_noisy_review_is_independent_of_review_order(tmp_path: Path) -> None:
    """Same seed, documents in another order: the same per-document decisions."""
    def run(folder: str, reverse: bool) -> dict[str, DocumentReview]:
        pairs = [_receipt(i) for i in range(1, 9)]
        docs = [d for d, _ in pairs]
        for d in docs:
            d.gold = {**BASE_GOLD, "total": "50.00"}
        store = FeedbackStore(tmp_path / folder / "f.db")
        try:
            svc = ReviewService(store, RECEIPT_SCHEMA, routing=RoutingConfig(0.0))
            svc.add(docs, [r for _, r in pairs])
            op = SimulatedOperator(OperatorConfig("noisy", "full", 0.5, seed=3))
            log = op.review(svc, docs[::-1] if reverse else docs, "sim")
            assert len(store.saves()) == log.reviewed
            return {d.doc_id: d for d in log.documents}
        finally:
            store.close()

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = run("a", False), run("b", True)
    assert a == b
    assert 0 < sum(d.errors for d in a.values()) < 8 * 4  # some slips, not every field
