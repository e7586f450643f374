"""Supervised training of the BERT + LayoutLM ensemble from gold field values.

The trainer is a config (``SupervisedConfig``), the data (``training.data``: gold aligned to
BIO labels on every OCR pass of a page, windows, length-bucketed batches) and
``compute_loss``: ``CE(bert) + CE(layoutlm) + CE(fused)`` (``training.losses
.joint_tagging_loss``); the shared loop (``training.loop``) does the rest. After each epoch the
decoder runs on the dev split; the best lenient field F1 is kept and training stops after
``patience`` epochs without a gain. The decision step (``training.decisions``) then fits
fusion weights, "absent" threshold, calibrator and auto-accept thresholds on the calibration
split, which the model never trained on, and, when that split has images and was loaded with
other words (SROIE: provided), a decision profile for image input on the pages read by the
OCR engines.
The words of the training pages are saved as the model's lexicon (``extractor.lexicon``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from eval.field_scores import score_results
from extractor.document import Document, Schema
from extractor.lexicon import build_lexicon
from extractor.loaders import REREAD_MODES
from extractor.model.calibrate import Calibrator, DecisionProfile, profile_engine
from extractor.model.card import ModelCard, model_version
from extractor.model.ensemble import KVEnsemble
from extractor.model.features import Window, collate
from extractor.model.predictor import KVPredictor
from extractor.model.zoo import build_model
from extractor.schemas import get_schema, schema_for_documents
from training.data import (
    epoch_batches,
    load_split,
    mixed_windows,
    pass_windows,
    with_image_variants,
)
from training.decisions import Decisions, fit_decisions
from training.loop import LoopResult, Trainer, seed_everything
from training.losses import joint_tagging_loss
from training.supervised_config import SupervisedConfig

log = logging.getLogger(__name__)


def evaluate(model: KVEnsemble, docs: Sequence[Document], k: int = 5,
             calibrator: Calibrator | None = None) -> dict[str, Any]:
    """Field scores of the fused decoder on ``docs`` (eval mode restored by the caller)."""
    model.eval()
    pred = KVPredictor(model, DecisionProfile(calibrator or Calibrator()))
    results = pred.predict(list(docs), k=k)
    return score_results([d.gold or {} for d in docs], results, k_max=k).summary()


def has_images(docs: Sequence[Document]) -> bool:
    """Whether the pages have images to read with the OCR engines (CORD's annotations have
    none: its pages keep their own words, no image passes and no image decision profile)."""
    return any(d.source for d in docs)


def training_schema(cfg: SupervisedConfig, docs: Sequence[Document]) -> Schema:
    """``cfg.schema`` by name, else the saved schema of the model ``cfg.init`` continues, else
    the schema the documents' gold is written in (``extractor.schemas``)."""
    if cfg.schema:
        return get_schema(cfg.schema)
    if cfg.init:
        return ModelCard.load(cfg.init).schema
    return schema_for_documents(docs)


