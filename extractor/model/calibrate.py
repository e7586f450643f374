"""Calibrating the top-1 field confidence.

The raw confidence of a field is the decoder's merged probability of its top value. Two
calibrator families are fitted on the calibration split and the one with the lower
cross-validated ECE (5 folds) is kept, the smooth one unless the step function beats it by
more than ``ISOTONIC_MARGIN``:

* ``temperature+bias``: ``p' = sigmoid(logit(p) / T + b)`` (Guo et al. 2017, "On Calibration
  of Modern Neural Networks", Sec. 4.2, with Platt's bias term), fitted by negative
  log-likelihood; smooth and keeps every distinction between scores;
* ``isotonic``: a monotone step function (Zadrozny & Elkan 2002; scikit-learn's
  ``IsotonicRegression``), for scores whose accuracy is not a sigmoid of their logit. Merged
  scores of several tesseract passes are such scores: a value read by k of 5 passes scores
  about k/5 of its probability, and no temperature fits those clusters (SROIE dev, session-2
  model: ECE 0.097 with temperature+bias fitted on the calibration split, 0.045 isotonic).

The (confidence, correct) items and the ECE are ``extractor.scoring``'s (``is_correct``,
``confidence_items``, ``expected_calibration_error``), the same ones ``kvloop eval`` reports.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from extractor.document import TEXT_LAYER_OCR, FieldSpec
from extractor.scoring import expected_calibration_error

_EPS = 1e-6


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(_EPS, 1 - _EPS)
    return torch.log(p) - torch.log1p(-p)


CALIBRATION_METHODS = ("temperature+bias", "isotonic")


@dataclass
class Calibrator:
    """``p' = sigmoid(logit(p) / temperature + bias)``, or with ``method="isotonic"`` the
    piecewise-linear curve through ``points`` (``(raw, calibrated)``, raw increasing); the
    identity by default."""

    temperature: float = 1.0
    bias: float = 0.0
    n: int = 0  # how many (field, document) pairs it was fitted on
    method: str = "temperature+bias"
    points: list[tuple[float, float]] = field(default_factory=list)
    cv_ece: dict[str, float] = field(default_factory=dict)  # per family, when chosen by CV

    def __call__(self, p: float) -> float:
        if self.method == "isotonic":
            xs, ys = zip(*self.points)
            return float(np.interp(float(p), xs, ys))
        z = _logit(torch.tensor(float(p), dtype=torch.float64)) / self.temperature + self.bias
        return float(torch.sigmoid(z))

    def export(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "temperature": self.temperature,
                               "bias": self.bias, "n": self.n}
        if self.points:
            out["points"] = [list(pt) for pt in self.points]
        if self.cv_ece:
            out["cv_ece"] = dict(self.cv_ece)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Calibrator:
        if not d:
            return cls()
        method = d.get("method", "temperature+bias")
        if method not in CALIBRATION_METHODS:
            raise ValueError(f"unknown calibration method {method!r}")
        return cls(float(d.get("temperature", 1.0)), float(d.get("bias", 0.0)),
                   int(d.get("n", 0)), method,
                   [(float(x), float(y)) for x, y in d.get("points", [])],
                   {k: float(v) for k, v in d.get("cv_ece", {}).items()})


@dataclass
class DecisionProfile:
    """How fields of pages read by one OCR engine become answers: the P(absent) at or above
    which a field is reported missing, and the calibrator of the top-1 confidence.

    Pages read by tesseract carry OCR errors that pages with given words do not, so the same
    probability is right less often there (SROIE dev, session-2 model: ECE 0.15 on tesseract
    pages with the provided-OCR calibrator); ``KVPredictor`` keeps one profile per engine.
    """

    calibrator: Calibrator = field(default_factory=Calibrator)
    absent_threshold: float = 0.5
    # Text-field words read with confidence below this are corrected with the model's lexicon
    # (``extractor.lexicon``); 0 = never.
    correct_below: float = 0.0
    # Text fields whose values are given in capitals: the labels write them so (SROIE's are
    # transcribed in capitals) while an engine reads the print's own case ("Jalan Kurau").
    # Chosen per engine on the calibration split (``training.decisions``); empty: as read.
    upper_fields: tuple[str, ...] = ()

    def export(self) -> dict[str, Any]:
        out: dict[str, Any] = {"calibration": self.calibrator.export(),
                               "absent_threshold": self.absent_threshold,
                               "correct_below": self.correct_below}
        if self.upper_fields:  # profiles without it export as before (same model versions)
            out["upper_fields"] = list(self.upper_fields)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DecisionProfile:
        return cls(Calibrator.from_dict(d.get("calibration")),
                   float(d.get("absent_threshold", 0.5)), float(d.get("correct_below", 0.0)),
                   tuple(str(f) for f in d.get("upper_fields", ())))

    def written(self, spec: FieldSpec, value: str) -> str:
        """``value`` as this profile writes answers of the field ``spec``."""
        return value.upper() if spec.type == "text" and spec.name in self.upper_fields else value


def ocr_engine(ocr: str) -> str:
    """The engine part of a document's ``ocr`` name.

    >>> ocr_engine("tesseract:psm6"), ocr_engine("provided")
    ('tesseract', 'provided')
    """
    return ocr.split(":", 1)[0]


# Words from a PDF's text layer are exact, as a dataset's provided words are, so such pages are
# decided with the provided-OCR profile: the tesseract profile's lower absent threshold and
# lexicon corrections answer OCR errors these pages do not have.
_PROFILE_ENGINE = {TEXT_LAYER_OCR: "provided"}


def profile_engine(ocr: str) -> str:
    """The engine whose decision profile a page of ``ocr`` takes.

    >>> profile_engine("tesseract:psm6"), profile_engine("pdf-text"), profile_engine("provided")
    ('tesseract', 'provided', 'provided')
    """
    engine = ocr_engine(ocr)
    return _PROFILE_ENGINE.get(engine, engine)


def fit_temperature(confidences: Sequence[float], correct: Sequence[bool],
                    steps: int = 200) -> Calibrator:
    """Temperature and bias by NLL (LBFGS)."""
    z = _logit(torch.tensor(confidences, dtype=torch.float64))
    y = torch.tensor([float(c) for c in correct], dtype=torch.float64)
    log_inv_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_inv_t, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            z * log_inv_t.exp() + bias, y)
        loss.backward()
        return loss

    opt.step(closure)
    return Calibrator(float(math.exp(-log_inv_t.item())), float(bias.item()), len(confidences))


def fit_isotonic(confidences: Sequence[float], correct: Sequence[bool]) -> Calibrator:
    """The monotone step function of best squared error, kept off 0 and 1 (a calibrated
    confidence of exactly 1 would claim a field can never be wrong)."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=_ISOTONIC_FLOOR, y_max=1 - _ISOTONIC_FLOOR,
                             out_of_bounds="clip")
    iso.fit(np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float))
    points = [(float(x), float(y)) for x, y in zip(iso.X_thresholds_, iso.y_thresholds_)]
    return Calibrator(n=len(confidences), method="isotonic", points=points)


