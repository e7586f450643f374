"""Span scores and k-best decoding on hand-made tag distributions."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from extractor.align import span_value
from extractor.document import RECEIPT_SCHEMA, Word
from extractor.model.decode import (
    decode_field,
    field_label_ids,
    log1m_exp,
    sample_spans,
    span_index_log_prob,
    span_log_probs,
    top_spans,
)

LABELS = RECEIPT_SCHEMA.labels


def tag_lp(rows: list[dict[str, float]]) -> torch.Tensor:
    """Per-word log-probs from {label: prob} rows (rest spread evenly, then normalised)."""
    out = []
    for r in rows:
        rest = (1.0 - sum(r.values())) / (len(LABELS) - len(r))
        out.append([r.get(lab, rest) for lab in LABELS])
    return torch.tensor(out, dtype=torch.float64).log()


def naive_scores(lp: torch.Tensor, b: int, i: int, max_len: int) -> dict[tuple[int, int], float]:
    """Enumerate spans with the documented formula, then normalise with "absent"."""
    n = lp.shape[0]
    raw: dict = {}
    for s in range(n):
        for e in range(s, min(n, s + max_len)):
            v = lp[s, b].item() + sum(lp[t, i].item() for t in range(s + 1, e + 1))
            if e + 1 < n:
                v += math.log(1 - math.exp(lp[e + 1, i].item()))
            raw[(s, e)] = v
    raw["absent"] = sum(math.log(1 - math.exp(lp[w, b].item())) for w in range(n))
    z = math.log(sum(math.exp(v) for v in raw.values()))
    return {k: v - z for k, v in raw.items()}


def test_log1m_exp_matches_naive() -> None:
    lp = torch.tensor([-1e-3, -0.1, -0.69, -0.7, -5.0, -40.0], dtype=torch.float64)
    assert torch.allclose(log1m_exp(lp), torch.log(1 - lp.exp()), rtol=1e-6)


@pytest.mark.parametrize("seed,max_len", [(0, 3), (1, 10), (2, 1)])
def test_span_log_probs_match_naive_enumeration(seed: int, max_len: int) -> None:
    g = torch.Generator().manual_seed(seed)
    lp = torch.randn(6, len(LABELS), generator=g, dtype=torch.float64).log_softmax(-1)
    b, i = field_label_ids(RECEIPT_SCHEMA, "address")
    span_lp, absent = span_log_probs(lp, b, i, max_len)
    ref = naive_scores(lp, b, i, max_len)
    assert math.isclose(absent.item(), ref["absent"], rel_tol=1e-9)
    for (s, e), v in ((k, v) for k, v in ref.items() if k != "absent"):
        assert math.isclose(span_lp[s, e - s].item(), v, rel_tol=1e-9)
    total = torch.logsumexp(torch.cat([span_lp.flatten(), absent.view(1)]), 0)
    assert abs(total.item()) < 1e-9


def test_k_best_spans_in_expected_order() -> None:
    # words: "TOTAL" "RM" "60.30" "CASH" "100.00"; the total is word 2, cash amount word 4.
    lp = tag_lp([{"O": 0.98}, {"O": 0.9, "B-TOTAL": 0.05}, {"B-TOTAL": 0.8, "O": 0.1},
                 {"O": 0.98}, {"B-TOTAL": 0.15, "O": 0.8}])
    b, i = field_label_ids(RECEIPT_SCHEMA, "total")
    span_lp, _ = span_log_probs(lp, b, i, 4)
    spans = [(s, e) for s, e, _ in top_spans(span_lp, 3)]
    assert spans[0] == (2, 2)
    assert spans[1] == (4, 4)
    assert spans[2] == (1, 1)


def test_stray_b_does_not_split_a_name() -> None:
    # "INDAH GIFT & HOME DECO" with an uncertain B on "HOME": the whole name still wins.
    lp = tag_lp([{"B-COMPANY": 0.9}, {"I-COMPANY": 0.9}, {"I-COMPANY": 0.9},
                 {"I-COMPANY": 0.55, "B-COMPANY": 0.4}, {"I-COMPANY": 0.9}, {"O": 0.97}])
    words = [Word(t, (0, 0, 1, 1)) for t in ["INDAH", "GIFT", "&", "HOME", "DECO", "27,JALAN"]]
    dec = decode_field(words, lp, RECEIPT_SCHEMA, "company", k=3)
    assert dec.candidates[0].value == "INDAH GIFT & HOME DECO"
    assert dec.candidates[0].word_indices == [0, 1, 2, 3, 4]
    assert "HOME DECO" in [c.value for c in dec.candidates]
    scores = [c.score for c in dec.candidates]
    assert scores == sorted(scores, reverse=True)


def test_duplicates_merge_after_normalisation() -> None:
    # The same amount printed twice ("60.30" and "RM60.30") merges into one candidate.
    lp = tag_lp([{"B-TOTAL": 0.5}, {"O": 0.98}, {"B-TOTAL": 0.4}])
    words = [Word("60.30", (0, 0, 1, 1)), Word("CASH", (0, 0, 1, 1)),
             Word("RM60.30", (0, 0, 1, 1))]
    dec = decode_field(words, lp, RECEIPT_SCHEMA, "total", k=5)
    values = [c.value for c in dec.candidates]
    assert values.count("60.30") == 1
    b, i = field_label_ids(RECEIPT_SCHEMA, "total")
    span_lp, _ = span_log_probs(lp, b, i)
    # every span whose value reads 60.30 (e.g. "60.30 CASH" yields the amount inside it)
    want = sum(span_lp[s, e - s].exp().item() for s in range(3) for e in range(s, 3)
               if span_value(words, list(range(s, e + 1)), RECEIPT_SCHEMA["total"]) == "60.30")
    assert math.isclose(dec.candidates[0].score, want, rel_tol=1e-6)


def test_log_prob_of_sampled_spans_matches_decoder_scores() -> None:
    g = torch.Generator().manual_seed(3)
    lp = torch.randn(7, len(LABELS), generator=g, dtype=torch.float64).log_softmax(-1)
    b, i = field_label_ids(RECEIPT_SCHEMA, "company")
    span_lp, absent = span_log_probs(lp, b, i, 4)
    draws = sample_spans(span_lp, absent, 2000, torch.Generator().manual_seed(0))
    counts: dict = {}
    for d in draws:
        counts[tuple(d)] = counts.get(tuple(d), 0) + 1
    for idx, c in sorted(counts.items(), key=lambda kv: -kv[1])[:3]:
        p = span_index_log_prob(span_lp, absent, lp, b, i, list(idx)).exp().item()
        assert abs(c / 2000 - p) < 4 * math.sqrt(p * (1 - p) / 2000) + 1e-3
    for d in draws[:20]:
        assert d == [] or d == list(range(d[0], d[-1] + 1))


def test_long_span_log_prob_uses_same_normaliser() -> None:
    lp = torch.randn(6, len(LABELS), generator=torch.Generator().manual_seed(5),
                     dtype=torch.float64).log_softmax(-1)
    b, i = field_label_ids(RECEIPT_SCHEMA, "address")
    short, absent = span_log_probs(lp, b, i, 2)
    ref = naive_scores(lp, b, i, 2)  # normalised over spans of <= 2 words + absent
    log_z = math.log(sum(math.exp(v) for v in ref.values()))  # 0: already normalised
    raw = (lp[0, b] + lp[1:5, i].sum() + torch.log(1 - lp[5, i].exp())).item()
    raw_z = ref[(0, 0)] - (lp[0, b] + torch.log(1 - lp[1, i].exp())).item()
    v = span_index_log_prob(short, absent, lp, b, i, [0, 1, 2, 3, 4])
    assert math.isclose(v.item(), raw + raw_z - log_z, rel_tol=1e-9)
    with pytest.raises(ValueError):
        span_index_log_prob(short, absent, lp, b, i, [0, 2])


def test_empty_document_is_absent() -> None:
    lp = torch.zeros((0, len(LABELS)))
    dec = decode_field([], lp, RECEIPT_SCHEMA, "date")
    assert dec.candidates == [] and math.isclose(dec.absent_prob, 1.0)


def test_all_span_combinations_sum_to_one() -> None:
    lp = torch.randn(4, len(LABELS), dtype=torch.float64).log_softmax(-1)
    b, i = field_label_ids(RECEIPT_SCHEMA, "date")
    span_lp, absent = span_log_probs(lp, b, i, 4)
    p = sum(span_lp[s, e - s].exp().item()
            for s, e in itertools.combinations_with_replacement(range(4), 2))
    assert math.isclose(p + absent.exp().item(), 1.0, rel_tol=1e-9)


def test_typed_fields_offer_only_values_of_their_type() -> None:
    """The model's best total span is the currency word alone; best date span a bare day."""
    words = [Word(t, (0, 0, 1, 1)) for t in ["TOTAL", "RM", "60.30", "DATE", "04", "JAN", "2017"]]
    lp = tag_lp([{"O": 0.9}, {"B-TOTAL": 0.6}, {"B-TOTAL": 0.3}, {"O": 0.9},
                 {"B-DATE": 0.5}, {"I-DATE": 0.3}, {"I-DATE": 0.3}])
    total = decode_field(words, lp, RECEIPT_SCHEMA, "total", k=3).candidates
    assert total[0].value == "60.30" and "RM" not in [c.value for c in total]
    date = decode_field(words, lp, RECEIPT_SCHEMA, "date", k=3).candidates
    assert date[0].value == "04 JAN 2017"
    assert all(c.value not in ("04", "JAN", "2017", "JAN 2017") for c in date)


