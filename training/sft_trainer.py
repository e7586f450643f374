"""Supervised fine-tuning (SFT) of the ensemble on the operators' corrections.

Each reviewed document becomes a training page labelled from the operators' final values, the
way base training labels gold pages (``B-``/``I-`` on the value's words, ``O`` elsewhere; the
loss is the cross-entropy of all three members, bert, layoutlm and fused). The value's words
are the ones the feedback recorded (``FieldExample.target``: the candidate the operator took,
or where the aligner placed a typed value), not a re-alignment of the value. A field whose
right value is unknown (a reject-only field, a typed value no words spell, a field the filter
left out) must not teach "absent", so every word outside the known spans may be ``O`` *or*
``B``/``I`` of each unknown field, and the loss is the partial-label cross-entropy
``-log sum_{l in allowed} p(l)`` (``training.sft_losses``). With every field known it is base
training's loss exactly. A document with no known field is no training page.

Options on top:

* **replay**: gold pages of ``replay_data`` (SROIE ``fit``: what the parent was fitted on),
  ``replay_ratio`` of them per feedback page each epoch, drawn with the seed, labelled by
  ``extractor.align.align_document`` (gold values it cannot align are unknown, not absent), so
  the model does not forget the pages nobody corrected;
* **unlikelihood** (``unlikelihood_weight`` > 0, "SFT plus negative feedback"): for each
  placed span of a value known to be wrong (rejected with ``reject``, or passed over for the
  value the operator settled on), ``-log(1 - p(span))`` under the field's
  span categorical (``extractor.model.policy.BatchedPolicy``; Welleck et al. 2019,
  ``training.losses.unlikelihood_loss``). A step then holds whole pages and scores their
  rejected spans from its own forward (dropout on, as the tagging loss; a second forward per
  rejected page made ``sft-ul`` cost 1.6x ``sft``, BENCHMARKS.md); rejected spans of documents
  with no page to tag are spread over the epoch's steps, each once, with a forward of their
  own.

The shared loop (``training.loop``) runs the schedule, ``max_steps``, clipping, curves
(``loss``, ``bert``, ``layoutlm``, ``fused``, ``unlikelihood``, ...) and keeps the epoch with
the best dev lenient F1 when ``dev_data`` is given (``FeedbackTrainer.dev_scores``, the base
trainer's evaluation), else the lowest train loss. ``FeedbackTrainer.train`` writes
the new version beside the parent and refits the decisions on ``calib_data``.

Not measured yet: the recipe (learning rate, epochs, replay ratio, unlikelihood weight) on
SROIE corrections; the defaults are starting points, not results.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from extractor.align import align_document, spans_to_tags
from extractor.document import Document, Schema
from extractor.model.decode import field_label_ids
from extractor.model.ensemble import KVEnsemble
from extractor.model.features import Window, collate
from extractor.model.policy import BatchedPolicy, FieldOutcomes, outcome_log_probs
from extractor.model.windows import merge_per_word
from training.data import epoch_batches, load_split
from training.feedback_data import FeedbackSet
from training.feedback_trainer import FeedbackTrainer
from training.losses import unlikelihood_loss
from training.sft_config import SFTConfig
from training.sft_losses import joint_partial_tagging_loss

log = logging.getLogger(__name__)


# -- labels ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PageLabels:
    """What one page says about its fields: known spans, and fields whose value is unknown.

    A schema field in neither is known to be absent (all its words ``O``).
    """

    spans: dict[str, tuple[int, ...]]
    unknown: frozenset[str] = frozenset()

    def informative(self, schema: Schema) -> bool:
        """Whether the page knows anything: some field's value or its absence."""
        return bool(self.spans) or bool(set(schema.field_names) - self.unknown)


def label_sets(n_words: int, schema: Schema, labels: PageLabels) -> torch.Tensor:
    """Allowed labels per word [n, L] (bool) for a partly labelled page.

    A word in a known span may only be its field's ``B``/``I`` tag (``spans_to_tags``: the
    first word ``B``, the rest ``I``; a word two known spans claim may be either tag). Every
    other word may be ``O`` or ``B-u`` of each unknown field ``u``, and ``I-u`` when the word
    before it is unclaimed too (an ``I`` after another field's word, or on the first word,
    would be no BIO sequence).
    """
    l2i = schema.label2id
    allowed = torch.zeros((n_words, len(l2i)), dtype=torch.bool)  # [n, L]
    claimed = torch.zeros(n_words, dtype=torch.bool)  # [n]
    for name, idx in labels.spans.items():
        tags = spans_to_tags(n_words, {name: list(idx)})
        for w in idx:
            allowed[w, l2i[tags[w]]] = True
            claimed[w] = True
    free = ~claimed  # [n]
    allowed[free, l2i["O"]] = True
    prev_free = torch.cat([torch.zeros(1, dtype=torch.bool), free[:-1]])  # [n]
    for name in sorted(labels.unknown):
        b_id, i_id = field_label_ids(schema, name)
        allowed[free, b_id] = True
        allowed[free & prev_free, i_id] = True
    return allowed


