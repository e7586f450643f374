"""Reward-model training: Bradley-Terry on operator preferences plus a pointwise term.

Data. Every reviewed field of the feedback store (``training.feedback_data``) and every field
of a gold page becomes a :class:`RewardItem`: the outcomes to score (word spans of the page,
``()`` = absent) and, over them,

* pairs (chosen, rejected): the operator's final outcome over each placed value they saw and
  did not keep (explicit rejects and passed-over candidates alike); on gold pages, the gold
  outcome (aligned span, or absent) over each wrong value of the parent extractor's k-best,
  and over "absent" when the parent answered absent (its k-best is computed once);
* pointwise labels: 1 on an accepted value (on gold pages: when the parent's top was right,
  what an operator's accept records); 0 on the explicitly rejected values of a reject-only
  field (its right value is unknown, so it makes no pair: this is how it reaches the model),
  and on every placed value shown for a field whose typed right value no words spell.

Loss (``compute_loss``, the pure functions of ``training.losses``)::

    L = pair_weight * BT(r_chosen, r_rejected, margin) + pointwise_weight * BCE(r, y)

BT: Bradley & Terry 1952, Ouyang et al. 2022 Eq. 1 (margin: Touvron et al. 2023 Eq. 2). A
step takes ``batch_size`` documents; one encoder forward scores all their fields' outcomes.

Evaluation after each epoch: pairwise accuracy (and BT loss) on the training pairs and on the
held-out ones (a seeded ``heldout_share`` of the documents, so no page is on both sides), and
with ``dev_data`` the dev lenient F1 of the parent's k-best reranked by the reward model
(best-of-k) against the parent's own ranking. The kept epoch is the best reranked dev F1,
else the lowest held-out pair loss, else the lowest training loss.

Why ``Trainer`` and not ``FeedbackTrainer``: that one loads, trains and writes an *extractor*
(ensemble weights, lexicon, refitted decisions, a ``kv.ensemble.v1`` version over the members'
weights). The reward model is another artefact with its own card, so this trainer keeps the
same promises with its own save: a new folder written beside ``out`` and renamed into place
(never over an existing one; the parent is only read), seeded, progress and curves from the
shared loop, lineage (parent extractor version, feedback reference, config) in the card.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from eval.field_scores import score_results
from extractor.align import align_document
from extractor.document import Document, ExtractionResult, Schema
from extractor.model.card import FeedbackRef, model_version
from extractor.model.ensemble import KVEnsemble
from extractor.model.policy import FieldOutcomes
from extractor.model.predictor import KVPredictor, extractor_confidence, load_predictor
from extractor.model.reward import (
    RewardCard,
    RewardModel,
    build_reward_model,
    is_span,
    reward_version,
)
from extractor.normalize import lenient_key
from training.data import load_split
from training.feedback_data import FeedbackSet
from training.feedback_trainer import check_run, feedback_of, load_dev_docs
from training.loop import LoopResult, Trainer, seed_everything
from training.losses import bradley_terry_loss, pointwise_reward_loss
from training.reward_config import RewardConfig

log = logging.getLogger(__name__)

Outcome = tuple[int, ...]  # word indices into doc.words; () is "absent"


@dataclass(frozen=True)
class RewardItem:
    """What one (document, field) teaches: outcomes, pairs and labels over them."""

    doc: int
    field: str
    outcomes: tuple[Outcome, ...]
    pairs: tuple[tuple[int, int], ...] = ()  # (chosen, rejected) positions in ``outcomes``
    points: tuple[tuple[int, float], ...] = ()  # (position, label 1 right / 0 wrong)


def make_item(doc: int, field: str, chosen: Outcome | None, rejected: Iterable[Outcome],
              positives: Iterable[Outcome] = (), negatives: Iterable[Outcome] = (),
              ) -> RewardItem | None:
    """An item with one pair per distinct rejected outcome (none equal to ``chosen``), label 1
    on ``positives`` and 0 on ``negatives``; ``None`` when it teaches nothing."""
    outcomes: list[Outcome] = []
    where: dict[Outcome, int] = {}

    def at(o: Outcome) -> int:
        if o not in where:
            where[o] = len(outcomes)
            outcomes.append(o)
        return where[o]

    pairs = ([(at(chosen), at(r)) for r in dict.fromkeys(rejected) if r != chosen]
             if chosen is not None else [])
    points = ([(at(o), 1.0) for o in dict.fromkeys(positives)]
              + [(at(o), 0.0) for o in dict.fromkeys(negatives) if o != chosen])
    if not pairs and not points:
        return None
    return RewardItem(doc, field, tuple(outcomes), tuple(pairs), tuple(points))


def feedback_items(fs: FeedbackSet) -> list[RewardItem]:
    """The items of a store's feedback (see the module docstring for the rules)."""
    out = []
    for ex in fs.examples:
        placed = [r for r in ex.rejected if r.span]
        if ex.target is not None:
            item = make_item(ex.doc, ex.field, ex.target, [r.span for r in placed],
                             positives=[ex.target] if ex.action == "accept" else [])
        elif not ex.has_final:  # reject-only: only what was explicitly rejected is known wrong
            item = make_item(ex.doc, ex.field, None, [],
                             negatives=[r.span for r in placed if r.explicit])
        else:  # a typed right value the words cannot spell: every shown value is wrong
            item = make_item(ex.doc, ex.field, None, [], negatives=[r.span for r in placed])
        if item is not None:
            out.append(item)
    return out


