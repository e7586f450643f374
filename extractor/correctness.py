"""P(correct): a small model of whether an extracted field is right, beyond its confidence.

The extractor's calibrated confidence is one number per answer. What else a page says about
an answer is cheap to read and often decisive:

* ``margin``: how far the top candidate's score is ahead of the next one;
* ``readings``: the share of the page's OCR readings (``doc.words`` and every
  ``doc.variants`` pass) whose text spells the value, and ``sources``: how many independent
  OCR engines among them do (the engine is the part of a pass name before ``:``,
  ``extractor.model.calibrate.ocr_engine``; a page read by two engines that agree counts 2);
* ``type_ok``: the value passes its type's check (a date parses, an amount is money);
  ``amount_repeated`` / ``amount_largest``: an amount is printed more than once on the page /
  is the largest amount on it (a receipt's total usually is both);
* ``keyword``: the line of the value carries its field's key word (``TOTAL``, ``DATE``);
* ``memory``: +1 when the value equals what operators confirmed for the page's vendor
  (``extractor.vendor_memory``), -1 when it differs, 0 when nothing is known;
* position (``y``: the value's height on the page), the words' OCR confidence, the length.

:class:`CorrectnessModel` is a logistic regression over these features (standardised, plus a
one-hot of the field), fitted by log-loss, which makes its output a calibrated probability on
the data it is fitted on (Platt 1999). It is saved as plain numbers in the model card: no
pickle, nothing to unpickle from a card someone sent. It replaces neither the extractor nor its
confidence calibration: it reads them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from extractor.document import Document, FieldResult, FieldSpec, Word
from extractor.model.calibrate import ocr_engine
from extractor.normalize import lenient_key, parse_amount, validate_value
from extractor.vendor_memory import VendorMemory

FEATURES: tuple[str, ...] = (
    "logit_confidence", "absent", "margin", "readings", "sources", "type_ok",
    "amount_repeated", "amount_largest", "keyword", "memory", "y", "ocr_confidence",
    "log_length", "given_words")
KEYWORDS: dict[str, tuple[str, ...]] = {"amount": ("total", "amount", "due"),
                                        "date": ("date", "tarikh")}
_EPS = 1e-4


_LABEL_EDGES = re.compile(r"^[^\d\-]+|\D+$")  # what a word holds before and after its number


def amounts_on_page(doc: Document) -> set[float]:
    """Every amount a word (or two adjacent words, such as ``RM 9.00``) reads as, also with a
    label glued to it (``TOTAL:60.30``, ``:9,000``); the numbers of a date are no amounts."""
    out: set[float] = set()
    texts = [w.text for w in doc.words]
    for i, t in enumerate(texts):
        for s in (t, f"{t} {texts[i + 1]}" if i + 1 < len(texts) else t,
                  _LABEL_EDGES.sub("", t)):
            v = parse_amount(s)
            if v is not None:
                out.add(round(v, 2))
    return out


def _amount_counts(doc: Document) -> dict[float, int]:
    counts: dict[float, int] = {}
    for w in doc.words:
        v = parse_amount(w.text)
        if v is not None:
            counts[round(v, 2)] = counts.get(round(v, 2), 0) + 1
    return counts


def _passes(doc: Document) -> list[tuple[str, list[Word]]]:
    return [(doc.ocr, doc.words), *doc.variants.items()]


def readings(doc: Document, value: str) -> tuple[float, int]:
    """(share of OCR readings whose text spells ``value``, distinct engines among them)."""
    key = lenient_key(value)
    passes = _passes(doc)
    agree = [name for name, words in passes if key and key in lenient_key(
        " ".join(w.text for w in words))]
    return len(agree) / len(passes), len({ocr_engine(n) for n in agree})


def _value_words(doc: Document, fr: FieldResult) -> list[Word]:
    top = fr.top
    idx = [i for i in (top.word_indices if top else []) if 0 <= i < len(doc.words)]
    return [doc.words[i] for i in idx]


def _keyword_on_line(doc: Document, words: list[Word], spec: FieldSpec) -> float:
    keys = KEYWORDS.get(spec.type, ())
    lines = {w.line for w in words if w.line >= 0}
    if not keys or not lines:
        return 0.0
    line_text = " ".join(w.text.lower() for w in doc.words if w.line in lines)
    return float(any(k in line_text for k in keys))


def field_features(doc: Document, fr: FieldResult | None, spec: FieldSpec,
                   memory: VendorMemory | None = None) -> list[float]:
    """The :data:`FEATURES` of one answer (a missing ``fr`` is "not present" at 0)."""
    fr = fr or FieldResult(spec.name, [], 0.0)
    conf = min(max(float(fr.confidence), _EPS), 1 - _EPS)
    logit = math.log(conf) - math.log1p(-conf)
    given = float(ocr_engine(doc.ocr) == "provided")
    value = fr.value
    if value is None or not value.strip():
        return [logit, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 0.0, given]
    scores = [c.score for c in fr.candidates]
    margin = scores[0] - (scores[1] if len(scores) > 1 else 0.0)
    share, engines = readings(doc, value)
    type_ok = float(validate_value(value, spec.type) is None)
    repeated = largest = 0.0
    if spec.type == "amount" and (v := parse_amount(value)) is not None:
        counts = _amount_counts(doc)
        repeated = float(counts.get(round(v, 2), 0) >= 2)
        largest = float(bool(counts) and round(v, 2) >= max(counts))
    words = _value_words(doc, fr)
    y = (float(np.mean([(w.box[1] + w.box[3]) / 2 for w in words])) / max(doc.height, 1)
         if words else 0.5)
    ocr_conf = min((w.confidence for w in words), default=1.0)
    return [logit, 0.0, margin, share, float(min(engines, 3)), type_ok, repeated, largest,
            _keyword_on_line(doc, words, spec), _memory_vote(doc, spec.name, value, memory), y,
            ocr_conf, math.log1p(len(value)), given]


def _memory_vote(doc: Document, name: str, value: str, memory: VendorMemory | None) -> float:
    if memory is None or name not in memory.fields:
        return 0.0
    vendor = memory.vendor_of(doc)
    known = memory.vendors.get(vendor, {}).get(name) if vendor is not None else None
    if known is None:
        return 0.0
    return 1.0 if lenient_key(known) == lenient_key(value) else -1.0


@dataclass
class CorrectnessModel:
    """Logistic regression over standardised :data:`FEATURES` plus a one-hot of the field.

    ``coef`` has one weight per feature then one per field of ``fields``; ``mean``/``scale``
    standardise the features (not the one-hot).
    """

    fields: list[str]
    coef: list[float]
    intercept: float
    mean: list[float]
    scale: list[float]
    features: list[str] = field(default_factory=lambda: list(FEATURES))
    n: int = 0
    C: float = 1.0

    def design(self, X: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """[n, F] features and their field names -> the [n, F + fields] design matrix."""
        Z = (X - np.asarray(self.mean)) / np.asarray(self.scale)
        onehot = np.array([[float(n == f) for f in self.fields] for n in names]).reshape(
            len(names), len(self.fields))
        return np.hstack([Z, onehot])

    def predict(self, X: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """P(correct) per row: ``sigmoid(design @ coef + intercept)``."""
        if len(names) == 0:
            return np.zeros(0)
        z = self.design(np.asarray(X, dtype=float), names) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def export(self) -> dict[str, Any]:
        return {"kind": "logistic", "fields": self.fields, "features": self.features,
                "coef": self.coef, "intercept": self.intercept, "mean": self.mean,
                "scale": self.scale, "n": self.n, "C": self.C}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CorrectnessModel:
        if d.get("kind") != "logistic":
            raise ValueError(f"unknown correctness model kind {d.get('kind')!r}")
        features = [str(f) for f in d["features"]]
        if features != list(FEATURES):
            raise ValueError(f"correctness model features {features} are not this version's "
                             f"{list(FEATURES)}; refit it (kvloop thresholds fit)")
        m = cls([str(f) for f in d["fields"]], [float(c) for c in d["coef"]],
                float(d["intercept"]), [float(v) for v in d["mean"]],
                [float(v) for v in d["scale"]], features, int(d.get("n", 0)),
                float(d.get("C", 1.0)))
        if len(m.coef) != len(FEATURES) + len(m.fields) or len(m.mean) != len(FEATURES):
            raise ValueError("correctness model: coefficient count does not fit its features")
        return m


def fit_correctness(X: np.ndarray, names: Sequence[str], correct: Sequence[bool],
                    fields: Sequence[str], C: float = 1.0, seed: int = 0) -> CorrectnessModel:
    """Fit :class:`CorrectnessModel` on items ``X`` [n, F] of fields ``names``.

    One-class data (every item right, or every item wrong) cannot be fitted: the model is then
    the constant share of right items, which certifies nothing it has not seen.
    """
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(X, dtype=float)
    y = np.asarray(correct, dtype=bool)
    mean = X.mean(axis=0) if len(X) else np.zeros(len(FEATURES))
    scale = X.std(axis=0) if len(X) else np.ones(len(FEATURES))
    scale = np.where(scale > 1e-9, scale, 1.0)
    model = CorrectnessModel(list(fields), [0.0] * (len(FEATURES) + len(fields)), 0.0,
                             mean.tolist(), scale.tolist(), n=len(y), C=C)
    if len(y) == 0 or y.all() or not y.any():
        share = float(y.mean()) if len(y) else 0.5
        share = min(max(share, _EPS), 1 - _EPS)
        model.intercept = math.log(share) - math.log1p(-share)
        return model
    lr = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    lr.fit(model.design(X, names), y)
    model.coef = [float(c) for c in lr.coef_[0]]
    model.intercept = float(lr.intercept_[0])
    return model
