"""Reward trainer on a tiny extractor, synthetic receipts and a real SQLite store filled
through ``ReviewService`` by the demo's simulated operator (and one reject)."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from extractor.align import align_document
from extractor.document import (
    RECEIPT_SCHEMA,
    Candidate,
    Document,
    ExtractionResult,
    FieldResult,
    Word,
    read_jsonl,
    write_jsonl,
)
from extractor.model.card import ModelCard, model_version
from extractor.model.reward import REWARD_CARD_FILE, RewardCard, RewardModel
from extractor.model.zoo import build_model
from extractor.synth.content import make_receipt
from feedback_ui.routing import RoutingConfig
from feedback_ui.service import FieldChoice, ReviewService
from feedback_ui.store import FeedbackStore
from kvloop.cli import main
from kvloop.demo import simulated_choice
from training.feedback_data import FeedbackSet, read_feedback
from training.reward_config import RewardConfig
from training.reward_trainer import (
    RewardTrainer,
    feedback_items,
    gold_items,
    item_logits,
    make_item,
)

N_DOCS = 8
REJECT_DOC = "rcpt-02"  # its total (the cash amount on top) is rejected, never corrected


def _receipt(i: int) -> tuple[Document, dict[str, list[int]]]:
    """A receipt's lines as words on a grid, its gold and the word spans of its values."""
    r = make_receipt(random.Random(f"reward-{i}"))
    rows: list[list[tuple[str, list[str]]]] = [[("company", r.company.split())]]
    rows += [[("address", a.split())] for a in r.address_lines]
    rows += [[("", ["DATE:"]), ("date", r.date_str.split()), ("", [r.time_str])],
             [("", ["TOTAL", "RM"]), ("total", [r.money(r.total)])],
             [("", ["CASH"]), ("cash", [r.money(r.cash)])],
             [("", ["CHANGE"]), ("change", [r.money(r.change)])]]
    words: list[Word] = []
    spans: dict[str, list[int]] = {}
    for row, segments in enumerate(rows):
        x = 10
        for name, toks in segments:
            for t in toks:
                spans.setdefault(name, []).append(len(words))
                words.append(Word(t, (x, 20 * row, x + 9 * len(t), 20 * row + 14), line=row))
                x += 9 * len(t) + 8
    return Document(f"rcpt-{i:02d}", words, 600, 20 * len(rows) + 20, gold=r.gold), spans


def _shown(doc: Document, spans: dict[str, list[int]], i: int) -> ExtractionResult:
    """The results the operator reviews: the total's top is wrong on even receipts."""
    def cand(name: str, score: float) -> Candidate:
        idx = spans[name]
        return Candidate(" ".join(doc.words[j].text for j in idx), score, idx)

    total = [cand("total", 0.5), cand("cash", 0.3), cand("change", 0.2)]
    if i % 2 == 0:
        total = [total[1], total[0], total[2]]
    addr = spans["address"]
    return ExtractionResult(doc.id, "kv.ensemble.v1@shown", {
        "company": FieldResult("company", [cand("company", 0.6),
                                           Candidate(doc.words[addr[0]].text, 0.2,
                                                     addr[:1])], 0.6),
        "date": FieldResult("date", [cand("date", 0.7)], 0.7),
        "total": FieldResult("total", total, 0.5),
    }, doc_hash=doc.content_hash())


@pytest.fixture(scope="module")
def receipts() -> list[tuple[Document, dict[str, list[int]]]]:
    return [_receipt(i) for i in range(N_DOCS)]


@pytest.fixture(scope="module")
def extractor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("extractor") / "model"
    model = build_model("tiny", seed=0)
    model.save_pretrained(out, ModelCard(model.schema))
    return out


