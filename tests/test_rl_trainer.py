"""RL trainer (RLOO / GRPO / PPO, exact KL to the start model) on a tiny model and mock receipts.

The parent is a tiny ensemble fitted for a few epochs on templated mock receipts (so its span
categoricals put some mass on the right values); the feedback store is a real SQLite file
filled through ``ReviewService`` by the demo's simulated operator. ``_mock_*``/``_parent``/
``_fill_store``/``expected_oracle_reward`` are shared with ``test_dpo_trainer``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from extractor.document import RECEIPT_SCHEMA, Document, Word
from extractor.model.ensemble import KVEnsemble
from extractor.model.policy import BatchedPolicy, FieldOutcomes
from kvloop.demo import simulated_choice
from training.dpo_trainer import SpanIndex
from training.losses import group_advantages
from training.rewards import OracleReward, load_reward
from training.rl_config import RLConfig
from training.rl_trainer import RLTrainer, pool_counts, rollout_advantages

SHOPS = [("KEDAI", "MAJU"), ("TOKO", "BARU"), ("GERAI", "ANEKA"), ("PASAR", "RIA"),
         ("KAFE", "INDAH"), ("BENGKEL", "JAYA"), ("KILANG", "EMAS"), ("DOBI", "CEPAT")]


def _mock_receipt(i: int) -> Document:
    """A 13-15 word receipt with gold; every third one prints no date (gold absent)."""
    shop = SHOPS[i % len(SHOPS)]
    total = f"{10 + 3 * i}.{(17 * i) % 100:02d}"
    date = f"{1 + i % 28:02d}/0{1 + i % 9}/2018" if i % 3 else None
    lines = [[shop[0], shop[1], "SDN", "BHD"], ["NO", str(i + 1), "JALAN", "BESAR"]]
    lines += [["DATE", date]] if date else []
    lines += [["TOTAL", "RM", total], ["THANK", "YOU"]]
    words = []
    for ln, toks in enumerate(lines):
        x = 10
        for t in toks:
            words.append(Word(t, (x, 10 + 20 * ln, x + 8 * len(t), 24 + 20 * ln), line=ln))
            x += 8 * len(t) + 6
    gold = {"company": f"{shop[0]} {shop[1]} SDN BHD", "address": f"NO {i + 1} JALAN BESAR",
            "date": date, "total": total}
    return Document(f"r{i:03d}", words, 300, 20 * len(lines) + 20, gold=gold)


def _mock_receipts(ids: range) -> list[Document]:
    return [_mock_receipt(i) for i in ids]


def _parent(out: Path, epochs: int = 3) -> Path:
    """A tiny ensemble fitted briefly on mock receipts (right values get some mass)."""
    from training.supervised_config import SupervisedConfig
    from training.supervised_trainer import SupervisedTrainer

    cfg = SupervisedConfig(out=str(out.parent / f".{out.name}-fit"), arch="tiny",
                           max_span_len=4, epochs=epochs, batch_size=4, seed=0, threads=2,
                           lr=5e-3, head_lr=5e-3, patience=100, ocr_mix=0.0, warmup_ratio=0.0)
    tr = SupervisedTrainer(cfg, train_docs=_mock_receipts(range(100, 108)), dev_docs=[],
                           calib_docs=[])
    tr.fit()
    tr.model.save_pretrained(out, tr.model.card())
    return out


def _fill_store(url: str, parent: Path, docs: list[Document], reject: bool = False,
                ) -> tuple[str, str] | None:
    """Review every document as the demo's operator does; with ``reject``, the first field
    of the first document whose shown value is wrong is rejected instead (reject-only)."""
    from extractor.model.predictor import load_predictor
    from feedback_ui.routing import RoutingConfig
    from feedback_ui.service import FieldChoice, ReviewService
    from feedback_ui.store import FeedbackStore

    pred = load_predictor(parent)
    store = FeedbackStore(url)
    rejected: tuple[str, str] | None = None
    try:
        service = ReviewService(store, pred.schema, dataset="test",
                                routing=RoutingConfig(audit_rate=1.0))
        service.add(docs, pred.predict(docs))
        gold = {d.id: d.gold or {} for d in docs}
        done: set[str] = set()
        while (task := service.next_document("ann", exclude=done)) is not None:
            g = gold[task.doc_id]
            choices = {fv.name: simulated_choice(fv, g.get(fv.name)) for fv in task.fields}
            if reject and rejected is None:
                for fv in task.fields:
                    if fv.value is not None and choices[fv.name].action != "accept":
                        choices[fv.name] = FieldChoice("reject")
                        rejected = (task.doc_id, fv.name)
                        break
            service.save_correction(task, choices, "ann")
            done.add(task.doc_id)
        assert done == {d.id for d in docs}
    finally:
        store.close()
    return rejected


def expected_oracle_reward(model: KVEnsemble, docs: list[Document]) -> float:
    """Exact mean over (document, field) of P(the gold value): the oracle's expected reward."""
    schema, index = model.schema, SpanIndex(model.max_span_len)
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i, d in enumerate(docs):
            for f in schema.field_names:
                spans = index.spans(i, d, schema[f], (d.gold or {}).get(f), ())
                if spans:
                    lp = model.log_probs(d, f, [list(s) for s in spans])
                    total += float(torch.logsumexp(lp, 0).exp())
                n += 1
    return total / n