_FITTERS = {"temperature+bias": fit_temperature, "isotonic": fit_isotonic}
_ISOTONIC_FLOOR = 0.005
# The ECE of a few hundred fields is noisy by about a point, and temperature scaling keeps every
# distinction between scores (a step function ties them), so isotonic must win by more.
ISOTONIC_MARGIN = 0.01


def cross_validated_ece(method: str, confidences: Sequence[float], correct: Sequence[bool],
                        folds: int = 5, seed: int = 0) -> float:
    """ECE of ``method``'s calibrators on held-out folds (each item calibrated once, by the
    calibrator fitted on the other folds)."""
    order = list(range(len(confidences)))
    random.Random(seed).shuffle(order)
    calibrated: list[float] = [0.0] * len(order)
    for f in range(folds):
        held = set(order[f::folds])
        train = [i for i in order if i not in held]
        ys = [correct[i] for i in train]
        if all(ys) or not any(ys):
            cal = Calibrator()
        else:
            cal = _FITTERS[method]([confidences[i] for i in train], ys)
        for i in held:
            calibrated[i] = cal(confidences[i])
    return expected_calibration_error(calibrated, correct)


def fit_calibrator(confidences: Sequence[float], correct: Sequence[bool],
                   methods: Sequence[str] = CALIBRATION_METHODS) -> Calibrator:
    """The family of ``methods`` with the lowest 5-fold cross-validated ECE (the first one
    unless another is lower by ``ISOTONIC_MARGIN``), refitted on all the data; too few or
    one-class data give the identity."""
    if len(confidences) != len(correct):
        raise ValueError("confidences and correct must have the same length")
    if len(confidences) < 10 or all(correct) or not any(correct):
        return Calibrator(n=len(confidences))
    for m in methods:
        if m not in _FITTERS:
            raise ValueError(f"unknown calibration method {m!r}; choose from {CALIBRATION_METHODS}")
    if len(methods) == 1:
        return _FITTERS[methods[0]](confidences, correct)
    scores = {m: cross_validated_ece(m, confidences, correct) for m in methods}
    best = methods[0]
    for m in methods[1:]:
        if scores[m] < scores[best] - ISOTONIC_MARGIN:
            best = m
    cal = _FITTERS[best](confidences, correct)
    cal.cv_ece = {m: round(v, 6) for m, v in scores.items()}
    return cal

