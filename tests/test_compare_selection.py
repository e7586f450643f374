"""kvloop/compare/selection.py: each strategy's order on hand-made results, ties, determinism,
and picking the next documents without those already reviewed."""

from __future__ import annotations

import random

import pytest

from extractor.document import Candidate, ExtractionResult, FieldResult
from kvloop.compare.selection import STRATEGIES, order, pick_next, score

FIELDS = ["company", "date", "address", "total"]


def _mock_result(doc_id: str, *conf: float) -> ExtractionResult:
    """A result whose fields (in FIELDS order) have the given confidences."""
    return ExtractionResult(doc_id, "m1", {
        f: FieldResult(f, [Candidate("x", c, [0])], c) for f, c in zip(FIELDS, conf)})


# least-confident wants "a" (one field at 0.1); expected-error wants "b" (2.0 wrong fields
# expected against a's 0.9 + 0.3 = 1.2); "c" is sure of everything; "d" ties "b" both ways.
POOL = [_mock_result("c", 0.99, 0.99, 0.99, 0.99),
        _mock_result("b", 0.5, 0.5, 0.5, 0.5),
        _mock_result("a", 0.1, 0.9, 0.9, 0.9),
        _mock_result("d", 0.5, 0.5, 0.5, 0.5)]


def test_least_confident_orders_by_the_lowest_field_confidence() -> None:
    assert order("least-confident", POOL) == ["a", "b", "d", "c"]
    assert score("least-confident", POOL[2]) == pytest.approx(0.9)


def test_expected_error_orders_by_expected_wrong_fields() -> None:
    assert order("expected-error", POOL) == ["b", "d", "a", "c"]
    for r in POOL:  # a naive reference: the sum over fields of 1 - confidence
        assert score("expected-error", r) == pytest.approx(
            sum(1 - fr.confidence for fr in r.fields.values()))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_orders_do_not_depend_on_the_input_order(strategy: str) -> None:
    want = order(strategy, POOL, seed=4)
    assert sorted(want) == ["a", "b", "c", "d"]
    for seed in range(5):
        shuffled = POOL[:]
        random.Random(seed).shuffle(shuffled)
        assert order(strategy, shuffled, seed=4) == want


def test_ties_go_to_the_smaller_id_even_when_sums_round_differently() -> None:
    # 0.1 + 0.2 + 0.3 summed in two orders differs in the last bit; fsum does not.
    x = ExtractionResult("x", "m1", {f: FieldResult(f, [], c)
                                     for f, c in zip(FIELDS, (0.1, 0.2, 0.3))})
    w = ExtractionResult("w", "m1", {f: FieldResult(f, [], c)
                                     for f, c in zip(FIELDS, (0.3, 0.2, 0.1))})
    assert score("expected-error", x) == score("expected-error", w)
    assert order("expected-error", [x, w]) == ["w", "x"]
    assert order("least-confident", [x, w]) == ["w", "x"]


def test_random_is_seeded_and_ignores_the_results() -> None:
    pool = [_mock_result(f"doc{i:02d}", 0.5, 0.5, 0.5, 0.5) for i in range(20)]
    a = order("random", pool, seed=1)
    assert a == order("random", pool, seed=1) and sorted(a) == sorted(r.doc_id for r in pool)
    assert a != order("random", pool, seed=2)
    assert a != sorted(a)  # not the id order
    other_confidences = [_mock_result(r.doc_id, 0.1, 0.9, 0.2, 0.8) for r in pool]
    assert order("random", other_confidences, seed=1) == a
    # The same relative order for any subset of the pool: one fixed random sequence.
    assert order("random", pool[::2], seed=1) == [d for d in a if d in {r.doc_id for r in pool[::2]}]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_pick_next_skips_reviewed_ids_and_stops_at_n(strategy: str) -> None:
    full = order(strategy, POOL, seed=0)
    assert pick_next(strategy, POOL, [], 2) == full[:2]
    assert pick_next(strategy, POOL, {full[0], "not-in-pool"}, 2) == full[1:3]
    assert pick_next(strategy, POOL, full[:3], 5) == full[3:]  # fewer left than asked
    assert pick_next(strategy, POOL, full, 2) == []
    assert pick_next(strategy, POOL, [], 0) == []


def test_rounds_walk_through_the_pool_once() -> None:
    reviewed: list[str] = []
    while batch := pick_next("expected-error", POOL, reviewed, 3):
        assert not set(batch) & set(reviewed)
        reviewed += batch
    assert reviewed == order("expected-error", POOL)


def test_a_field_missing_from_a_result_counts_as_confidence_zero_when_named() -> None:
    partial = ExtractionResult("p", "m1", {"total": FieldResult("total", [], 0.9)})
    assert score("least-confident", partial) == pytest.approx(0.1)
    assert score("least-confident", partial, fields=FIELDS) == 1.0
    assert score("expected-error", partial, fields=FIELDS) == pytest.approx(3.1)
    assert order("least-confident", [POOL[2], partial], fields=FIELDS) == ["p", "a"]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="random.*least-confident.*expected-error"):
        order("most-wrong", POOL)
    with pytest.raises(ValueError, match="unknown selection strategy 'x'"):
        pick_next("x", POOL, [], 1)
    with pytest.raises(ValueError, match="more than one result: \\['a'\\]"):
        order("random", [*POOL, _mock_result("a", 0.2)])
    with pytest.raises(ValueError, match="n must be >= 0"):
        pick_next("random", POOL, [], -1)