def gold_items(docs: Sequence[Document], results: Sequence[ExtractionResult], schema: Schema,
               offset: int = 0) -> list[RewardItem]:
    """Gold outcome over the wrong values of ``results`` (the parent's k-best on ``docs``);
    item ``doc`` indices start at ``offset``. Gold values that do not align are skipped."""
    out = []
    for i, (doc, res) in enumerate(zip(docs, results)):
        spans = align_document(doc, schema).spans
        for spec in schema.fields:
            value = (doc.gold or {}).get(spec.name)
            key = lenient_key(value) if value is not None else ""
            if key and spec.name not in spans:
                continue  # no words spell the gold value: no outcome to prefer
            chosen: Outcome = tuple(spans[spec.name]) if key else ()
            fr = res.fields.get(spec.name)
            cands = fr.candidates if fr else []
            wrong = [tuple(c.word_indices) for c in cands
                     if lenient_key(c.value) != key and is_span(c.word_indices, len(doc.words))]
            if key and not cands:
                wrong.append(())  # the parent said absent
            top_right = (lenient_key(cands[0].value) == key) if cands else not key
            item = make_item(offset + i, spec.name, chosen, wrong,
                             positives=[chosen] if top_right else [])
            if item is not None:
                out.append(item)
    return out


def gold_ref(docs: Sequence[Document], schema: Schema, source: str,
             filters: dict[str, Any]) -> FeedbackRef:
    ids = [f"{d.id}/{f}/gold/{(d.gold or {}).get(f)}" for d in docs for f in schema.field_names]
    return FeedbackRef.of(ids, [d.id for d in docs], source, filters)