def feedback_labels(feedback: FeedbackSet, schema: Schema) -> dict[int, PageLabels]:
    """Per feedback document (index into ``feedback.documents``) with at least one known field:
    the targets' spans; fields without a target (``None``: reject-only, unspellable, not
    selected) are unknown; ``()`` targets ("not present") are known absent."""
    spans: dict[int, dict[str, tuple[int, ...]]] = {}
    known: dict[int, set[str]] = {}
    for e in feedback.targets():
        known.setdefault(e.doc, set()).add(e.field)
        if e.target:
            spans.setdefault(e.doc, {})[e.field] = tuple(e.target)
    names = frozenset(schema.field_names)
    return {doc: PageLabels(spans.get(doc, {}), names - fields)
            for doc, fields in sorted(known.items())}


def gold_labels(doc: Document, schema: Schema) -> PageLabels:
    """A gold page's labels (``align_document`` on its words): aligned values are spans; gold
    values it cannot align, and fields the gold does not mention, are unknown; ``None`` gold
    values are absent."""
    gold = doc.gold or {}
    al = align_document(doc, schema)
    unknown = set(al.unaligned) | {f for f in schema.field_names if f not in gold}
    return PageLabels({k: tuple(v) for k, v in al.spans.items()}, frozenset(unknown))


# -- windows ---------------------------------------------------------------------------------

@dataclass
class SFTWindow:
    """One model window and the allowed labels of its tokens."""

    window: Window
    allowed: torch.Tensor  # [T, L] bool, rows of ``window.input_ids``; empty rows unlabelled
    source: str  # "feedback" or "replay"
    page: int  # index into that source's pages


def page_windows(model: KVEnsemble, doc: Document, labels: PageLabels, page: int,
                 source: str) -> tuple[list[SFTWindow], list[int]]:
    """The windows of one page with each word's allowed labels on its first sub-token, and
    the position of each word's first sub-token in the page's token sequence."""
    words = label_sets(len(doc.words), model.schema, labels)  # [n, L]
    wins, first = model.windows([w.text for w in doc.words], doc.normalized_boxes(), doc=page)
    firsts = torch.tensor(first, dtype=torch.long)  # [n] token position of each word
    out = []
    for w in wins:
        a, b = w.span
        allowed = torch.zeros((len(w.input_ids), words.shape[1]), dtype=torch.bool)  # [T, L]
        inside = (firsts >= a) & (firsts < b)  # [n]
        allowed[firsts[inside] - a + 1] = words[inside]  # +1: [CLS]
        out.append(SFTWindow(w, allowed, source, page))
    return out, first


def collate_allowed(batch: Sequence[SFTWindow], length: int) -> torch.Tensor:
    """Allowed sets [B, T, L] padded with empty rows to ``length`` tokens."""
    n_labels = batch[0].allowed.shape[1]
    out = torch.zeros((len(batch), length, n_labels), dtype=torch.bool)
    for i, w in enumerate(batch):
        out[i, :w.allowed.shape[0]] = w.allowed
    return out


def rejected_outcomes(feedback: FeedbackSet, explicit_only: bool = False
                      ) -> list[list[FieldOutcomes]]:
    """Per document, the placed spans of values known to be wrong, per field.

    A value rejected with ``reject`` is wrong. A value passed over is wrong only when the
    operator settled on another one (``has_final``): next to a bare reject the other
    candidates were never judged, and one of them may be the right value. A span equal to the
    field's own target is left out (it cannot be right and wrong).
    """
    by_doc: dict[int, list[FieldOutcomes]] = {}
    for e in feedback.with_rejections():
        implied = e.has_final and not explicit_only
        spans = list(dict.fromkeys(r.span for r in e.rejected
                                   if r.span and (r.explicit or implied)
                                   and r.span != e.target))
        if spans:
            by_doc.setdefault(e.doc, []).append(FieldOutcomes(e.doc, e.field,
                                                              [list(s) for s in spans]))
    return [by_doc[d] for d in sorted(by_doc)]