def _tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _curves(model_dir: Path) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(x) for x in (model_dir / "curves.jsonl").read_text().splitlines()]
    return [r for r in rows if "step" in r], [r for r in rows if "epoch_end" in r]


@dataclass
class World:
    root: Path
    parent: Path
    url: str
    docs: list[Document]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("rl")
    parent = _parent(root / "parent")
    url = f"sqlite:///{root / 'feedback.db'}"
    docs = _mock_receipts(range(8))
    _fill_store(url, parent, docs)
    return World(root, parent, url, docs)


def _cfg(world: World, out: str, **kw) -> RLConfig:
    base = {"init": str(world.parent), "store": world.url, "out": str(world.root / out),
            "reward": "oracle", "algorithm": "rloo", "samples_per_field": 8, "batch_size": 4,
            "epochs": 1, "lr": 2e-3, "head_lr": 2e-3, "kl_coef": 0.01, "seed": 0,
            "threads": 2, "warmup_ratio": 0.0, "weight_decay": 0.0}
    return RLConfig(**{**base, **kw})


# -- config and pure helpers -----------------------------------------------------------------

def test_config_validates() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        RLConfig(algorithm="a2c")
    with pytest.raises(ValueError, match="samples_per_field >= 2"):
        RLConfig(algorithm="grpo", samples_per_field=1)
    RLConfig(algorithm="ppo", samples_per_field=1)
    with pytest.raises(ValueError, match="pool_share"):
        RLConfig(pool_share=1.5)
    with pytest.raises(ValueError, match="kl_stop"):
        RLConfig(kl_stop=0.0)
    with pytest.raises(ValueError, match="reward_transform"):
        RLConfig(reward_transform="tanh")
    assert RLConfig(algorithm="ppo", ppo_epochs=3).updates_per_batch == 3
    assert RLConfig(algorithm="grpo", ppo_epochs=3).updates_per_batch == 1
    # the dev fields are FeedbackConfig's, named as in every feedback trainer
    for bad, match in (({"dev_split": "nope"}, "dev_split"), ({"dev_ocr": "x"}, "dev_ocr"),
                       ({"max_dev_docs": 0}, "max_dev_docs"),
                       ({"max_pool_docs": 0}, "max_pool_docs")):
        with pytest.raises(ValueError, match=match):
            RLConfig(**bad)
    from training.cli import ConfigError, parse_config
    cfg = parse_config(RLConfig, ["--max-dev-docs", "3", "--max-pool-docs", "4"])
    assert (cfg.max_dev_docs, cfg.max_pool_docs) == (3, 4)
    with pytest.raises(ConfigError, match="dev-max-docs"):
        parse_config(RLConfig, ["--dev-max-docs", "3"])  # the old name is gone


def test_pool_counts_spread_the_share_over_batches() -> None:
    assert pool_counts(4, 4, 0.5) == [2, 2, 2, 2]
    counts = pool_counts(10, 4, 0.3)
    assert sum(counts) == 12 and set(counts) <= {1, 2}
    assert pool_counts(3, 8, 0.0) == [0, 0, 0] and pool_counts(2, 5, 1.0) == [5, 5]


