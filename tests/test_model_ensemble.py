"""The ensemble: zoo, LayoutLM-from-BERT, save/load round trip, policy API (tiny configs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from extractor.document import RECEIPT_SCHEMA, Document, FieldSpec, Schema, Word
from extractor.model.calibrate import Calibrator, DecisionProfile
from extractor.model.card import ModelCard
from extractor.model.ensemble import KVEnsemble
from extractor.model.layoutlm import SINUSOIDAL_ROW_NORM
from extractor.model.zoo import ARCHS, build_model, default_cfgs


def _mock_doc(n: int = 12, doc_id: str = "d1") -> Document:
    texts = ["INDAH", "GIFT", "&", "HOME", "DECO", "27,JALAN", "DEDAP", "13", "19/10/2018", "TOTAL", "RM", "60.30"]
    words = [Word(texts[i % len(texts)], (10 * i, 5 * i, 10 * i + 8, 5 * i + 4))
             for i in range(n)]
    return Document(doc_id, words, 200, 100)


@pytest.fixture(scope="module")
def tiny() -> KVEnsemble:
    return build_model("tiny", seed=0).eval()


def test_zoo_names_and_errors(tiny: KVEnsemble) -> None:
    assert set(ARCHS) == set(default_cfgs)
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("bert-xxl")
    assert build_model(tiny) is tiny
    other = Schema("x", [FieldSpec("amount", "amount")])
    with pytest.raises(ValueError):
        build_model(tiny, other)
    assert tiny.bert.config.vocab_size == tiny.tokenizer.vocab_size


def test_layoutlm_zero_init_starts_as_bert() -> None:
    """Zero layout embeddings: the LayoutLM encoder computes BERT's hidden states at init."""
    fresh = build_model("tiny", seed=1, layout_init="zero").eval()
    ids = torch.tensor([[101, 7592, 2088, 102]])
    box = torch.tensor([[[0, 0, 0, 0], [10, 20, 30, 40], [500, 600, 700, 800],
                         [1000, 1000, 1000, 1000]]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        h_b = fresh.bert.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        h_l = fresh.layoutlm.layoutlm(input_ids=ids, bbox=box,
                                      attention_mask=mask).last_hidden_state
    assert torch.allclose(h_b, h_l, atol=1e-6)


def test_layoutlm_sinusoidal_init_is_small_smooth_and_seeded() -> None:
    """Default start: near coordinates get near codes, far ones do not; same seed, same code."""
    a = build_model("tiny", seed=1).layoutlm.layoutlm.embeddings
    b = build_model("tiny", seed=1).layoutlm.layoutlm.embeddings
    x = a.x_position_embeddings.weight.detach()
    assert torch.equal(x, b.x_position_embeddings.weight)
    norms = x.norm(dim=1)
    assert torch.allclose(norms, torch.full_like(norms, SINUSOIDAL_ROW_NORM), atol=1e-5)
    cos = torch.nn.functional.cosine_similarity
    assert cos(x[500], x[501], dim=0) > 0.9 > cos(x[500], x[900], dim=0)
    assert not torch.allclose(x, a.y_position_embeddings.weight)  # one rotation per table
    with pytest.raises(ValueError, match="layout_init"):
        build_model("tiny", layout_init="random")


def test_forward_shapes_and_fusion(tiny: KVEnsemble) -> None:
    ids = torch.tensor([[101, 7592, 102, 0]])
    out = tiny(ids, torch.zeros(1, 4, 4, dtype=torch.long), torch.tensor([[1, 1, 1, 0]]))
    n = len(RECEIPT_SCHEMA.labels)
    for lp in (out.bert, out.layoutlm, out.fused):
        assert lp.shape == (1, 4, n)
        assert torch.allclose(lp.exp().sum(-1), torch.ones(1, 4), atol=1e-5)
    w = tiny.fusion_weights
    want = (w[0] * out.bert + w[1] * out.layoutlm).log_softmax(-1)
    assert torch.allclose(out.fused, want, atol=1e-6)


def test_save_load_round_trip_in_new_process(tiny: KVEnsemble, tmp_path: Path) -> None:
    with torch.no_grad():
        tiny.fusion_raw.copy_(torch.tensor([0.3, 1.7]))  # non-default, must survive
    card = ModelCard(RECEIPT_SCHEMA, decisions=DecisionProfile(Calibrator(1.5, 0.1)))
    tiny.save_pretrained(tmp_path / "m", card)
    doc = _mock_doc(30)
    (tmp_path / "doc.json").write_text(__import__("json").dumps(doc.export()))
    with torch.inference_mode():
        want = tiny.doc_word_log_probs(doc)
    script = (
        "import json, sys, torch\n"
        "from extractor.document import Document\n"
        "from extractor.model.predictor import load_predictor\n"
        "p = load_predictor(sys.argv[1])\n"
        "doc = Document.from_dict(json.load(open(sys.argv[2])))\n"
        "torch.save(p.pass_log_probs([doc])[0][0], sys.argv[3])\n"
        "print(p.version)\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "m"),
                          str(tmp_path / "doc.json"), str(tmp_path / "lp.pt")],
                         capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    got = torch.load(tmp_path / "lp.pt", weights_only=True)
    assert torch.equal(got, want)
    assert out.stdout.strip().startswith("kv.ensemble.v1@")


def test_load_rejects_non_model_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="kvloop.json"):
        KVEnsemble.from_pretrained(tmp_path)


def test_policy_log_prob_has_grad_into_both_members(tiny: KVEnsemble) -> None:
    doc = _mock_doc()
    tiny.zero_grad()
    lp = tiny.log_prob(doc, "company", [0, 1, 2])
    assert lp.requires_grad and lp.item() < 0
    lp.backward()
    assert tiny.bert.classifier.weight.grad is not None
    assert tiny.layoutlm.classifier.weight.grad is not None
    assert tiny.fusion_raw.grad is not None
    tiny.zero_grad()


def test_policy_samples_and_log_probs_agree(tiny: KVEnsemble) -> None:
    doc = _mock_doc()
    draws, draw_lps = tiny.sample(doc, "total", 50, torch.Generator().manual_seed(0))
    assert len(draws) == 50 and draw_lps.shape == (50,)
    with torch.no_grad():
        d = tiny.span_distribution(doc, "total")
        lps = tiny.log_probs(doc, "total", draws[:5])
    for o, v in zip(draws[:5], lps):
        want = d.absent_lp if not o else d.span_lp[o[0], len(o) - 1]
        assert torch.isclose(v, want)
    total = torch.logsumexp(torch.cat([d.span_lp.flatten(), d.absent_lp.view(1)]), 0)
    assert abs(total.item()) < 1e-5
    assert torch.allclose(draw_lps[:5], lps)
    again, _ = tiny.sample(doc, "total", 50, torch.Generator().manual_seed(0))
    assert draws == again


def test_reference_copy_is_frozen_and_equal(tiny: KVEnsemble) -> None:
    ref = tiny.reference()
    assert all(not p.requires_grad for p in ref.parameters())
    doc = _mock_doc()
    lp = tiny.log_prob(doc, "date", [9])
    ref_lp = ref.log_prob(doc, "date", [9])
    assert not ref_lp.requires_grad
    assert torch.isclose(lp.detach(), ref_lp)
