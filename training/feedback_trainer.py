"""What every trainer that learns from operator feedback shares.

A feedback trainer starts from a saved model version (``init``, the *parent*), reads the
feedback store through its training API (``training.feedback_data.read_feedback``), runs the
shared loop (``training.loop.Trainer``) and writes a **new** version: into a temporary folder
beside ``out``, renamed into place when complete, never over an existing folder, so the
parent stays byte-identical and a killed run leaves no half-written model. The new card
records the trainer, its config, the parent version and a reference to the feedback read.

After the weights change, the decisions (fusion weights, thresholds, calibrator, auto-accept)
are refitted on held-out gold pages when ``calib_data`` is given (``training.decisions``);
otherwise the parent's decisions are kept, with a warning, since they were fitted for other
weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from extractor.lexicon import Lexicon
from extractor.model.card import ModelCard, TrainingRecord, model_version
from extractor.model.ensemble import KVEnsemble
from feedback_ui.store import FeedbackFilter, FeedbackStore
from training.config import TrainConfig
from training.data import load_split
from training.decisions import fit_decisions
from training.feedback_data import FeedbackSet, read_feedback
from training.loop import LoopResult, Trainer, seed_everything
from training.versions import new_version_dir

log = logging.getLogger(__name__)


@dataclass
class FeedbackConfig(TrainConfig):
    """Fields of every feedback trainer: the parent, the store and its filters, held-out data.

    ``calib_data``/``calib_split``: gold pages to refit the decisions on (SROIE:
    ``calibration``, which no trainer fits on); empty keeps the parent's decisions.
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
    calib_data: str = field(default="", metadata={
        "help": "dataset spec of gold pages to refit the decisions on ('' keeps the parent's)"})
    calib_split: str = field(default="calibration", metadata={"help": "split of calib_data"})
    calib_ocr: str = field(default="provided", metadata={"help": "OCR of calib_data pages"})
    tesseract_profile: bool = field(default=True, metadata={
        "help": "also refit the image-input profile on calib_data's tesseract passes"})
    auto_accept_target: float = field(default=0.99, metadata={
        "help": "precision each field's auto-accept threshold must reach on held-out pages"})
    epochs: int = field(default=3, metadata={"help": "passes over the feedback"})

    def __post_init__(self) -> None:
        super().__post_init__()
        for t in ("since", "until"):
            v = getattr(self, t)
            if v:
                try:
                    datetime.fromisoformat(v)
                except ValueError as e:
                    raise ValueError(f"{t} must be an ISO date/time, got {v!r}") from e

    def feedback_filter(self) -> FeedbackFilter:
        def when(v: str | None) -> datetime | None:
            return datetime.fromisoformat(v) if v else None

        return FeedbackFilter(model_version=self.model_version, dataset=self.dataset,
                              operator=self.operator, since=when(self.since),
                              until=when(self.until), limit=self.max_feedback_docs)


class FeedbackTrainer(Trainer):
    """Parent model + feedback in, a new model version out (see the module docstring).

    Subclasses implement the loop hooks (``steps_per_epoch``, ``epoch_batches``,
    ``compute_loss``) over ``self.feedback``.
    """

    cfg: FeedbackConfig

    def __init__(self, cfg: FeedbackConfig, feedback: FeedbackSet | None = None) -> None:
        if not cfg.init:
            raise ValueError("init: the model to start from is required")
        if not cfg.out:
            raise ValueError("out: the new model's directory is required")
        if Path(cfg.out).exists():
            raise FileExistsError(f"{cfg.out}: already exists; a trainer writes a new version "
                                  "and never overwrites one")
        if feedback is None and not cfg.store:
            raise ValueError("store: the feedback store to learn from is required")
        self.cfg, self.out = cfg, Path(cfg.out)
        seed_everything(cfg.seed, cfg.threads)
        self.model, self.parent_card = KVEnsemble.from_pretrained(cfg.init)
        self.parent_version = model_version(cfg.init)
        self.lexicon = Lexicon.load(cfg.init)
        if feedback is None:
            store = FeedbackStore(cfg.store)
            try:
                feedback = read_feedback(store, cfg.feedback_filter(),
                                         self.model.schema.field_names)
            finally:
                store.close()
        self.feedback = feedback
        log.info("%s: %d reviewed documents, %d fields (%d with a right value, %d with "
                 "placed wrong values)", self.name, len(feedback.documents),
                 len(feedback.examples), len(feedback.targets()),
                 len(feedback.with_rejections()))
        self._reference: KVEnsemble | None = None

    @property
    def reference(self) -> KVEnsemble:
        """The frozen parent (eval mode, no grad): KL and DPO's reference policy."""
        if self._reference is None:
            self._reference = self.model.reference()
        return self._reference

    def checkpoint_card(self, epoch: int) -> ModelCard:
        card = self.model.card(self.parent_card)
        card.training, card.epoch, card.version = self.record(), epoch, None
        return card

    def record(self, result: LoopResult | None = None) -> TrainingRecord:
        config = {**self.cfg.export(), "out": str(self.out)}  # not the temporary folder
        return TrainingRecord(self.name, config, self.parent_version,
                              self.feedback.ref,
                              best_epoch=result.best_epoch if result else None,
                              history=list(result.history) if result else [])

    # -- after the loop ------------------------------------------------------------------------
    def new_card(self, result: LoopResult) -> ModelCard:
        """The parent's card with refitted (or kept) decisions and this run's lineage."""
        cfg = self.cfg
        card = self.model.card(self.parent_card)
        if cfg.calib_data:
            calib = load_split(cfg.calib_data, cfg.calib_split, cfg.calib_ocr)
            profile_docs = (load_split(cfg.calib_data, cfg.calib_split, "tesseract")
                            if cfg.tesseract_profile and cfg.calib_ocr != "tesseract" else [])
            decisions = fit_decisions(self.model, calib, profile_docs, self.lexicon,
                                      cfg.auto_accept_target)
            card = decisions.apply(self.model, card)
        else:
            log.warning("%s: no calib_data; the parent's decisions (thresholds, calibrator, "
                        "auto-accept) are kept although the weights changed", self.name)
        card.training, card.epoch, card.version = self.record(result), None, None
        return card

    def train(self) -> Path:
        """Run the loop and write the new version; returns its directory."""
        with new_version_dir(self.out) as work:
            self.cfg.out = str(work)  # the loop's curves and checkpoint go to the new folder
            try:
                result = self.fit()
                card = self.new_card(result)
                self.model.save_pretrained(work, card)
                if self.lexicon is not None:
                    self.lexicon.save(work)
                card.version = model_version(work)
                card.save(work)
            finally:
                self.cfg.out = str(self.out)
        log.info("%s: wrote %s (%s, parent %s)", self.name, self.out, card.version,
                 self.parent_version)
        return self.out

    def describe(self) -> dict[str, Any]:
        return {"trainer": self.name, "parent": self.parent_version,
                "documents": len(self.feedback.documents),
                "fields": len(self.feedback.examples)}