def test_rollout_advantages() -> None:
    r = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 2.0, 0.0, 1.0]])
    assert torch.equal(rollout_advantages(r, "rloo"), group_advantages(r, "rloo"))
    assert torch.equal(rollout_advantages(r, "grpo"), group_advantages(r, "grpo"))
    a = rollout_advantages(r, "ppo")
    assert abs(float(a.mean())) < 1e-6 and abs(float(a.std()) - 1.0) < 1e-4
    single = rollout_advantages(torch.tensor([[1.0], [0.0], [0.0]]), "ppo")  # K = 1: whitened
    assert single[0, 0] > 0 > single[1, 0]


def test_oracle_reward_matches_values_by_lenient_key() -> None:
    doc = _mock_receipt(1)
    words = [w.text for w in doc.words]
    total_at = words.index(doc.gold["total"])  # type: ignore[index]
    q = [FieldOutcomes(0, "total", [[total_at], [total_at - 2, total_at - 1, total_at],
                                    [total_at - 1], []]),
         FieldOutcomes(0, "date", [[], [0]])]
    oracle = load_reward("oracle", RECEIPT_SCHEMA)
    assert isinstance(oracle, OracleReward)
    total, date = oracle.score([doc], q)
    assert date.tolist() == [0.0, 0.0]  # receipt 1 prints a date
    # "TOTAL RM 12.17" denotes the amount inside it; "RM" alone is wrong; absent is wrong
    assert total.tolist() == [1.0, 1.0, 0.0, 0.0]
    no_date = _mock_receipt(3)  # every third receipt prints no date: absent is right
    assert oracle.score([no_date], [q[1]])[0].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="no gold"):
        oracle.score([Document("x", doc.words, 1, 1)], q)
    with pytest.raises(ValueError, match="reward"):
        load_reward("", RECEIPT_SCHEMA)


# -- training ----------------------------------------------------------------------------------

def test_rloo_raises_the_reward_and_keeps_kl_under_its_bound(world: World) -> None:
    cfg = _cfg(world, "rloo", epochs=3, kl_stop=2.0)
    tr = RLTrainer(cfg)
    before = expected_oracle_reward(tr.model, world.docs)
    out = tr.train().out
    after = expected_oracle_reward(tr.model, world.docs)
    steps, epochs = _curves(out)
    assert after > before + 0.05, (before, after)
    rewards = [s["reward"] for s in steps]
    assert sum(rewards[-2:]) > sum(rewards[:2])  # sampled reward rises too
    assert all(0 <= s["kl"] <= cfg.kl_stop for s in steps) and steps[-1]["kl"] > 0
    assert not any(s["kl_stopped"] for s in steps) and len(epochs) == 3
    assert {"reward", "kl", "entropy", "adv_mean", "adv_std", "kl_coef", "pool_share"} <= set(
        steps[0])
    assert steps[0]["kl"] == 0.0  # the first step is the start model


def test_a_tiny_kl_stop_stops_and_keeps_the_last_weights_within_it(world: World) -> None:
    tr = RLTrainer(_cfg(world, "stopped", epochs=2, kl_stop=1e-9))
    out = tr.train().out
    steps, epochs = _curves(out)
    assert len(steps) == 2 and steps[0]["kl_stopped"] == 0.0 and steps[1]["kl_stopped"] == 1.0
    assert steps[1]["kl"] > 1e-9 and len(epochs) == 1 and epochs[0]["kl_stopped"] is True
    assert tr.cfg.max_steps is None  # the configured cap is restored (and recorded)
    parent, _ = KVEnsemble.from_pretrained(world.parent)
    new, card = KVEnsemble.from_pretrained(out)
    # step 1 (KL 0) updated, step 2 measured that update past the bound: back to the start
    for (k, a), b in zip(parent.state_dict().items(), new.state_dict().values()):
        assert torch.equal(a, b), k
    assert card.training.config["max_steps"] is None


