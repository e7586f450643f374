"""What every trainer that learns from operator feedback shares.

A feedback trainer starts from a saved model version (``init``, the *parent*), reads the
feedback store through its training API (``training.feedback_data.read_feedback``), runs the
shared loop (``training.loop.Trainer``) and writes a **new** version: into a temporary folder
beside ``out``, renamed into place when complete, never over an existing folder, so the
parent stays byte-identical and a killed run leaves no half-written model. The new card
records the trainer, its config, the parent version and a reference to the feedback read.

Held-out gold pages (``dev_data``, loaded once by :func:`load_dev_docs`) are scored after every
epoch by :meth:`FeedbackTrainer.dev_scores` (the base trainer's evaluation,
``training.supervised_trainer.evaluate``: lenient and strict field F1, recall@5), and the best
dev F1 picks the kept epoch; what a trainer falls back on without dev pages is its own choice
(its ``selection_score``).

After the weights change, the decisions (fusion weights, thresholds, calibrator, auto-accept)
are refitted on held-out gold pages when ``calib_data`` is given (``training.decisions``);
otherwise the parent's decisions are kept, with a warning, since they were fitted for other
weights.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from extractor.document import Document
from extractor.lexicon import Lexicon
from extractor.loaders import OCR_MODES, REREAD_MODES
from extractor.model.card import FeedbackRef, ModelCard, model_version
from extractor.model.ensemble import KVEnsemble
from extractor.splits import SPLITS
from feedback_ui.store import FeedbackFilter
from training.config import TrainConfig
from training.data import load_split
from training.decisions import fit_decisions
from training.feedback_data import FeedbackSet, read_store_feedback
from training.loop import LoopResult, Trainer, seed_everything
from training.supervised_trainer import evaluate

log = logging.getLogger(__name__)


@dataclass
class FeedbackConfig(TrainConfig):
    """Fields of every feedback trainer: the parent, the store and its filters, held-out data.

    Documented here once; each trainer's config module refers to them by group:

    * start: ``init`` (the parent model version, only read);
    * feedback: ``store`` and its filters (``dataset``, ``operator``, ``model_version``,
      ``since``, ``until``: ISO times, ``max_feedback_docs``);
    * dev: ``dev_data`` (a dataset spec of gold pages; empty: none), ``dev_split``
      (``extractor.splits.SPLITS``; SROIE ``dev``, which no trainer fits on), ``dev_ocr``
      (``provided`` or ``tesseract``), ``max_dev_docs`` (a cap, >= 1). Scored after every
      epoch; the best dev score picks the kept epoch (what is scored, and the fallback without
      dev pages, is in each trainer's config docstring). Dev pages that are also feedback
      documents are kept but logged: their score is optimistic;
    * decisions: ``calib_data``/``calib_split``/``calib_ocr``: gold pages to refit the
      decisions on (SROIE: ``calibration``, which no trainer fits on); empty keeps the
      parent's; ``tesseract_profile``, ``auto_accept_target``;
    * ``epochs`` (the default here, 3, is for feedback; the rest of the optimisation fields
      are ``training.config.TrainConfig``'s).
    """

    init: str = field(default="", metadata={"help": "the model version to start from (a saved "
                                                    "model directory; it is never changed)"})
    store: str = field(default="", metadata={"help": "feedback store URL or SQLite path"})
    dataset: str | None = field(default=None, metadata={"help": "only this store dataset"})
    operator: str | None = field(default=None, metadata={"help": "only this operator's work"})
    model_version: str | None = field(default=None, metadata={
        "help": "only feedback on results of this model version"})
    since: str | None = field(default=None, metadata={"help": "only saves at/after (ISO time)"})
    until: str | None = field(default=None, metadata={"help": "only saves before (ISO time)"})
    max_feedback_docs: int | None = field(default=None, metadata={
        "help": "read at most this many reviewed documents (by id)"})
    dev_data: str = field(default="", metadata={
        "help": "dataset spec of gold pages scored after every epoch; the best dev score picks "
                "the kept epoch ('' = none: each trainer's fallback)"})
    dev_split: str = field(default="dev", metadata={"help": "split of dev_data"})
    dev_ocr: str = field(default="provided", metadata={"help": "OCR of dev_data pages"})
    max_dev_docs: int | None = field(default=None, metadata={"help": "cap the dev pages"})
    calib_data: str = field(default="", metadata={
        "help": "dataset spec of gold pages to refit the decisions on ('' keeps the parent's)"})
    calib_split: str = field(default="calibration", metadata={"help": "split of calib_data"})
    calib_ocr: str = field(default="provided", metadata={"help": "OCR of calib_data pages"})
    tesseract_profile: bool = field(default=True, metadata={
        "help": "also refit the image-input profile on calib_data read by the OCR engines"})
    auto_accept_target: float = field(default=0.99, metadata={
        "help": "precision each field's auto-accept threshold must reach on held-out pages"})
    epochs: int = field(default=3, metadata={"help": "passes over the feedback"})

    required: ClassVar[tuple[str, ...]] = ("out", "init")

    def __post_init__(self) -> None:
        super().__post_init__()
        for t in ("since", "until"):
            v = getattr(self, t)
            if v:
                try:
                    datetime.fromisoformat(v)
                except ValueError as e:
                    raise ValueError(f"{t} must be an ISO date/time, got {v!r}") from e
        for name in ("dev_split", "calib_split"):
            if getattr(self, name) not in SPLITS:
                raise ValueError(f"{name} must be one of {SPLITS}, got {getattr(self, name)!r}")
        for name in ("dev_ocr", "calib_ocr"):
            if getattr(self, name) not in OCR_MODES:
                raise ValueError(f"{name} must be one of {OCR_MODES}, "
                                 f"got {getattr(self, name)!r}")
        if self.max_dev_docs is not None and self.max_dev_docs < 1:
            raise ValueError(f"max_dev_docs must be >= 1, got {self.max_dev_docs}")

    def feedback_filter(self) -> FeedbackFilter:
        def when(v: str | None) -> datetime | None:
            return datetime.fromisoformat(v) if v else None

        return FeedbackFilter(model_version=self.model_version, dataset=self.dataset,
                              operator=self.operator, since=when(self.since),
                              until=when(self.until), limit=self.max_feedback_docs)


def feedback_of(cfg: FeedbackConfig, field_names: Sequence[str]) -> FeedbackSet:
    """The feedback of ``cfg.store`` that ``cfg``'s filters select."""
    return read_store_feedback(cfg.store, cfg.feedback_filter(), field_names)


def load_dev_docs(cfg: FeedbackConfig, given: Sequence[Document] | None = None,
                  train_docs: Sequence[Document] = (), who: str = "trainer") -> list[Document]:
    """The dev pages: ``given``, else ``cfg.dev_data``'s split (none when it is empty).

    Pages that are also ``train_docs`` (what the trainer learns from) are kept, with a warning:
    dropping them would silently change the dev set between runs on different feedback, and
    keeping them quietly would report an optimistic score.
    """
    if given is not None:
        docs = list(given)
    elif cfg.dev_data:
        docs = load_split(cfg.dev_data, cfg.dev_split, cfg.dev_ocr, cfg.max_dev_docs)
    else:
        docs = []
    leaked = {d.id for d in docs} & {d.id for d in train_docs}
    if leaked:
        log.warning("%s: %d dev pages are also training pages (dev F1 is optimistic): %s",
                    who, len(leaked), sorted(leaked)[:5])
    return docs


def check_run(cfg: FeedbackConfig, has_feedback: bool,
              no_feedback: str = "store: the feedback store to learn from is required") -> None:
    """What every feedback trainer checks before loading anything: a parent, a new output
    folder (never an existing one) and something to learn from."""
    if not cfg.init:
        raise ValueError("init: the model to start from is required")
    if not cfg.out:
        raise ValueError("out: the new model's directory is required")
    if Path(cfg.out).exists():
        raise FileExistsError(f"{cfg.out}: already exists; a trainer writes a new version "
                              "and never overwrites one")
    if not has_feedback:
        raise ValueError(no_feedback)


class FeedbackTrainer(Trainer):
    """Parent model + feedback in, a new model version out (see the module docstring).

    Subclasses implement the loop hooks (``steps_per_epoch``, ``epoch_batches``,
    ``compute_loss``) over ``self.feedback``; ``self.dev_docs`` are the held-out gold pages
    (``dev_docs`` given, else ``cfg.dev_data``), scored by :meth:`dev_scores`.
    """

    cfg: FeedbackConfig

    def __init__(self, cfg: FeedbackConfig, feedback: FeedbackSet | None = None,
                 dev_docs: Sequence[Document] | None = None) -> None:
        check_run(cfg, has_feedback=feedback is not None or bool(cfg.store))
        self.cfg, self.out = cfg, Path(cfg.out)
        self.final_out = str(self.out)
        seed_everything(cfg.seed, cfg.threads)
        self.model, self.parent_card = KVEnsemble.from_pretrained(cfg.init)
        self.parent_version = model_version(cfg.init)
        self.lexicon = Lexicon.load(cfg.init)
        if feedback is None:
            feedback = feedback_of(cfg, self.model.schema.field_names)
        self.feedback = feedback
        log.info("%s: %d reviewed documents, %d fields (%d with a right value, %d with "
                 "placed wrong values)", self.name, len(feedback.documents),
                 len(feedback.examples), len(feedback.targets()),
                 len(feedback.with_rejections()))
        self.dev_docs = load_dev_docs(cfg, dev_docs, feedback.documents, self.name)
        self._reference: KVEnsemble | None = None

    @property
    def reference(self) -> KVEnsemble:
        """The frozen parent (eval mode, no grad): KL and DPO's reference policy."""
        if self._reference is None:
            self._reference = self.model.reference()
        return self._reference

    # -- held-out pages ------------------------------------------------------------------------
    def dev_scores(self) -> dict[str, Any]:
        """The current model's ``dev_f1`` (lenient field F1), ``dev_strict_f1`` and
        ``dev_recall_at_5`` on the dev pages (none without them), as base training scores."""
        if not self.dev_docs:
            return {}
        dev = evaluate(self.model, self.dev_docs)
        return {"dev_f1": dev["lenient"]["f1"], "dev_strict_f1": dev["strict"]["f1"],
                "dev_recall_at_5": dev["recall_at"].get(5)}

    def evaluate(self, epoch: int) -> dict[str, Any]:
        return self.dev_scores()

    def selection_score(self, row: dict[str, Any]) -> float:
        """Dev F1 when dev pages are given, else the lowest train loss."""
        return float(row["dev_f1"]) if "dev_f1" in row else -float(row["train_loss"])

    def checkpoint_card(self, epoch: int) -> ModelCard:
        card = self.model.card(self.parent_card)
        card.training, card.epoch, card.version = self.record(), epoch, None
        return card

    def feedback_ref(self) -> FeedbackRef:
        return self.feedback.ref

    # -- after the loop ------------------------------------------------------------------------
    def new_card(self, result: LoopResult) -> ModelCard:
        """The parent's card with refitted (or kept) decisions and this run's lineage."""
        cfg = self.cfg
        card = self.model.card(self.parent_card)
        if cfg.calib_data:
            calib = load_split(cfg.calib_data, cfg.calib_split, cfg.calib_ocr)
            profile_docs = (load_split(cfg.calib_data, cfg.calib_split, "images")
                            if cfg.tesseract_profile and cfg.calib_ocr not in REREAD_MODES
                            else [])
            decisions = fit_decisions(self.model, calib, profile_docs, self.lexicon,
                                      cfg.auto_accept_target)
            card = decisions.apply(self.model, card)
        else:
            log.warning("%s: no calib_data; the parent's decisions (thresholds, calibrator, "
                        "auto-accept) are kept although the weights changed", self.name)
        card.training, card.epoch, card.version = self.record(result), None, None
        return card

    def save_version(self, work: Path, result: LoopResult) -> ModelCard:
        """The new version: weights, lexicon and the card of :meth:`new_card`."""
        card = self.new_card(result)
        self.model.save_pretrained(work, card)
        if self.lexicon is not None:
            self.lexicon.save(work)
        card.version = model_version(work)
        card.save(work)
        return card

    def describe(self) -> dict[str, Any]:
        return {"trainer": self.name, "parent": self.parent_version,
                "documents": len(self.feedback.documents),
                "fields": len(self.feedback.examples), "dev_pages": len(self.dev_docs)}