def page_batches(wins: Sequence[SFTWindow], batch_size: int, rng: random.Random
                 ) -> list[list[int]]:
    """Window indices grouped by page, pages shuffled, pages added to a batch while it holds
    at most ``batch_size`` windows (a longer page is a batch of its own): every window of a
    page lands in one step, so its span categorical comes from that step's forward."""
    by_page: dict[tuple[str, int], list[int]] = {}
    for i, w in enumerate(wins):
        by_page.setdefault((w.source, w.page), []).append(i)
    pages = list(by_page.values())
    rng.shuffle(pages)
    batches: list[list[int]] = []
    for idx in pages:
        if batches and len(batches[-1]) + len(idx) <= batch_size:
            batches[-1] += idx
        else:
            batches.append(list(idx))
    return batches


@dataclass
class SFTBatch:
    """One step: windows to tag, and rejected outcomes to push down (may be none).

    ``page_rejections`` are those of feedback pages whose windows are all in ``windows``
    (scored from the step's own forward); ``rejections`` need a forward of their own (their
    documents have no page to tag)."""

    windows: list[SFTWindow]
    rejections: list[FieldOutcomes] = field(default_factory=list)
    page_rejections: list[tuple[int, list[FieldOutcomes]]] = field(default_factory=list)


# -- the trainer -----------------------------------------------------------------------------