@pytest.mark.parametrize("algorithm", ["rloo", "grpo", "ppo"])
def test_every_algorithm_runs_and_changes_the_weights(world: World, algorithm: str) -> None:
    cfg = _cfg(world, f"algo-{algorithm}", algorithm=algorithm, ppo_epochs=2, max_steps=4,
               epochs=2, adaptive_kl=True, kl_target=0.01, kl_horizon=100)
    tr = RLTrainer(cfg)
    assert tr.steps_per_epoch() == 2 * (2 if algorithm == "ppo" else 1)
    start = {k: v.clone() for k, v in tr.model.state_dict().items()}
    out = tr.train().out
    steps, _ = _curves(out)
    assert len(steps) == 4
    assert any(not torch.equal(start[k], v) for k, v in tr.model.state_dict().items())
    coefs = [s["kl_coef"] for s in steps]
    assert coefs[0] == cfg.kl_coef and coefs[1] < coefs[0]  # KL 0 < target: coefficient falls
    if algorithm == "ppo":
        assert "clip_frac" in steps[0] and steps[0]["clip_frac"] == 0.0  # ratio 1 at first
        assert steps[0]["reward"] == steps[1]["reward"]  # two updates on one batch of samples
        assert steps[1]["approx_kl"] > 0
    else:
        assert "clip_frac" not in steps[0] and steps[0]["reward"] != steps[1]["reward"]


def test_behaviour_log_probs_are_those_of_batched_policy_sample(world: World) -> None:
    tr = RLTrainer(_cfg(world, "behaviour"))
    batch = tr.epoch_batches(1, random.Random(0))[0]
    docs = [tr.docs[i] for i in batch.docs]
    fields = [(p, f) for p, i in enumerate(batch.docs) for f in tr.fields_of[i]]
    with torch.no_grad():
        dists = tr.policy.distributions(docs, fields)
        tr.generator.manual_seed(5)
        ro = tr._sample(batch, docs, fields, dists)
    expect = BatchedPolicy(tr.model).sample(docs, fields, 8, torch.Generator().manual_seed(5))
    assert [s.outcomes for s in expect] == ro.outcomes
    assert torch.allclose(torch.stack([s.log_probs for s in expect]), ro.old_logp, atol=1e-6)


def test_pool_documents_are_sampled_at_their_share(world: World) -> None:
    pool = _mock_receipts(range(20, 30)) + world.docs[:2]  # reviewed ones are not pool
    tr = RLTrainer(_cfg(world, "pool", pool_share=0.5, max_steps=2), pool_docs=pool)
    assert len(tr.docs) == 8 + 10 and tr.n_reviewed == 8
    assert all(d.gold is not None for d in tr.docs)  # the oracle ablation reads gold
    batches = tr.epoch_batches(1, random.Random(0))
    assert len(batches) == tr.n_rollouts() == 4  # 8 reviewed, 2 per batch of 4
    for b in batches:
        assert sum(i >= tr.n_reviewed for i in b.docs) == 2 and len(set(b.docs)) == 4
    assert {i for b in batches for i in b.docs if i < 8} == set(range(8))
    assert tr.fields_of[-1] == list(tr.model.schema.field_names)
    steps, _ = _curves(tr.train().out)
    assert [s["pool_share"] for s in steps] == [0.5, 0.5]
    # with a learnt reward, no training page keeps its gold
    never = RLTrainer(_cfg(world, "pool-blind", pool_share=0.25), pool_docs=pool,
                      reward=_AbsentReward())
    assert all(d.gold is None for d in never.docs)
    with pytest.raises(ValueError, match="pool"):
        RLTrainer(_cfg(world, "pool-missing", pool_share=0.5))


@pytest.mark.parametrize("transform", ["sigmoid", "logit"])
def test_a_saved_reward_model_is_the_reward(world: World, transform: str) -> None:
    reward_mod = pytest.importorskip("extractor.model.reward")
    rm_dir = world.root / f"rm-{transform}"
    if not rm_dir.exists():
        reward_mod.build_reward_model("tiny", seed=0).save_pretrained(rm_dir)
    cfg = _cfg(world, f"with-rm-{transform}", reward=str(rm_dir), reward_transform=transform,
               max_steps=2)
    tr = RLTrainer(cfg)
    assert all(d.gold is None for d in tr.docs)  # a learnt reward never sees gold
    docs = tr.docs[:2]
    q = [FieldOutcomes(0, "total", [[0], [1, 2], []]), FieldOutcomes(1, "date", [[3]])]
    logits = [x.detach() for x in reward_mod.RewardModel.from_pretrained(rm_dir)[0].score(docs, q)]
    got = tr.reward.score(docs, q)
    expect = [x.sigmoid() for x in logits] if transform == "sigmoid" else logits
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, expect))
    steps, _ = _curves(tr.train().out)
    assert len(steps) == 2
    if transform == "sigmoid":
        assert all(0 < s["reward"] < 1 for s in steps)


