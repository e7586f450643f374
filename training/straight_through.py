"""Fitting straight-through processing: the correctness model and certified thresholds.

``fit_straight_through`` (``kvloop thresholds fit``) works on the calibration split, which no
trainer fits on, read as given and by every other OCR engine the model has a profile for:

1. the saved model extracts every page; each (page, field) answer becomes an item: its
   features (``extractor.correctness.field_features``) and whether it is right
   (``extractor.scoring.is_correct``, the strict key);
2. the correctness model is cross-fitted (5 folds by page: both readings of a page in the same
   fold): each item is scored by a model that never saw its page, so the items stay held-out
   for step 3; the model saved is then fitted on every item;
3. per field, the threshold certified on the held-out scores (``extractor.certify.certify``).

The out-of-fold scores come from five models close to, not equal to, the saved one: the
certificate is exact for items the saved model scores (store reviews, below) and a close
approximation for the calibration items.

``refit_from_store`` (``kvloop thresholds refit``) adds every reviewed field in a feedback
store whose extraction was made by this model version (or a version that scores the same
way: ``StraightThrough.scores_of``), scored by the saved correctness model
(``feedback_ui.audit.reviewed_fields``), and certifies again on calibration + store items. The correctness model and the weights are unchanged, so
every earlier review stays evidence for the new version. Reviewed documents are assumed to be
like the ones auto-accepted (all of a document's fields are reviewed once it is opened); the
audit (``feedback_ui.audit``) watches the accepted ones.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from extractor.certify import LEVEL, Certificate, certify
from extractor.correctness import CorrectnessModel, field_features, fit_correctness
from extractor.document import Document, ExtractionResult, Schema
from extractor.model.card import ModelCard, model_version
from extractor.scoring import is_correct
from extractor.straight_through import TARGET, Items, StraightThrough
from extractor.vendor_memory import VendorMemory
from feedback_ui.audit import reviewed_fields
from feedback_ui.store import FeedbackStore

if TYPE_CHECKING:
    from extractor.model.predictor import KVPredictor

log = logging.getLogger(__name__)
FOLDS = 5


@dataclass
class ItemTable:
    """Items of many fields: features [n, F], field names, correctness, the page of each."""

    X: list[list[float]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)

    def add(self, features: list[float], name: str, ok: bool, page: str) -> None:
        self.X.append(features)
        self.names.append(name)
        self.correct.append(ok)
        self.pages.append(page)

    def __len__(self) -> int:
        return len(self.names)


def leave_one_out_memory(docs: Sequence[Document], fields: Sequence[str]
                         ) -> dict[str, VendorMemory]:
    """Per page id, a vendor memory of every *other* page's gold values: what operators
    would have confirmed before this page arrived (no page sees its own answer)."""
    out = {}
    for d in docs:
        others = [o.gold or {} for o in docs if o.id != d.id and o.gold]
        out[d.id] = VendorMemory(fields=tuple(f for f in ("company", "address")
                                              if f in fields)).add_all(others)
    return out


def items_of(docs: Sequence[Document], results: Sequence[ExtractionResult], schema: Schema,
             memories: dict[str, VendorMemory] | None = None,
             table: ItemTable | None = None) -> ItemTable:
    """Every (page, field) answer of ``results`` against the pages' gold, as items."""
    table = table if table is not None else ItemTable()
    by_id = {r.doc_id: r for r in results}
    for d in docs:
        r = by_id.get(d.id)
        if r is None or d.gold is None:
            continue
        memory = memories.get(d.id) if memories else None
        for spec in schema.fields:
            fr = r.fields.get(spec.name)
            table.add(field_features(d, fr, spec, memory), spec.name,
                      is_correct(d.gold.get(spec.name), fr.value if fr else None), d.id)
    return table


def cross_fitted_scores(table: ItemTable, fields: Sequence[str], folds: int = FOLDS,
                        seed: int = 0) -> np.ndarray:
    """P(correct) of each item from a model fitted on the other folds (folds by page)."""
    pages = sorted(set(table.pages))
    random.Random(seed).shuffle(pages)
    fold_of = {p: i % folds for i, p in enumerate(pages)}
    X, names = np.asarray(table.X, dtype=float), np.asarray(table.names)
    y, fold = np.asarray(table.correct), np.array([fold_of[p] for p in table.pages])
    out = np.zeros(len(table))
    for f in range(folds):
        held = fold == f
        if not held.any():
            continue
        m = fit_correctness(X[~held], list(names[~held]), y[~held], fields, seed=seed)
        out[held] = m.predict(X[held], list(names[held]))
    return out


def certify_all(items: dict[str, Items], fields: Sequence[str], target: float, level: float,
                scope: str = "field") -> dict[str, Certificate]:
    """Per field, its certificate: on its own items, or (``pooled``) one certificate on
    every field's items together, shared by all."""
    if scope == "pooled":
        every = sum((items.get(f, Items()) for f in fields), Items())
        shared = certify("all fields", every.scores, every.correct, target, level)
        return {f: shared for f in fields}
    return {f: certify(f, items.get(f, Items()).scores, items.get(f, Items()).correct,
                       target, level) for f in fields}