class SFTTrainer(FeedbackTrainer):
    """Parent + corrections (+ replayed gold pages) in, a fine-tuned version out."""

    name = "sft"
    cfg: SFTConfig

    def __init__(self, cfg: SFTConfig, feedback: FeedbackSet | None = None,
                 replay_docs: Sequence[Document] | None = None,
                 dev_docs: Sequence[Document] | None = None) -> None:
        super().__init__(cfg, feedback, dev_docs)
        schema = self.model.schema
        fb_docs = self.feedback.documents
        labels = feedback_labels(self.feedback, schema)
        paged = [page_windows(self.model, fb_docs[d], lab, p, "feedback")
                 for p, (d, lab) in enumerate(labels.items())]
        self.pages = [wins for wins, _ in paged]
        self.page_firsts = [first for _, first in paged]  # feedback page -> first sub-tokens
        self.page_docs = list(labels)  # feedback page -> index into feedback.documents
        if replay_docs is None:
            replay_docs = (load_split(cfg.replay_data, cfg.replay_split, cfg.replay_ocr,
                                      cfg.max_replay_docs) if cfg.replay_data else [])
        # A page the operators reviewed is trained on their values, not replayed as well.
        seen = {fb_docs[d].id for d in labels}
        replay = [(d, gold_labels(d, schema)) for d in replay_docs if d.id not in seen]
        replay = [(d, lab) for d, lab in replay if lab.informative(schema)]
        self.replay_docs = [d for d, _ in replay]
        self.replay_pages = [page_windows(self.model, d, lab, p, "replay")[0]
                             for p, (d, lab) in enumerate(replay)]
        self.rejections = (rejected_outcomes(self.feedback, cfg.unlikelihood_explicit_only)
                           if cfg.unlikelihood_weight > 0 else [])
        if not self.pages:
            raise ValueError("sft: no reviewed field with a known value (a right value or "
                             "'not present') among the feedback read; nothing to fine-tune on")
        self.policy = BatchedPolicy(self.model, cfg.batch_size)
        log.info("sft: %d feedback pages (%d windows; %d fields unknown), replay pool %d pages "
                 "at ratio %g, %d documents with rejected spans, %d dev pages", len(self.pages),
                 sum(map(len, self.pages)), sum(len(lab.unknown) for lab in labels.values()),
                 len(self.replay_pages), cfg.replay_ratio, len(self.rejections),
                 len(self.dev_docs))

    # -- what an epoch steps on ----------------------------------------------------------------
    def replay_pick(self, epoch: int) -> list[int]:
        """Replay pages of ``epoch``: ``round(replay_ratio * feedback pages)`` of the pool,
        without repeats until the pool is used up. Drawn from a generator of its own seeded by
        (seed, epoch), so ``steps_per_epoch`` can size the schedule before the loop starts."""
        pool = len(self.replay_pages)
        n = round(self.cfg.replay_ratio * len(self.pages))
        if not pool or not n:
            return []
        rng = random.Random(f"sft-replay:{self.cfg.seed}:{epoch}")
        full, rest = divmod(n, pool)
        return list(range(pool)) * full + rng.sample(range(pool), rest)

    def epoch_windows(self, epoch: int) -> list[SFTWindow]:
        """Every feedback page's windows and the windows of the epoch's replay pages."""
        wins = [w for page in self.pages for w in page]
        return wins + [w for p in self.replay_pick(epoch) for w in self.replay_pages[p]]

    def steps_per_epoch(self) -> int:
        """Mean steps over the configured epochs (the replay draw changes the window count),
        rounded up: the schedule ends at or just after the last step."""
        bs = self.cfg.batch_size
        if self.rejections:  # whole-page batches: their count depends on the page order
            steps = [len(page_batches(self.epoch_windows(e), bs, random.Random(e)))
                     for e in range(1, self.cfg.epochs + 1)]
        else:
            steps = [math.ceil(len(self.epoch_windows(e)) / bs)
                     for e in range(1, self.cfg.epochs + 1)]
        return math.ceil(sum(steps) / len(steps))

    def epoch_batches(self, epoch: int, rng: random.Random) -> list[SFTBatch]:
        """Length-bucketed window batches; with unlikelihood, batches of whole pages, each
        carrying its pages' rejected spans, and the rejected spans of documents without a
        page spread over the steps."""
        wins = self.epoch_windows(epoch)
        if not self.rejections:
            order = epoch_batches([w.window for w in wins], self.cfg.batch_size, rng)
            return [SFTBatch([wins[i] for i in b]) for b in order]
        order = page_batches(wins, self.cfg.batch_size, rng)
        page_of_doc = {d: p for p, d in enumerate(self.page_docs)}
        by_page = {page_of_doc[d[0].doc]: d for d in self.rejections if d[0].doc in page_of_doc}
        loose = [d for d in self.rejections if d[0].doc not in page_of_doc]
        rng.shuffle(loose)
        n = len(order)
        batches = []
        for k, b in enumerate(order):
            pages = sorted({wins[i].page for i in b if wins[i].source == "feedback"})
            batches.append(SFTBatch([wins[i] for i in b], [q for d in loose[k::n] for q in d],
                                    [(p, by_page[p]) for p in pages if p in by_page]))
        return batches

    # -- the loss --------------------------------------------------------------------------------
    def compute_loss(self, batch: SFTBatch) -> tuple[torch.Tensor, dict[str, float]]:
        feats = collate([w.window for w in batch.windows], self.model.tokenizer.pad_token_id)
        allowed = collate_allowed(batch.windows, feats["input_ids"].shape[1])  # [B, T, L]
        dev = self.model.device
        feats = {k: v.to(dev) for k, v in feats.items() if k != "labels"}
        lp = self.forward(**feats)
        w = self.cfg.loss_weights
        loss, parts = joint_partial_tagging_loss(lp.bert, lp.layoutlm, lp.fused,
                                                 allowed.to(dev), (w[0], w[1], w[2]))
        labelled = allowed.any(-1)  # [B, T]
        n_allowed = allowed.sum(-1)[labelled]  # [N]
        parts["partial_share"] = float((n_allowed > 1).float().mean()) if n_allowed.numel() else 0.0
        if self.cfg.unlikelihood_weight > 0:
            lps = self.page_rejection_log_probs(batch, lp.get("fused"))
            if batch.rejections:
                lps += self.policy.log_probs(self.feedback.documents, batch.rejections)
            ul, n = ((unlikelihood_loss(torch.cat(lps)), sum(x.numel() for x in lps)) if lps
                     else (torch.zeros((), device=dev), 0))
            loss = loss + self.cfg.unlikelihood_weight * ul
            parts["unlikelihood"], parts["rejected_spans"] = float(ul.detach()), float(n)
        return loss, parts

    def page_rejection_log_probs(self, batch: SFTBatch, fused: torch.Tensor
                                 ) -> list[torch.Tensor]:
        """Log-probs [K] of the rejected spans of the batch's pages, from the step's own fused
        tag log-probs ``fused`` [B, T, L]: each page's words take their window rows as
        ``KVEnsemble.word_log_probs`` does (``merge_per_word``), so the term costs no second
        encoder forward."""
        out = []
        docs = self.feedback.documents
        for p, queries in batch.page_rejections:
            rows = [i for i, w in enumerate(batch.windows)
                    if w.source == "feedback" and w.page == p]
            spans = [batch.windows[i].window.span for i in rows]
            outs = [fused[i, 1:len(batch.windows[i].window.input_ids) - 1] for i in rows]
            word_lp = torch.stack(merge_per_word(self.page_firsts[p], spans, outs))  # [n, L]
            doc = docs[self.page_docs[p]]
            for q in queries:
                dist = self.model.span_distribution(doc, q.field, word_lp)
                out.append(outcome_log_probs(dist, q.outcomes))
        return out

    # -- selection: FeedbackTrainer's (dev F1 on the dev pages, else the lowest train loss) --
    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "pages": len(self.pages),
                "replay_pool": len(self.replay_pages),
                "rejected_documents": len(self.rejections)}