class _AbsentReward:
    """A reward that prefers "not present" for every field: wrong wherever gold has a value."""

    def score(self, docs, queries):
        return [torch.tensor([1.0 if not o else 0.0 for o in q.outcomes]) for q in queries]


def test_reward_hacking_is_flagged(world: World, caplog: pytest.LogCaptureFixture) -> None:
    dev = _mock_receipts(range(40, 46))
    cfg = _cfg(world, "hacked", epochs=2, lr=5e-3, head_lr=5e-3, kl_coef=0.0)
    tr = RLTrainer(cfg, reward=_AbsentReward(), dev_docs=dev)
    with caplog.at_level(logging.WARNING, logger="training.rl_trainer"):
        out = tr.train().out
    _, epochs = _curves(out)
    assert epochs[0]["reward"] > tr._start_reward  # type: ignore[operator]
    assert any(e["reward_hacking"] for e in epochs)
    assert "reward hacking" in caplog.text
    honest = RLTrainer(_cfg(world, "honest", epochs=1), dev_docs=dev).train().out
    assert not _curves(honest)[1][0]["reward_hacking"]


def test_new_version_parent_untouched_and_seeded(world: World) -> None:
    before = _tree_hash(world.parent)
    a = RLTrainer(_cfg(world, "seed-a", max_steps=2)).train().out
    b = RLTrainer(_cfg(world, "seed-b", max_steps=2)).train().out
    assert _tree_hash(world.parent) == before
    wa, wb = _tree_hash(a), _tree_hash(b)
    for part in ("bert/model.safetensors", "layoutlm/model.safetensors"):
        assert wa[part] == wb[part] != before[part]
    card = json.loads((a / "kvloop.json").read_text())
    assert card["training"]["trainer"] == "rl" and card["version"] != card["training"][
        "parent_version"]
    with pytest.raises(FileExistsError):
        RLTrainer(_cfg(world, "seed-a"))


def test_judged_outcomes_enter_every_group_at_their_probability(world: World) -> None:
    tr = RLTrainer(_cfg(world, "judged", judged_outcomes=True, samples_per_field=4))
    assert tr.judged  # the store's reviews name kept values
    batch = tr.epoch_batches(1, random.Random(0))[0]
    docs = [tr.docs[i] for i in batch.docs]
    fields = [(p, f) for p, i in enumerate(batch.docs) for f in tr.fields_of[i]]
    with torch.no_grad():
        dists = tr.policy.distributions(docs, fields)
        ro = tr._sample(batch, docs, fields, dists)
    assert ro.weights is not None and ro.weights.shape == ro.rewards.shape
    width = ro.weights.shape[1] - 4
    for g, (p, f) in enumerate(fields):
        judged = tr.judged.get((batch.docs[p], f), [])
        assert ro.outcomes[g][:len(judged)] == judged
        assert all(o not in judged for o in ro.outcomes[g][width:])  # drawn from the rest
        p_judged = ro.old_logp[g, :len(judged)].exp()
        assert torch.allclose(ro.weights[g, :len(judged)], p_judged, atol=1e-6)
        assert float(ro.weights[g].sum()) == pytest.approx(1.0, abs=1e-5)  # a distribution
    out = tr.train().out  # and it trains end to end, the oracle reward rising or not
    steps, _ = _curves(out)
    assert steps and all(math.isfinite(s["pg_loss"]) for s in steps)


def test_judged_outcomes_are_an_rloo_estimator() -> None:
    with pytest.raises(ValueError, match="judged_outcomes"):
        RLConfig(algorithm="ppo", judged_outcomes=True)