def fit_straight_through(table: ItemTable, fields: Sequence[str], target: float = TARGET,
                         level: float = LEVEL, uses_memory: bool = False, seed: int = 0,
                         folds: int = FOLDS, scope: str = "field") -> StraightThrough:
    """Steps 2-3 of the module docstring on ``table`` (the calibration items)."""
    if not len(table):
        raise ValueError("no calibration items to fit the correctness model on")
    oof = cross_fitted_scores(table, fields, folds, seed)
    model: CorrectnessModel = fit_correctness(np.asarray(table.X, dtype=float), table.names,
                                              table.correct, fields, seed=seed)
    items = {f: Items([float(s) for s, n in zip(oof, table.names) if n == f],
                      [c for c, n in zip(table.correct, table.names) if n == f])
             for f in fields}
    return StraightThrough(model, certify_all(items, fields, target, level, scope), items,
                           target, level,
                           {f: {"calibration": len(items[f].scores)} for f in fields}, [],
                           uses_memory, scope)


def calibration_items(predictor: KVPredictor, doc_sets: Sequence[Sequence[Document]],
                      uses_memory: bool = False, batch_size: int = 8) -> ItemTable:
    """The items of every set of calibration pages (one set per OCR reading)."""
    table = ItemTable()
    schema = predictor.schema
    for docs in doc_sets:
        results = predictor.predict(list(docs), batch_size=batch_size)
        memories = leave_one_out_memory(docs, schema.field_names) if uses_memory else None
        items_of(docs, results, schema, memories, table)
    return table


def save_with(model_dir: str | Path, st: StraightThrough, out_dir: str | Path | None = None
              ) -> tuple[Path, str]:
    """Write ``st`` into the card of ``model_dir`` (or of a copy at ``out_dir``: a new
    model version beside the old one); returns the folder and its new version."""
    src = Path(model_dir)
    dst = src if out_dir is None else Path(out_dir)
    if dst != src:
        if dst.exists() and any(dst.iterdir()):
            raise FileExistsError(f"{dst}: exists and is not empty; give a new --out folder")
        shutil.copytree(src, dst, dirs_exist_ok=True, copy_function=_link_or_copy)
    card = ModelCard.load(dst)
    card.straight_through = st
    card.version = None
    card.save(dst)
    card.version = model_version(dst)
    card.save(dst)
    return dst, card.version


def _link_or_copy(src: str, dst: str) -> None:
    """Weights are hard-linked (the card is rewritten by rename, never in place)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# -- refit from a feedback store ---------------------------------------------------------------

@dataclass
class RefitReport:
    """What a refit did: where it wrote, per field the certificate, and the messages."""

    out: Path | None
    version: str | None
    straight_through: StraightThrough | None
    messages: list[str]


def refit_from_store(model_dir: str | Path, store: FeedbackStore, out_dir: str | Path,
                     target: float | None = None, level: float | None = None) -> RefitReport:
    """Certify again on calibration + store items and write a new model version at
    ``out_dir`` (nothing is written when the store holds no usable review)."""
    card = ModelCard.load(model_dir)
    st = card.straight_through
    if st is None:
        raise ValueError(f"{model_dir}: the model card has no straight-through section; fit "
                         "one first (kvloop thresholds fit)")
    version = model_version(model_dir)
    target = st.target if target is None else target
    level = st.level if level is None else level
    found = reviewed_fields(store, st, card.schema, version)
    messages = found.messages(version)
    if not found.total:
        return RefitReport(None, None, None, messages)
    fields = card.schema.field_names
    # The card keeps the calibration items only: the store is read whole at every refit, so
    # a review is counted once however many refits it lived through.
    certs = certify_all({f: st.items.get(f, Items()) + found.items[f] for f in fields}, fields,
                        target, level, st.scope)
    sources = {f: {"calibration": len(st.items.get(f, Items()).scores),
                   "store": len(found.items[f].scores)} for f in fields}
    new = StraightThrough(st.model, certs, st.items, target, level, sources,
                          [version, *st.scores_of], st.uses_memory, st.scope)
    out, new_version = save_with(model_dir, new, out_dir)
    for f, c in certs.items():
        if not c.certified:
            messages.append(f"{f}: stays in review ({c.reason})")
    return RefitReport(out, new_version, new, messages)


def fit_model_dir(model_dir: str | Path, doc_sets: Sequence[Sequence[Document]],
                  out_dir: str | Path | None = None, target: float = TARGET,
                  level: float = LEVEL, uses_memory: bool = False, seed: int = 0,
                  device: str | None = "cpu", scope: str = "field"
                  ) -> tuple[Path, str, StraightThrough]:
    """``kvloop thresholds fit``: the calibration items of a saved model (one set of pages per
    OCR reading), the fitted :class:`StraightThrough`, written into the card (of a copy at
    ``out_dir``, else in place)."""
    from extractor.model.predictor import load_predictor

    predictor = load_predictor(model_dir, device)
    table = calibration_items(predictor, doc_sets, uses_memory)
    st = fit_straight_through(table, predictor.schema.field_names, target, level, uses_memory,
                              seed, scope=scope)
    # Results of the folder as it was score the same way (same weights and decisions): their
    # reviews are evidence for the new version too.
    st.scores_of = [predictor.version, *(predictor.acceptance.scores_of
                                         if predictor.acceptance else [])]
    out, version = save_with(model_dir, st, out_dir)
    return out, version, st