@pytest.fixture(scope="module")
def store_url(receipts: list, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'feedback.db'}"
    store = FeedbackStore(url)
    try:
        service = ReviewService(store, RECEIPT_SCHEMA, dataset="test",
                                routing=RoutingConfig(audit_rate=0.0))
        docs = [d for d, _ in receipts]
        service.add(docs, [_shown(d, s, i) for i, (d, s) in enumerate(receipts)])
        for doc in docs:
            task = service.open(doc.id, "ann")
            choices = {fv.name: simulated_choice(fv, (doc.gold or {}).get(fv.name))
                       for fv in task.fields}
            if doc.id == REJECT_DOC:
                choices["total"] = FieldChoice("reject")
            service.save_correction(task, choices, "ann")
    finally:
        store.close()
    return url


@pytest.fixture(scope="module")
def feedback(store_url: str) -> FeedbackSet:
    store = FeedbackStore(store_url)
    try:
        return read_feedback(store, None, RECEIPT_SCHEMA.field_names)
    finally:
        store.close()


def _cfg(out: Path, init: Path, **kw) -> RewardConfig:
    base = {"epochs": 2, "batch_size": 2, "lr": 1e-3, "head_lr": 1e-2, "seed": 0,
            "threads": 1, "device": "cpu", "heldout_share": 0.25, "patience": 100,
            "warmup_ratio": 0.0}
    return RewardConfig(out=str(out), init=str(init), **{**base, **kw})


def _tree_hash(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(d)).encode() + p.read_bytes())
    return h.hexdigest()


# -- data ------------------------------------------------------------------------------------

def test_config_validates() -> None:
    with pytest.raises(ValueError, match="calib_data"):
        RewardConfig(calib_data="x")
    with pytest.raises(ValueError, match="heldout_share"):
        RewardConfig(heldout_share=1.0)
    with pytest.raises(ValueError, match="both be 0"):
        RewardConfig(pair_weight=0.0, pointwise_weight=0.0)
    with pytest.raises(ValueError, match="arch"):
        RewardConfig(arch="huge")


def test_make_item_pairs_and_labels() -> None:
    it = make_item(0, "total", (3,), [(4,), (3,), (4,), ()], positives=[(3,)])
    assert it is not None and it.outcomes == ((3,), (4,), ())
    assert it.pairs == ((0, 1), (0, 2)) and it.points == ((0, 1.0),)
    assert make_item(0, "total", (3,), [(3,)]) is None  # teaches nothing
    logits = [torch.tensor([2.0, -1.0, 0.5])]
    r_c, r_r, r_p, y = item_logits([it], logits)
    assert r_c.tolist() == [2.0, 2.0] and r_r.tolist() == [-1.0, 0.5]
    assert r_p.tolist() == [2.0] and y.tolist() == [1.0]


def test_store_feedback_becomes_pairs_and_labels(feedback: FeedbackSet, receipts: list) -> None:
    items = {(feedback.documents[it.doc].id, it.field): it for it in feedback_items(feedback)}
    spans = {d.id: s for d, s in receipts}
    # receipt 0: the cash amount was shown first, the operator picked the total
    t0 = items[("rcpt-00", "total")]
    chosen = tuple(spans["rcpt-00"]["total"])
    assert {(t0.outcomes[c], t0.outcomes[r]) for c, r in t0.pairs} == {
        (chosen, tuple(spans["rcpt-00"]["cash"])), (chosen, tuple(spans["rcpt-00"]["change"]))}
    assert t0.points == ()  # a pick, not an accept
    # receipt 1: the total was right and accepted: pairs over the alternatives and a label 1
    t1 = items[("rcpt-01", "total")]
    assert len(t1.pairs) == 2 and [(t1.outcomes[j], y) for j, y in t1.points] == [
        (tuple(spans["rcpt-01"]["total"]), 1.0)]


