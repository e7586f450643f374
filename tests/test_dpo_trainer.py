"""DPO trainer (DPO, DPOP, differing words, online) on a tiny model and a real SQLite store.

Builders (mock receipts with gold, the briefly fitted tiny parent, the store filled through
``ReviewService``) come from ``test_rl_trainer``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from test_rl_trainer import _curves, _fill_store, _mock_receipt, _mock_receipts, _parent, _tree_hash

from extractor.align import span_value, value_spans
from extractor.document import RECEIPT_SCHEMA, Document, Word
from extractor.model.ensemble import KVEnsemble
from extractor.normalize import lenient_key
from feedback_ui.store import FeedbackStore
from training.dpo_config import DPOConfig
from training.dpo_trainer import DPOTrainer, feedback_pairs
from training.feedback_data import FeedbackSet, FieldExample, RejectedSpan, read_feedback


@dataclass
class World:
    root: Path
    parent: Path
    url: str
    rejected: tuple[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("dpo")
    parent = _parent(root / "parent")
    url = f"sqlite:///{root / 'feedback.db'}"
    rejected = _fill_store(url, parent, _mock_receipts(range(8)), reject=True)
    assert rejected is not None
    return World(root, parent, url, rejected)


def _cfg(world: World, out: str, **kw) -> DPOConfig:
    base = {"init": str(world.parent), "store": world.url, "out": str(world.root / out),
            "beta": 0.5, "batch_size": 8, "epochs": 3, "lr": 2e-3, "head_lr": 2e-3, "seed": 0,
            "threads": 2, "warmup_ratio": 0.0, "weight_decay": 0.0}
    return DPOConfig(**{**base, **kw})


def test_config_validates() -> None:
    with pytest.raises(ValueError, match="loss_type"):
        DPOConfig(loss_type="ipo")
    with pytest.raises(ValueError, match="beta"):
        DPOConfig(beta=0.0)
    with pytest.raises(ValueError, match="--reward"):
        DPOConfig(online=True)
    assert DPOConfig(online=True, reward="oracle").online


def test_value_spans_equal_the_naive_enumeration() -> None:
    doc = _mock_receipt(4)
    for field in ("company", "total", "date", "address"):
        spec = RECEIPT_SCHEMA[field]
        value = doc.gold[field]  # type: ignore[index]
        n = len(doc.words)
        naive = [tuple(range(s, e + 1)) for s in range(n) for e in range(s, min(n, s + 4))
                 if lenient_key(span_value(doc.words, range(s, e + 1), spec))
                 == lenient_key(value)]
        assert value_spans(doc.words, spec, value, 4) == naive and naive, field
    total = value_spans(doc.words, RECEIPT_SCHEMA["total"], doc.gold["total"], 4)  # type: ignore[index]
    # the amount alone, and spans around it that denote it ("TOTAL RM 22.68"), not "RM 22.68"
    texts = [" ".join(doc.words[i].text for i in s) for s in total]
    assert doc.gold["total"] in texts and f"RM {doc.gold['total']}" not in texts  # type: ignore[index]


def test_pairs_come_from_placed_rejections_and_reject_only_fields_are_counted(
        world: World) -> None:
    store = FeedbackStore(world.url)
    try:
        fb = read_feedback(store, None, RECEIPT_SCHEMA.field_names)
    finally:
        store.close()
    pairs, counts = feedback_pairs(fb, RECEIPT_SCHEMA, 4)
    doc_id, field = world.rejected
    [ex] = [e for e in fb.examples if fb.documents[e.doc].id == doc_id and e.field == field]
    assert not ex.has_final and ex.target is None and ex.rejected
    assert ex not in fb.targets()  # no SFT target either
    assert counts.reject_only == 1 and counts.fields == len(fb.examples) == 32
    assert not [p for p in pairs if p.doc == ex.doc and p.field == field]
    assert counts.pairs == len(pairs) > 10 and counts.with_pairs + counts.no_rejection + \
        counts.reject_only + counts.unknown_target == counts.fields
    for p in pairs:
        doc, spec = fb.documents[p.doc], RECEIPT_SCHEMA[p.field]
        assert p.chosen in p.chosen_spans and p.rejected in p.rejected_spans
        assert not set(p.chosen_spans) & set(p.rejected_spans)
        keys = {lenient_key(span_value(doc.words, s, spec)) if s else None
                for s in p.chosen_spans}
        assert len(keys) == 1 or p.chosen == ()  # every chosen span spells one value


def test_dpo_widens_the_margin(world: World) -> None:
    tr = DPOTrainer(_cfg(world, "dpo"))
    assert tr.describe()["reject_only"] == 1
    start = tr.evaluate(0)
    assert abs(start["pairs_margin"]) < 1e-6 and abs(start["pairs_loss"] - math.log(2)) < 1e-6
    out = tr.train().out
    steps, epochs = _curves(out)
    margins = [e["pairs_margin"] for e in epochs]
    assert margins[0] > 0 and margins[-1] > margins[0]
    assert epochs[-1]["pairs_accuracy"] > 0.8 and epochs[-1]["pairs_loss"] < math.log(2)
    assert {"chosen_reward", "rejected_reward", "margin", "chosen_vs_ref", "pairs"} <= set(
        steps[0])
    assert abs(steps[0]["margin"]) < 1e-6  # the start model is the reference
    card = json.loads((out / "kvloop.json").read_text())
    assert card["training"]["best_epoch"] == len(epochs)  # no dev pages: the latest epoch
    assert "dev_f1" not in epochs[0]


def test_dev_pages_pick_the_kept_epoch(world: World, caplog: pytest.LogCaptureFixture) -> None:
    store = FeedbackStore(world.url)
    try:
        reviewed = read_feedback(store).documents[0]
    finally:
        store.close()
    dev = _mock_receipts(range(40, 44)) + [reviewed]
    with caplog.at_level(logging.WARNING, logger="training.feedback_trainer"):
        tr = DPOTrainer(_cfg(world, "dev", epochs=3, patience=10), dev_docs=dev)
    assert "1 dev pages are also training pages" in caplog.text  # kept, but said
    assert len(tr.dev_docs) == 5
    out = tr.train().out
    _, epochs = _curves(out)
    assert all({"dev_f1", "dev_strict_f1", "dev_recall_at_5", "pairs_margin"} <= set(e)
               for e in epochs)
    f1 = [e["dev_f1"] for e in epochs]
    card = json.loads((out / "kvloop.json").read_text())
    assert card["training"]["best_epoch"] == 1 + f1.index(max(f1))


def _repeated_word_feedback() -> FeedbackSet:
    """Pages printing ``KEDAI MAJU MAJU MAJU ...``; chosen ``KEDAI MAJU``, rejected ``KEDAI``.

    The margin needs ``I-company`` up on the first ``MAJU`` and down on the second, which the
    network can hardly tell apart: DPO widens the margin by lowering both values.
    """
    docs, examples = [], []
    for i in range(6):
        toks = ["KEDAI", "MAJU", "MAJU", "MAJU", "SDN", "BHD", "TOTAL", "RM", f"{i}.50"]
        words = [Word(t, (10 + 40 * k, 10, 40 + 40 * k, 24), line=0) for k, t in enumerate(toks)]
        docs.append(Document(f"m{i}", words, 400, 40))
        examples.append(FieldExample(i, "company", (0, 1), "KEDAI MAJU", True,
                                     (RejectedSpan("KEDAI", (0,), False),), "edit"))
    return FeedbackSet(docs, examples)


def test_dpop_keeps_the_chosen_log_prob_where_dpo_lowers_it(world: World) -> None:
    fb = _repeated_word_feedback()
    kw = {"store": "", "epochs": 8, "lr": 3e-2, "head_lr": 3e-2, "beta": 0.1, "batch_size": 6}
    runs = {}
    for loss_type in ("dpo", "dpop"):
        tr = DPOTrainer(_cfg(world, f"repeat-{loss_type}", loss_type=loss_type, **kw), fb)
        runs[loss_type] = _curves(tr.train().out)[1]
    dpo = [e["pairs_chosen_vs_ref"] for e in runs["dpo"]]
    dpop = [e["pairs_chosen_vs_ref"] for e in runs["dpop"]]
    assert min(dpo) < -1.0, dpo  # DPO lowered the chosen value (and reports it)
    assert runs["dpo"][-1]["pairs_margin"] > 0 and runs["dpop"][-1]["pairs_margin"] > 0
    assert min(dpop) > 0 and all(b > a for a, b in zip(dpo, dpop)), (dpo, dpop)
    assert max(e["pairs_chosen_down"] for e in runs["dpo"]) == 1.0
    assert all(e["pairs_chosen_down"] == 0.0 for e in runs["dpop"])


def test_differing_words_widen_their_margin(world: World) -> None:
    tr = DPOTrainer(_cfg(world, "diff", loss_type="diff_words"))
    out = tr.train().out
    _, epochs = _curves(out)
    assert epochs[-1]["pairs_margin"] > epochs[0]["pairs_margin"] > 0


def test_online_dpo_ranks_its_own_samples(world: World) -> None:
    tr = DPOTrainer(_cfg(world, "online", online=True, reward="oracle", samples_per_field=8,
                         batch_size=4, epochs=2))
    assert tr.steps_per_epoch() == 2  # 8 reviewed documents, 4 per step
    pairs = tr.online_pairs([0, 1])
    assert pairs and all(p.doc in (tr.doc_fields[0][0], tr.doc_fields[1][0]) for p in pairs)
    steps, epochs = _curves(tr.train().out)
    assert len(steps) == 4 and all(s["pairs"] > 0 for s in steps)
    assert "pairs_margin" in epochs[0]  # the store's pairs measure the epochs


def test_new_version_parent_untouched_and_seeded(world: World) -> None:
    before = _tree_hash(world.parent)
    a = DPOTrainer(_cfg(world, "seed-a", loss_type="dpop", max_steps=2)).train().out
    b = DPOTrainer(_cfg(world, "seed-b", loss_type="dpop", max_steps=2)).train().out
    assert _tree_hash(world.parent) == before
    wa, wb = _tree_hash(a), _tree_hash(b)
    for part in ("bert/model.safetensors", "layoutlm/model.safetensors"):
        assert wa[part] == wb[part] != before[part]
    card = json.loads((a / "kvloop.json").read_text())
    assert card["training"]["trainer"] == "dpo"
    assert card["training"]["feedback"]["n_documents"] == 8
    parent, _ = KVEnsemble.from_pretrained(world.parent)
    new, _ = KVEnsemble.from_pretrained(a)
    assert not torch.equal(parent.fusion_raw, new.fusion_raw) or any(
        not torch.equal(x, y) for x, y in zip(parent.parameters(), new.parameters()))


def test_document_batches_group_every_pair_of_a_document() -> None:
    import random

    from training.dpo_trainer import document_batches

    docs_of = [0, 0, 1, 2, 2, 2, 1, 3]
    plain = document_batches(docs_of, 2)
    assert plain == [[0, 1, 2, 6], [3, 4, 5, 7]]
    shuffled = document_batches(docs_of, 2, random.Random(0))
    assert sorted(i for b in shuffled for i in b) == list(range(8))
    for b in shuffled:  # a document's pairs are never split across steps
        assert len({docs_of[i] for i in b}) <= 2
        assert all(docs_of.count(docs_of[i]) == sum(docs_of[j] == docs_of[i] for j in b)
                   for i in b)