class SupervisedTrainer(Trainer):
    """Config + data in, a saved, calibrated model directory out (see module docstring)."""

    name = "base"
    cfg: SupervisedConfig

    def __init__(self, cfg: SupervisedConfig, schema: Schema | None = None,
                 train_docs: Sequence[Document] | None = None,
                 dev_docs: Sequence[Document] | None = None,
                 calib_docs: Sequence[Document] | None = None,
                 profile_docs: Sequence[Document] | None = None) -> None:
        self.cfg = cfg
        self.final_out = cfg.out
        seed_everything(cfg.seed, cfg.threads)
        load = (lambda s: load_split(cfg.data, s, cfg.ocr, cfg.max_docs))
        self.train_docs = list(train_docs) if train_docs is not None else load(cfg.train_split)
        self.dev_docs = list(dev_docs) if dev_docs is not None else load(cfg.dev_split)
        self.calib_docs = list(calib_docs) if calib_docs is not None else load(cfg.calib_split)
        # The calibration pages as the OCR engines read their images (SROIE: for images).
        self.profile_docs = list(profile_docs or [])
        if (profile_docs is None and calib_docs is None and cfg.tesseract_profile
                and has_images(self.calib_docs) and cfg.ocr not in REREAD_MODES):
            self.profile_docs = load_split(cfg.data, cfg.calib_split, "images", cfg.max_docs)
        if not self.train_docs:
            raise ValueError(f"{cfg.data}: no training documents in split {cfg.train_split!r}")
        if (cfg.ocr_mix > 0 and cfg.ocr not in REREAD_MODES and train_docs is None
                and has_images(self.train_docs) and not any(d.variants for d in self.train_docs)):
            self.train_docs = with_image_variants(self.train_docs, cfg.data, cfg.train_split,
                                                  cfg.max_docs)
        # Words the training pages print, for correcting OCR misreads (main words only: the
        # variants' misreads must not enter it).
        self.lexicon = build_lexicon(self.train_docs)
        self.parent_version: str | None = None
        self.schema = schema or training_schema(cfg, self.train_docs)
        if cfg.init:
            self.model, _ = KVEnsemble.from_pretrained(cfg.init)
            self.parent_version = model_version(cfg.init)
            if self.model.schema.labels != self.schema.labels:
                raise ValueError(f"{cfg.init}: model was trained for another schema")
        else:
            self.model = build_model(cfg.arch, self.schema, seed=cfg.seed,
                                     max_length=cfg.max_length, stride=cfg.stride,
                                     max_span_len=cfg.max_span_len,
                                     layout_init=cfg.layout_init)
        self._per_pass: list[list[list[Window]]] | None = None

    @property
    def default_engine(self) -> str:
        """The OCR engine of the calibration pages: the default decision profile's."""
        return profile_engine(self.calib_docs[0].ocr) if self.calib_docs else "provided"

    # -- the loop's hooks ----------------------------------------------------------------------
    @property
    def per_pass(self) -> list[list[list[Window]]]:
        """Labelled windows of every training page, per OCR pass (built once)."""
        if self._per_pass is None:
            self._per_pass, unaligned = pass_windows(self.model, self.train_docs, self.schema,
                                                     variants=self.cfg.ocr_mix > 0)
            log.info("%d training windows from %d documents (%d OCR passes); unaligned gold "
                     "fields: %s", sum(len(p[0]) for p in self._per_pass),
                     len(self.train_docs), sum(len(p) for p in self._per_pass), unaligned)
        return self._per_pass

    def steps_per_epoch(self) -> int:
        return -(-sum(len(p[0]) for p in self.per_pass) // self.cfg.batch_size)

    def epoch_batches(self, epoch: int, rng: random.Random) -> list[list[Window]]:
        wins = mixed_windows(self.per_pass, self.cfg.ocr_mix, rng)
        return [[wins[i] for i in b] for b in epoch_batches(wins, self.cfg.batch_size, rng)]

    def compute_loss(self, batch: Sequence[Window]) -> tuple[torch.Tensor, dict[str, float]]:
        feats = collate(batch, self.model.tokenizer.pad_token_id)
        feats = {k: v.to(self.model.device) for k, v in feats.items()}
        lp = self.forward(**feats)
        w = self.cfg.loss_weights
        return joint_tagging_loss(lp.bert, lp.layoutlm, lp.fused, feats["labels"],
                                  (w[0], w[1], w[2]))

    def evaluate(self, epoch: int) -> dict[str, Any]:
        if not self.dev_docs:
            return {"fusion_weights": self.model.fusion_weights.tolist()}
        dev = evaluate(self.model, self.dev_docs)
        return {"dev_f1": dev["lenient"]["f1"], "dev_strict_f1": dev["strict"]["f1"],
                "dev_recall_at_5": dev["recall_at"].get(5),
                "fusion_weights": self.model.fusion_weights.tolist()}

    def selection_score(self, row: dict[str, Any]) -> float:
        return row["dev_f1"] if "dev_f1" in row else -row["train_loss"]

    def checkpoint_card(self, epoch: int) -> ModelCard:
        card = self.model.card()
        card.training, card.epoch = self.record(), epoch
        return card

    # -- after the loop ------------------------------------------------------------------------
    def decisions(self) -> Decisions:
        """Fusion weights, thresholds, calibrators and routing fitted on held-out pages."""
        return fit_decisions(self.model, self.calib_docs, self.profile_docs, self.lexicon,
                             self.cfg.auto_accept_target, self.cfg.auto_accept_level)

    def save_version(self, work: Path, result: LoopResult) -> ModelCard:
        """Fit the decisions, then write weights, lexicon and card."""
        card = self.decisions().apply(self.model, ModelCard(self.schema))
        card.training = self.record(result)
        self.model.save_pretrained(work, card)
        self.lexicon.save(work)
        card.version = model_version(work)
        card.save(work)
        return card