def test_a_reject_only_field_reaches_the_loss_as_a_pointwise_zero(
        feedback: FeedbackSet, receipts: list, extractor_dir: Path, tmp_path: Path) -> None:
    ex = next(e for e in feedback.examples
              if feedback.documents[e.doc].id == REJECT_DOC and e.field == "total")
    assert not ex.has_final and ex.target is None
    item = next(it for it in feedback_items(feedback) if it.doc == ex.doc
                and it.field == "total")
    assert item.pairs == ()  # no right value: no pair
    shown_top = tuple({d.id: s for d, s in receipts}[REJECT_DOC]["cash"])
    assert [(item.outcomes[j], y) for j, y in item.points] == [(shown_top, 0.0)]
    only = FeedbackSet(feedback.documents, [ex], feedback.ref)
    tr = RewardTrainer(_cfg(tmp_path / "rm", extractor_dir, heldout_share=0.0), feedback=only)
    assert tr.train_docs == [ex.doc]
    loss, parts = tr.compute_loss([ex.doc])
    assert parts["pairs_per_step"] == 0 and parts["points_per_step"] == 1 and loss > 0
    assert parts["bce_loss"] > 0 and parts["bt_loss"] == 0
    loss.backward()
    assert tr.model.classifier.span_mlp[0].weight.grad.abs().sum() > 0


def test_gold_pages_give_gold_over_the_parents_wrong_k_best(receipts: list) -> None:
    docs = [d for d, _ in receipts[:2]]
    results = [_shown(d, s, i) for i, (d, s) in enumerate(receipts[:2])]
    items = {(it.doc, it.field): it for it in gold_items(docs, results, RECEIPT_SCHEMA, 5)}
    for i, doc in enumerate(docs):
        spans = align_document(doc).spans
        t = items[(5 + i, "total")]
        assert t.outcomes[t.pairs[0][0]] == tuple(spans["total"])
        assert {t.outcomes[r] for _, r in t.pairs} == {
            tuple(receipts[i][1]["cash"]), tuple(receipts[i][1]["change"])}
        assert bool(t.points) == (i % 2 == 1)  # label 1 when the parent's top was right
        a = items[(5 + i, "address")]  # the parent said absent: gold over absent
        assert [a.outcomes[r] for _, r in a.pairs] == [()]


# -- training --------------------------------------------------------------------------------

def test_training_separates_right_from_wrong(store_url: str, extractor_dir: Path,
                                             tmp_path: Path) -> None:
    parent_before = _tree_hash(extractor_dir)
    tr = RewardTrainer(_cfg(tmp_path / "rm", extractor_dir, store=store_url, epochs=6,
                            lr=1e-4, head_lr=2e-3))
    before = tr.pair_metrics(tr.train_docs)
    assert before["pairs"] >= 10 and before["pair_acc"] < 0.9  # a fresh head: chance
    out = tr.train().out
    card = RewardCard.load(out)
    rec = card.training
    assert rec is not None and rec.feedback is not None
    hist = rec.history
    assert hist[-1]["train_pair_acc"] > 0.9 and hist[-1]["train_pairs"] == before["pairs"]
    assert hist[-1]["train_pair_loss"] < before["pair_loss"]
    assert "heldout_pair_acc" in hist[-1] and hist[-1]["heldout_pairs"] > 0
    # lineage: the parent, the feedback read, the config, the curves
    assert rec.trainer == "reward" and rec.parent_version == model_version(extractor_dir)
    assert rec.feedback.n_documents == N_DOCS and rec.feedback.source.startswith("sqlite")
    assert rec.config["out"] == str(tmp_path / "rm")
    assert card.version == RewardModel.from_pretrained(out)[0].version
    rows = [json.loads(x) for x in (out / "curves.jsonl").read_text().splitlines()]
    assert any("bt_loss" in r for r in rows) and sum("epoch_end" in r for r in rows) == 6
    assert not (out / "checkpoint-last").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rm"]  # no temporary folder left
    assert _tree_hash(extractor_dir) == parent_before
    with pytest.raises(FileExistsError, match="never overwrites"):
        RewardTrainer(_cfg(out, extractor_dir, store=store_url))


