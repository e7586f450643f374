"""Fitting a trained model's decisions on held-out documents: one reusable step.

After any trainer changes the weights, the same step chooses, on the calibration split (which
no trainer fits on):

1. the fusion weights of the two members and the "absent" threshold (best lenient F1 over a
   grid; one forward pass, every setting decoded from the same member log-probs);
2. with a lexicon, the OCR confidence under which text words are corrected (best F1), and
   the text fields to answer in capitals (``upper_fields``: more answers strictly right);
3. the confidence calibrator (``extractor.model.calibrate.fit_calibrator``);
4. each field's auto-accept threshold for a target precision on the calibrated confidences
   (``extractor.scoring.fit_auto_accept``; ``None``: that field is always reviewed).

Pages of another OCR engine (SROIE's calibration split as tesseract reads it) get a decision
profile of their own, fusion weights kept. :func:`fit_decisions` returns every choice; only
:meth:`Decisions.apply` changes the model and its card, once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from eval.field_scores import score_results
from extractor.document import Document, ExtractionResult, Schema
from extractor.lexicon import Lexicon, build_lexicon
from extractor.model.calibrate import DecisionProfile, fit_calibrator, profile_engine
from extractor.model.card import ModelCard, model_version
from extractor.model.ensemble import KVEnsemble, fuse
from extractor.model.predictor import KVPredictor
from extractor.scoring import (
    AutoAcceptFit,
    confidence_items,
    fit_auto_accept_fields,
    is_correct,
    pool_items,
)
from training.data import load_split

log = logging.getLogger(__name__)

ABSENT_THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.01)  # 1.01: never absent
# OCR confidence under which text words are corrected with the lexicon; 0: never (first, so
# ties keep the words as read; pages with given words have confidence 1 and always tie).
CORRECT_BELOW = (0.0, 0.8, 0.9, 0.95)
# (w_bert, w_layoutlm), the joint product first: it is kept unless another pair is better.
FUSION_GRID = ((1.0, 1.0), (1.0, 0.75), (1.0, 0.5), (1.0, 0.25), (1.0, 0.0),
               (0.75, 1.0), (0.5, 1.0), (0.25, 1.0), (0.0, 1.0))
AUTO_ACCEPT_TARGET = 0.99


@dataclass
class CalibrationFit:
    """What :func:`fit_calibration` chose on held-out documents, and the F1 behind it."""

    profile: DecisionProfile = field(default_factory=DecisionProfile)
    fusion_weights: tuple[float, float] = (1.0, 1.0)
    lenient_f1: float | None = None
    grid: list[dict[str, float]] = field(default_factory=list)
    items: dict[str, tuple[list[float], list[bool]]] = field(default_factory=dict)
    """Per field, the calibrated (confidence, correct) items of the chosen decisions."""

    def export(self) -> dict[str, Any]:
        out = {"fusion_weights": list(self.fusion_weights),
               "absent_threshold": self.profile.absent_threshold,
               "correct_below": self.profile.correct_below,
               "lenient_f1": self.lenient_f1, "grid": self.grid}
        if self.profile.upper_fields:
            out["upper_fields"] = list(self.profile.upper_fields)
        return out


def _f1(pred: KVPredictor, docs: Sequence[Document], golds: list[dict[str, str | None]],
        merged: Any) -> float:
    return score_results(golds, pred.results_from_merged(docs, merged)).summary()["lenient"]["f1"]


def fit_calibration(model: KVEnsemble, docs: Sequence[Document],
                    fusion_grid: Sequence[tuple[float, float]] | None = FUSION_GRID,
                    lexicon: Lexicon | None = None) -> CalibrationFit:
    """Fusion weights and absent threshold (best lenient F1), then with a ``lexicon`` the
    confidence under which words are corrected (best F1), then the calibrator, all fitted on
    ``docs``. The model is not changed (:meth:`Decisions.apply` sets the fusion weights).

    ``fusion_grid=None`` keeps the model's fusion weights (a profile for another OCR engine:
    the weights are part of the model, the decisions are per engine). Identity, (1, 1) and
    0.5 when ``docs`` is empty.
    """
    if not docs:
        return CalibrationFit()
    model.eval()
    member = KVPredictor(model).member_pass_log_probs(list(docs), ("bert", "layoutlm"))
    golds = [d.gold or {} for d in docs]

    def fused(weights: Sequence[float]) -> list[list[torch.Tensor]]:
        return [[fuse(b, lo, weights) for b, lo in zip(bs, ls)]
                for bs, ls in zip(member["bert"], member["layoutlm"])]

    def predictor(thr: float, below: float = 0.0) -> KVPredictor:
        return KVPredictor(model, DecisionProfile(absent_threshold=thr, correct_below=below),
                           lexicon=lexicon)

    current = tuple(model.fusion_weights.tolist())
    best: tuple[float, tuple[float, float], float] = (-1.0, current, 0.5)  # type: ignore[assignment]
    grid = []
    for weights in (fusion_grid if fusion_grid is not None else (current,)):
        merged = predictor(0.5).merged_fields(docs, fused(weights))  # the threshold only decides
        for thr in ABSENT_THRESHOLDS:
            f1 = _f1(predictor(thr), docs, golds, merged)
            grid.append({"w_bert": weights[0], "w_layoutlm": weights[1], "absent": thr,
                         "lenient_f1": f1})
            if f1 > best[0] + 1e-9:
                best = (f1, (float(weights[0]), float(weights[1])), thr)
    f1, weights, thr = best
    lps = fused(weights)
    correct_below = 0.0
    for below in (CORRECT_BELOW if lexicon is not None else ())[1:]:
        pred = predictor(thr, below)
        f1_below = _f1(pred, docs, golds, pred.merged_fields(docs, lps))
        grid.append({"w_bert": weights[0], "w_layoutlm": weights[1], "absent": thr,
                     "correct_below": below, "lenient_f1": f1_below})
        if f1_below > f1 + 1e-9:
            f1, correct_below = f1_below, below
    raw = predictor(thr, correct_below).results_from_log_probs(docs, lps)
    upper = upper_fields(model.schema, golds, raw)
    if upper:
        raw = KVPredictor(model, DecisionProfile(absent_threshold=thr, correct_below=correct_below,
                                                 upper_fields=upper),
                          lexicon=lexicon).results_from_log_probs(docs, lps)
    calibrator = fit_calibrator(*pool_items(confidence_items(golds, raw, model.schema.field_names)))
    profile = DecisionProfile(calibrator, thr, correct_below, upper)
    calibrated = KVPredictor(model, profile, lexicon=lexicon).results_from_log_probs(docs, lps)
    items = confidence_items(golds, calibrated, model.schema.field_names)
    return CalibrationFit(profile, weights, f1, grid, items)


def upper_fields(schema: Schema, golds: Sequence[Mapping[str, str | None]],
                 results: Sequence[ExtractionResult]) -> tuple[str, ...]:
    """The text fields whose answers are right (strictly) more often in capitals than as read.

    Ties keep the engine's case: only fields whose labels are written in capitals and whose
    pages print them otherwise change (SROIE read from images: the print's "Jalan Kurau"
    against the label's "JALAN KURAU").
    """
    out = []
    for spec in schema.fields:
        if spec.type != "text":
            continue
        as_read = in_capitals = 0
        for gold, res in zip(golds, results):
            answer = res.fields.get(spec.name)
            value = answer.value if answer is not None else None
            as_read += is_correct(gold.get(spec.name), value)
            in_capitals += is_correct(gold.get(spec.name), value.upper() if value else value)
        if in_capitals > as_read:
            out.append(spec.name)
    return tuple(out)


def fit_ocr_profiles(model: KVEnsemble, docs: Sequence[Document], default_engine: str,
                     lexicon: Lexicon | None = None) -> dict[str, CalibrationFit]:
    """A decision profile (fusion weights kept) per OCR engine of ``docs`` other than
    ``default_engine``, each fitted on that engine's pages."""
    by_engine: dict[str, list[Document]] = {}
    for d in docs:
        by_engine.setdefault(profile_engine(d.ocr), []).append(d)
    return {engine: fit_calibration(model, pages, fusion_grid=None, lexicon=lexicon)
            for engine, pages in by_engine.items() if engine != default_engine}


def fit_thresholds(fits: Sequence[CalibrationFit], target: float = AUTO_ACCEPT_TARGET,
                   level: float | None = None) -> dict[str, AutoAcceptFit]:
    """Per field, the auto-accept threshold that reaches ``target`` on every OCR engine's
    held-out pages (the highest of the engines' thresholds; ``None`` if any engine cannot):
    routing has one threshold per field, and the promise must hold whichever OCR read the
    page. ``level``: see ``extractor.scoring.fit_auto_accept`` (``None``: plain precision)."""
    per_engine = [fit_auto_accept_fields(f.items, target, level=level) for f in fits if f.items]
    out: dict[str, AutoAcceptFit] = {}
    for fits_of_engine in per_engine:
        for name, fit in fits_of_engine.items():
            prev = out.get(name)
            stricter = prev is not None and prev.threshold is not None and (
                fit.threshold is None or fit.threshold > prev.threshold)
            if prev is None or stricter:
                out[name] = fit
    return out


@dataclass
class Decisions:
    """Every choice of the decision step, ready to apply to a model and its card once."""

    default: CalibrationFit
    default_engine: str
    profiles: dict[str, CalibrationFit] = field(default_factory=dict)
    auto_accept: dict[str, AutoAcceptFit] = field(default_factory=dict)
    change_fusion: bool = True

    def apply(self, model: KVEnsemble, card: ModelCard) -> ModelCard:
        """Set the fusion weights on ``model``; return ``card`` with the decisions."""
        if self.change_fusion:
            model.set_fusion_weights(self.default.fusion_weights)
        card = model.card(card)
        card.decisions, card.calibration_ocr = self.default.profile, self.default_engine
        card.calibration_fit = self.default.export()
        card.ocr_profiles = {k: f.profile for k, f in self.profiles.items()}
        card.profile_fits = {k: {"lenient_f1": f.lenient_f1,
                                 "n_fields": f.profile.calibrator.n}
                             for k, f in self.profiles.items()}
        card.auto_accept = {k: f.threshold for k, f in self.auto_accept.items()}
        card.auto_accept_fit = {k: f.export() for k, f in self.auto_accept.items()}
        # Certified for other scores: the new decisions need a new fit (kvloop thresholds fit).
        card.straight_through = None
        return card


def fit_decisions(model: KVEnsemble, calib_docs: Sequence[Document],
                  profile_docs: Sequence[Document] = (), lexicon: Lexicon | None = None,
                  target: float = AUTO_ACCEPT_TARGET, level: float | None = None) -> Decisions:
    """The decision step of the module docstring on the calibration split (``calib_docs``
    as loaded, ``profile_docs`` the same pages read by another OCR engine)."""
    engine = profile_engine(calib_docs[0].ocr) if calib_docs else "provided"
    default = fit_calibration(model, calib_docs, lexicon=lexicon)
    with torch.no_grad():  # profiles are fitted with the chosen fusion weights
        current = model.fusion_weights.tolist()
        model.set_fusion_weights(default.fusion_weights)
        try:
            profiles = fit_ocr_profiles(model, profile_docs, engine, lexicon)
        finally:
            model.set_fusion_weights(current)
    thresholds = fit_thresholds([default, *profiles.values()], target, level)
    log.info("decisions: fusion %s, absent %s, lenient F1 %s; auto-accept %s",
             default.fusion_weights, default.profile.absent_threshold, default.lenient_f1,
             {k: f.threshold for k, f in thresholds.items()})
    return Decisions(default, engine, profiles, thresholds)


def add_missing_lexicon(model_dir: str | Path, spec: str, split: str,
                        max_docs: int | None = None) -> Lexicon:
    """The model's lexicon; a model saved before lexicons existed gets one built from the
    training pages as it was trained on them (its training config's ``ocr``), saved beside it."""
    found = Lexicon.load(model_dir)
    if found is not None:
        return found
    card = ModelCard.load(model_dir)
    ocr = card.training.config.get("ocr", "provided") if card.training else "provided"
    lexicon = build_lexicon(load_split(spec, split, ocr, max_docs))
    lexicon.save(model_dir)
    log.info("%s: built a lexicon of %d words from split %r", model_dir, len(lexicon), split)
    return lexicon


def recalibrate(model_dir: str | Path, docs: Sequence[Document]) -> tuple[str, CalibrationFit]:
    """Refit the decisions of a saved model on ``docs`` and rewrite its card (member weights
    unchanged). Returns the engine refitted and the fit.

    Pages read by the OCR engine of the model's calibration (``calibration_ocr``) refit the
    default: fusion weights, absent threshold, calibrator. Pages of another engine refit that
    engine's profile only (fusion weights kept). Auto-accept thresholds can only tighten: each
    field keeps the higher of its threshold and the one this fit needs (``None`` wins), since
    the other engines' items are not at hand.
    """
    if not docs:
        raise ValueError(f"{model_dir}: no documents to calibrate on")
    model, card = KVEnsemble.from_pretrained(model_dir)
    engine = profile_engine(docs[0].ocr)
    lexicon = Lexicon.load(model_dir)
    if engine == card.calibration_ocr:
        fit = fit_calibration(model, docs, lexicon=lexicon)
        model.set_fusion_weights(fit.fusion_weights)
        card = model.card(card)
        card.decisions, card.calibration_fit = fit.profile, fit.export()
    else:
        fit = fit_ocr_profiles(model, docs, card.calibration_ocr, lexicon)[engine]
        card.ocr_profiles = {**card.ocr_profiles, engine: fit.profile}
        card.profile_fits = {**card.profile_fits,
                             engine: {"lenient_f1": fit.lenient_f1,
                                      "n_fields": fit.profile.calibrator.n}}
    for name, new in fit_thresholds([fit]).items():
        old = card.auto_accept.get(name, new.threshold)
        tighter = None if new.threshold is None or old is None else max(old, new.threshold)
        if name not in card.auto_accept or tighter != old:
            card.auto_accept[name] = tighter
            card.auto_accept_fit[name] = new.export()
    card.straight_through = None  # certified on the old confidences: refit it
    card.save(model_dir)
    card.version = model_version(model_dir)
    card.save(model_dir)
    return engine, fit