def item_logits(items: Sequence[RewardItem], scores: Sequence[torch.Tensor],
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(r_chosen [P], r_rejected [P], r_point [Q], label [Q])`` gathered from per-item
    score tensors (``scores[i]`` [K_i] over ``items[i].outcomes``)."""
    flat = torch.cat(list(scores)) if scores else torch.zeros(0)  # [sum K_i]
    c, r, p, y = [], [], [], []
    base = 0
    for it, s in zip(items, scores):
        c += [base + a for a, _ in it.pairs]
        r += [base + b for _, b in it.pairs]
        p += [base + j for j, _ in it.points]
        y += [lab for _, lab in it.points]
        base += s.shape[0]

    def pick(ix: list[int]) -> torch.Tensor:
        return flat[torch.tensor(ix, dtype=torch.long, device=flat.device)]

    return pick(c), pick(r), pick(p), torch.tensor(y, dtype=flat.dtype, device=flat.device)


def pair_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> float:
    """Share of pairs the model orders right (ties count half)."""
    if r_chosen.numel() == 0:
        return math.nan
    diff = r_chosen - r_rejected  # [P]
    return float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())


class RewardTrainer(Trainer):
    """Parent extractor + feedback (and/or gold pages) in, a new reward model out."""

    name = "reward"
    cfg: RewardConfig
    model: RewardModel  # type: ignore[assignment]

    def __init__(self, cfg: RewardConfig, feedback: FeedbackSet | None = None,
                 gold_docs: Sequence[Document] | None = None,
                 dev_docs: Sequence[Document] | None = None) -> None:
        check_run(cfg, feedback is not None or bool(cfg.store) or gold_docs is not None
                  or bool(cfg.gold_data),
                  "store or gold_data: the reward model needs feedback or gold pages")
        self.cfg, self.out = cfg, Path(cfg.out)
        self.final_out = str(self.out)
        seed_everything(cfg.seed, cfg.threads)
        ensemble, _ = KVEnsemble.from_pretrained(cfg.init)
        self.parent_version = model_version(cfg.init)
        self.schema = ensemble.schema
        self.model = (build_reward_model(cfg.arch, self.schema, cfg.seed, cfg.field_dim,
                                         cfg.head_hidden) if cfg.arch else
                      RewardModel.from_ensemble(ensemble, cfg.seed, cfg.field_dim,
                                                cfg.head_hidden))
        del ensemble
        self._parent: KVPredictor | None = None
        if feedback is None and cfg.store:
            feedback = self._read_store()
        self.documents: list[Document] = list(feedback.documents) if feedback else []
        self.items = feedback_items(feedback) if feedback else []
        golds = (list(gold_docs) if gold_docs is not None else
                 load_split(cfg.gold_data, cfg.gold_split, cfg.gold_ocr, cfg.max_gold_docs)
                 if cfg.gold_data else [])
        if golds:
            results = self.parent.predict(golds, k=cfg.k)
            self.items += gold_items(golds, results, self.schema, offset=len(self.documents))
            self.documents += golds
        self.ref = (feedback.ref if feedback else
                    gold_ref(golds, self.schema, cfg.gold_data or "gold docs",
                             {"split": cfg.gold_split, "ocr": cfg.gold_ocr}))
        if not self.items:
            raise ValueError("no preference pairs or labelled values in the feedback or gold "
                             "pages: nothing to train a reward model on")
        self.by_doc: dict[int, list[RewardItem]] = {}
        for it in self.items:
            self.by_doc.setdefault(it.doc, []).append(it)
        self.train_docs, self.heldout_docs = self._split(sorted(self.by_doc))
        self.dev_docs = load_dev_docs(cfg, dev_docs, self.documents, self.name)
        self._dev: tuple[list[ExtractionResult], float] | None = None
        log.info("%s: %d items from %d documents (%d pairs, %d pointwise labels); %d documents "
                 "held out", self.name, len(self.items), len(self.by_doc),
                 sum(len(i.pairs) for i in self.items), sum(len(i.points) for i in self.items),
                 len(self.heldout_docs))

    def _read_store(self) -> FeedbackSet:
        return feedback_of(self.cfg, self.schema.field_names)

    def _split(self, docs: list[int]) -> tuple[list[int], list[int]]:
        """(training, held-out) document indices: a seeded share, at least one to train on."""
        order = list(docs)
        random.Random(self.cfg.seed).shuffle(order)
        n_held = min(round(self.cfg.heldout_share * len(order)), len(order) - 1)
        return sorted(order[n_held:]), sorted(order[:n_held])

    @property
    def parent(self) -> KVPredictor:
        """The parent extractor's predictor (loaded once, only when needed)."""
        if self._parent is None:
            self._parent = load_predictor(self.cfg.init, self.cfg.device)
        return self._parent

    # -- the loop's hooks ----------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        return -(-len(self.train_docs) // self.cfg.batch_size)

    def epoch_batches(self, epoch: int, rng: random.Random) -> list[list[int]]:
        order = list(self.train_docs)
        rng.shuffle(order)
        b = self.cfg.batch_size
        return [order[i:i + b] for i in range(0, len(order), b)]

    def score_items(self, items: Sequence[RewardItem], dropout: bool = False,
                    ) -> list[torch.Tensor]:
        """Reward logits [K_i] of each item's outcomes; one encoder pass per document."""
        needed = sorted({it.doc for it in items})
        local = {d: j for j, d in enumerate(needed)}
        queries = [FieldOutcomes(local[it.doc], it.field, it.outcomes) for it in items]
        return self.model.score([self.documents[d] for d in needed], queries, dropout=dropout)

    def compute_loss(self, batch: Sequence[int]) -> tuple[torch.Tensor, dict[str, float]]:
        items = [it for d in batch for it in self.by_doc[d]]
        r_c, r_r, r_p, y = item_logits(items, self.score_items(items, self.cfg.dropout))
        cfg = self.cfg
        loss = r_c.sum() * 0.0  # keeps a graph when a term is empty
        parts = {"bt_loss": 0.0, "bce_loss": 0.0, "pairs_per_step": float(r_c.numel()),
                 "points_per_step": float(r_p.numel())}  # a term is 0 in a batch without data
        if r_c.numel():
            bt = bradley_terry_loss(r_c, r_r, cfg.margin or None)
            loss = loss + cfg.pair_weight * bt
            parts["bt_loss"] = float(bt.detach())
        if r_p.numel():
            bce = pointwise_reward_loss(r_p, y)
            loss = loss + cfg.pointwise_weight * bce
            parts["bce_loss"] = float(bce.detach())
        return loss, parts

    # -- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def pair_metrics(self, docs: Sequence[int]) -> dict[str, float]:
        """Pairwise accuracy, BT loss and pair count over the items of ``docs`` (eval mode)."""
        chosen, rejected = [], []
        b = self.cfg.batch_size
        for i in range(0, len(docs), b):
            items = [it for d in docs[i:i + b] for it in self.by_doc[d]]
            r_c, r_r, _, _ = item_logits(items, self.score_items(items))
            chosen.append(r_c)
            rejected.append(r_r)
        r_c, r_r = torch.cat(chosen), torch.cat(rejected)
        if not r_c.numel():
            return {"pairs": 0}
        return {"pair_acc": pair_accuracy(r_c, r_r),
                "pair_loss": float(bradley_terry_loss(r_c, r_r)), "pairs": int(r_c.numel())}

    def dev_scores(self) -> dict[str, float]:
        """Dev lenient F1 of the parent's k-best reranked, and of the parent's own ranking."""
        if self._dev is None:
            results = self.parent.predict(self.dev_docs, k=self.cfg.k)
            golds = [d.gold or {} for d in self.dev_docs]
            f1 = score_results(golds, results, k_max=self.cfg.k).summary()["lenient"]["f1"]
            self._dev = (results, f1)
        results, parent_f1 = self._dev
        reranked = self.model.rerank(results, self.dev_docs, self.cfg.k,
                                     extractor_confidence(self.parent))
        golds = [d.gold or {} for d in self.dev_docs]
        f1 = score_results(golds, reranked, k_max=self.cfg.k).summary()["lenient"]["f1"]
        return {"dev_f1_rerank": f1, "dev_f1_parent": parent_f1}

    def evaluate(self, epoch: int) -> dict[str, Any]:
        """End-of-epoch pairwise accuracy / BT loss / count on the training pairs
        (``train_pair_*``) and the held-out ones (``heldout_pair_*``), and dev rerank F1."""
        row: dict[str, Any] = {f"train_{k}": v
                               for k, v in self.pair_metrics(self.train_docs).items()}
        if self.heldout_docs:
            row.update({f"heldout_{k}": v
                        for k, v in self.pair_metrics(self.heldout_docs).items()})
        if self.dev_docs:
            row.update(self.dev_scores())
        return row

    def selection_score(self, row: dict[str, Any]) -> float:
        if "dev_f1_rerank" in row:
            return row["dev_f1_rerank"]
        if "heldout_pair_loss" in row:
            return -row["heldout_pair_loss"]
        return -row["train_loss"]

    # -- lineage and saving ----------------------------------------------------------------------
    def feedback_ref(self) -> FeedbackRef:
        return self.ref

    def checkpoint_card(self, epoch: int) -> RewardCard:
        card = self.model.card()
        card.training, card.epoch = self.record(), epoch
        return card

    def save_version(self, work: Path, result: LoopResult) -> RewardCard:
        card = self.model.card()
        card.training = self.record(result)
        self.model.save_pretrained(work, card)
        card.version = reward_version(work)
        card.save(work)
        return card

    def describe(self) -> dict[str, Any]:
        return {"trainer": self.name, "parent": self.parent_version,
                "documents": len(self.by_doc), "items": len(self.items),
                "heldout_documents": len(self.heldout_docs)}