def test_same_seed_same_weights(store_url: str, extractor_dir: Path, tmp_path: Path) -> None:
    a = RewardTrainer(_cfg(tmp_path / "a", extractor_dir, store=store_url)).train().out
    b = RewardTrainer(_cfg(tmp_path / "b", extractor_dir, store=store_url)).train().out
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    start = RewardModel.from_extractor(extractor_dir, seed=0).state_dict()
    assert any(not torch.equal(wa[k], start[k]) for k in wa if k.startswith("encoder."))
    assert RewardCard.load(a).version == RewardCard.load(b).version


def test_arch_starts_the_encoder_from_the_zoo(feedback: FeedbackSet, extractor_dir: Path,
                                             tmp_path: Path) -> None:
    parent = RewardModel.from_extractor(extractor_dir).state_dict()
    fresh = RewardTrainer(_cfg(tmp_path / "rm", extractor_dir, arch="tiny", seed=5),
                          feedback=feedback).model.state_dict()
    enc = [k for k in parent if k.startswith("encoder.encoder.")]
    assert enc and all(not torch.equal(parent[k], fresh[k]) for k in enc if parent[k].ndim > 1)


def test_training_from_gold_reports_dev_rerank_f1(receipts: list, extractor_dir: Path,
                                                  tmp_path: Path) -> None:
    docs = [d for d, _ in receipts]
    tr = RewardTrainer(_cfg(tmp_path / "rm", extractor_dir, epochs=1, k=3),
                       gold_docs=docs[:6], dev_docs=docs[6:])
    assert tr.ref.source == "gold docs" and tr.ref.n_documents == 6
    out = tr.train().out
    rec = RewardCard.load(out).training
    assert rec is not None
    row = rec.history[0]
    assert 0.0 <= row["dev_f1_rerank"] <= 1.0 and 0.0 <= row["dev_f1_parent"] <= 1.0


# -- command line ----------------------------------------------------------------------------

def test_cli_train_reward_then_extract_with_rerank(store_url: str, extractor_dir: Path,
                                                   receipts: list, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    rm = tmp_path / "reward"
    assert main(["train", "reward", "--init", str(extractor_dir), "--store", store_url,
                 "--out", str(rm), "--epochs", "1", "--threads", "1", "--device", "cpu",
                 "--heldout-share", "0"]) == 0
    assert (rm / REWARD_CARD_FILE).is_file()
    docs = tmp_path / "docs.jsonl"
    write_jsonl(str(docs), [replace(d, gold=None) for d, _ in receipts[:3]])
    plain, reranked = tmp_path / "plain.jsonl", tmp_path / "reranked.jsonl"
    args = ["extract", str(extractor_dir), str(docs), "--threads", "1", "--device", "cpu",
            "--k", "3"]
    assert main([*args, "--out", str(plain)]) == 0
    assert main([*args, "--out", str(reranked), "--rerank", str(rm)]) == 0
    version = RewardModel.from_pretrained(rm)[0].version
    assert f"+{version}: wrote 3 result(s)" in capsys.readouterr().out
    before, after = list(read_jsonl(str(plain))), list(read_jsonl(str(reranked)))
    assert [r["doc_id"] for r in after] == [r["doc_id"] for r in before]
    for b, a in zip(before, after):
        assert a["model_version"] == f"{b['model_version']}+{version}"
        for name, f in b["fields"].items():
            key = [json.dumps(c, sort_keys=True) for c in f["candidates"]]
            got = [json.dumps(c, sort_keys=True) for c in a["fields"][name]["candidates"]]
            assert sorted(got) == sorted(key)  # the same candidates, maybe reordered
    assert main([*args, "--out", str(tmp_path / "x.jsonl"), "--rerank",
                 str(extractor_dir)]) == 2
    assert "that is an extractor" in capsys.readouterr().err