def test_sampling_without_some_outcomes_draws_the_rest_in_proportion() -> None:
    g = torch.Generator().manual_seed(4)
    lp = torch.randn(5, len(LABELS), generator=g, dtype=torch.float64).log_softmax(-1)
    b, i = field_label_ids(RECEIPT_SCHEMA, "total")
    span_lp, absent = span_log_probs(lp, b, i, 3)
    flat = torch.cat([span_lp.flatten(), absent.view(1)]).exp()
    top = int(flat.argmax())
    best = [] if top == flat.numel() - 1 else list(range(top // 3, top // 3 + top % 3 + 1))
    excluded = [best, []] if best else [[], [0]]
    draws = sample_spans(span_lp, absent, 3000, torch.Generator().manual_seed(0),
                         exclude=excluded)
    assert not any(d in excluded for d in draws)
    rest = 1 - sum(span_index_log_prob(span_lp, absent, lp, b, i, o).exp().item()
                   if o else absent.exp().item() for o in excluded)
    some = next(d for d in draws)
    p = span_index_log_prob(span_lp, absent, lp, b, i, some).exp().item() / rest
    share = sum(d == some for d in draws) / 3000
    assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / 3000) + 1e-3
    # nothing left outside the excluded outcomes: drawn from the whole categorical
    everything = [[]] + [list(range(s, s + d + 1)) for s in range(5) for d in range(3)
                         if s + d < 5]
    assert len(sample_spans(span_lp, absent, 5, torch.Generator().manual_seed(0),
                            exclude=everything)) == 5
    # no exclusion draws exactly as before
    assert sample_spans(span_lp, absent, 50, torch.Generator().manual_seed(1)) == \
        sample_spans(span_lp, absent, 50, torch.Generator().manual_seed(1), exclude=())
