"""The batched policy equals the per-(document, field) policy API, and samples carry log-probs."""

from __future__ import annotations

import pytest
import torch

from extractor.document import Document, Word
from extractor.model.ensemble import KVEnsemble
from extractor.model.policy import BatchedPolicy, FieldOutcomes, dropout_off
from extractor.model.zoo import build_model

TEXTS = ["INDAH", "GIFT", "&", "HOME", "DECO", "27,JALAN", "DEDAP", "13", "19/10/2018", "TOTAL",
         "RM", "60.30", "CASH", "100.00", "CHANGE", "39.70"]


def _mock_doc(n: int, doc_id: str) -> Document:
    words = [Word(TEXTS[i % len(TEXTS)], (10 * i, 5 * i, 10 * i + 8, 5 * i + 4))
             for i in range(n)]
    return Document(doc_id, words, 200, 100)


@pytest.fixture(scope="module")
def tiny() -> KVEnsemble:
    # max_length 64: the 90-word page spans several windows, so batching crosses windows too
    return build_model("tiny", seed=0, max_span_len=8)


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return [_mock_doc(n, f"d{n}") for n in (5, 12, 30, 90)]


def _queries(docs: list[Document]) -> list[FieldOutcomes]:
    out = []
    for i, d in enumerate(docs):
        n = len(d.words)
        for field in ("company", "date", "address", "total"):
            out.append(FieldOutcomes(i, field, [[], [0], [n - 1], list(range(1, min(n, 4))),
                                                list(range(min(n, 10)))]))  # 10 > max span
    return out


def test_batched_log_probs_equal_per_document_calls(tiny: KVEnsemble, docs: list) -> None:
    tiny.eval()
    queries = _queries(docs)
    batched = BatchedPolicy(tiny, batch_size=3).log_probs(docs, queries)
    for q, lp in zip(queries, batched):
        single = tiny.log_probs(docs[q.doc], q.field, q.outcomes)
        assert lp.shape == (len(q.outcomes),)
        assert torch.allclose(lp, single, atol=1e-5), (q.doc, q.field)


def test_batched_log_probs_are_differentiable_without_dropout() -> None:
    model = build_model("tiny", seed=0)
    for m in (model.bert, model.layoutlm):  # dropout on, so train mode would differ per call
        m.config.hidden_dropout_prob = 0.3
        for mod in m.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.3
    model.train()
    doc = _mock_doc(12, "d")
    policy = BatchedPolicy(model)
    q = [FieldOutcomes(0, "total", [[11], []])]
    a, b = policy.log_probs([doc], q)[0], policy.log_probs([doc], q)[0]
    assert torch.equal(a, b) and model.training  # eval-mode forward, mode restored
    a.sum().backward()
    assert model.fusion_raw.grad is not None and model.bert.classifier.weight.grad is not None
    with torch.no_grad():
        noisy = policy.log_probs([doc], q, dropout=True)[0]
    assert not torch.equal(noisy, a)


def test_samples_come_with_their_log_probs(tiny: KVEnsemble, docs: list) -> None:
    tiny.eval()
    fields = [(i, f) for i in range(len(docs)) for f in ("date", "total")]
    policy = BatchedPolicy(tiny)
    draws = policy.sample(docs, fields, 7, torch.Generator().manual_seed(3))
    again = policy.sample(docs, fields, 7, torch.Generator().manual_seed(3))
    assert [d.outcomes for d in draws] == [d.outcomes for d in again]  # seeded
    for s in draws:
        assert len(s.outcomes) == 7 and s.log_probs.shape == (7,)
        assert not s.log_probs.requires_grad
        expect = tiny.log_probs(docs[s.doc], s.field, s.outcomes)
        assert torch.allclose(s.log_probs, expect, atol=1e-5)
    outcomes, lps = tiny.sample(docs[1], "total", 5, torch.Generator().manual_seed(0))
    assert torch.allclose(lps, tiny.log_probs(docs[1], "total", outcomes), atol=1e-6)


def test_dropout_off_restores_the_mode() -> None:
    m = torch.nn.Sequential(torch.nn.Dropout(0.5))
    m.train()
    with dropout_off(m):
        assert not m.training
    assert m.training


def test_bad_outcomes_are_refused(tiny: KVEnsemble, docs: list) -> None:
    with pytest.raises(ValueError, match="contiguous"):
        BatchedPolicy(tiny).log_probs(docs, [FieldOutcomes(1, "total", [[2, 4]])])
    with pytest.raises(ValueError, match="contiguous"):
        BatchedPolicy(tiny).log_probs(docs, [FieldOutcomes(0, "total", [[7]])])
