"""Score one model's results on one set of documents: every metric, plus per-document rows.

``evaluate_results`` is the pure core of ``kvloop eval``: documents with gold values and the
extractor's ``ExtractionResult``s in, a ``RunEval`` out (a JSON-ready summary, one
``FieldOutcome`` per (document, field) for the gallery, and per-document statistics that the
paired bootstrap resamples).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from eval.calibration import Calibration
from eval.metrics import (
    EditSimilarity,
    FieldMatch,
    OracleRecallAtK,
    TokenBIO,
    edit_similarity,
    judge,
)
from eval.savings import savings
from eval.straight_through import Effort, straight_through_metrics
from extractor.document import Document, ExtractionResult, Schema
from extractor.normalize import lenient_key, strict_key
from extractor.scoring import Items, confidence_item, pool_items
from extractor.straight_through import StraightThrough


@dataclass
class FieldOutcome:
    """The model's answer for one (document, field) next to the gold value."""

    doc_id: str
    field: str
    gold: str | None
    pred: str | None
    confidence: float
    candidates: list[str]
    pred_words: list[int]
    strict_ok: bool
    lenient_ok: bool
    similarity: float


@dataclass
class RunEval:
    """Everything measured for one (model, OCR pass) on one dataset."""

    model: str
    ocr: str
    data: str
    metrics: dict
    outcomes: list[FieldOutcome]
    doc_ids: list[str]
    doc_stats: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-document additive rows (docs in ``doc_ids`` order) for the paired bootstrap."""
    problems: list[str] = field(default_factory=list)


def tags_from_result(result: ExtractionResult, n_words: int, schema: Schema) -> list[str]:
    """Predicted BIO tags derived from each field's top candidate ``word_indices``.

    Used when only a results file is at hand (no model to ask for ``word_tags``). Words claimed
    by two fields keep the first field's tag (schema order).

    >>> from extractor.document import Candidate, FieldResult, RECEIPT_SCHEMA
    >>> top = Candidate("9", .9, [3, 2])
    >>> r = ExtractionResult("d", "m", {"total": FieldResult("total", [top])})
    >>> tags_from_result(r, 5, RECEIPT_SCHEMA)
    ['O', 'O', 'B-TOTAL', 'I-TOTAL', 'O']
    """
    tags = ["O"] * n_words
    for name in schema.field_names:
        fr = result.fields.get(name)
        top = fr.top if fr else None
        idx = sorted(i for i in (top.word_indices if top else []) if 0 <= i < n_words)
        free = [i for i in idx if tags[i] == "O"]
        for j, i in enumerate(free):
            tags[i] = f"{'B' if j == 0 else 'I'}-{name.upper()}"
    return tags


def _field_rows(fields: Sequence[str], gold: Mapping[str, str | None],
                pred: Mapping[str, str | None]) -> np.ndarray:
    """Per-field [tp, fp, fn] for strict and lenient keys: shape (2, n_fields, 3)."""
    return np.array([[judge(gold.get(f), pred.get(f), k) for f in fields]
                     for k in (strict_key, lenient_key)])


def evaluate_results(docs: Sequence[Document], results: Sequence[ExtractionResult],
                     schema: Schema, *, model: str, data: str, ocr: str = "provided",
                     gold_tags: Mapping[str, Sequence[str]] | None = None,
                     pred_tags: Mapping[str, Sequence[str]] | None = None,
                     max_k: int = 5, acceptance: StraightThrough | None = None,
                     effort: Effort | None = None) -> RunEval:
    """All metrics of ``results`` against the gold values of ``docs``.

    A document with no result counts as "nothing predicted" (and is listed in ``problems``);
    a result for an unknown document or a document without gold is ignored and listed.
    Confidence items for calibration and savings are ``extractor.scoring.confidence_item``'s,
    for every (document, field), "not present" included (what training calibrates on);
    confidences outside [0, 1] are clipped and listed. With ``acceptance`` (the model card's
    certified straight-through section), ``straight_through`` holds its coverage and
    realised precision (``eval.straight_through``); with ``effort`` too, minutes saved.
    """
    names = schema.field_names
    by_id = {r.doc_id: r for r in results}
    problems: list[str] = []
    strict, lenient = FieldMatch(names, "strict"), FieldMatch(names, "lenient")
    soft = EditSimilarity(names)
    oracle = OracleRecallAtK(names, max_k, "strict")
    oracle_len = OracleRecallAtK(names, max_k, "lenient")
    calib, bio = Calibration(), TokenBIO()
    outcomes: list[FieldOutcome] = []
    doc_ids: list[str] = []
    rows: dict[str, list] = {"fields": [], "all_correct": [], "nes": [], "anls": []}
    items: Items = {f: ([], []) for f in names}
    for doc in docs:
        if doc.gold is None:
            problems.append(f"{doc.id}: no gold values, not scored")
            continue
        res = by_id.get(doc.id)
        if res is None:
            problems.append(f"{doc.id}: no result for this document (counted as no prediction)")
            res = ExtractionResult(doc.id, model, {})
        gold = {f: doc.gold.get(f) for f in names}
        pred = {f: (res.fields[f].value if f in res.fields else None) for f in names}
        cands = {f: [c.value for c in res.fields[f].candidates] if f in res.fields else []
                 for f in names}
        for m in (strict, lenient, soft):
            m.update(gold, pred)
        oracle.update(gold, cands)
        oracle_len.update(gold, cands)
        frows = _field_rows(names, gold, pred)
        all_ok = bool((frows[0][:, 1:] == 0).all())
        sims = [edit_similarity(gold[f], pred[f]) for f in names
                if strict_key(gold[f]) or strict_key(pred[f])]
        doc_ids.append(doc.id)
        rows["fields"].append(frows)
        rows["all_correct"].append([float(all_ok), 1.0])
        rows["nes"].append([sum(sims), len(sims)])
        rows["anls"].append([sum(s for s in sims if s >= soft.tau), len(sims)])
        for f in names:
            fr = res.fields.get(f)
            conf, ok = confidence_item(gold[f], fr)
            raw = float(fr.confidence) if fr else 0.0
            if not 0.0 <= raw <= 1.0:
                problems.append(f"{doc.id}/{f}: confidence {raw} outside [0, 1], clipped")
            calib.update(f, conf, ok)
            items[f][0].append(conf)
            items[f][1].append(ok)
            outcomes.append(FieldOutcome(
                doc.id, f, gold[f], pred[f], conf, cands[f],
                list(fr.top.word_indices) if fr and fr.top else [], ok,
                lenient_key(gold[f]) == lenient_key(pred[f]),
                edit_similarity(gold[f], pred[f])))
        if gold_tags is not None and doc.id in gold_tags:
            pt = (pred_tags[doc.id] if pred_tags is not None and doc.id in pred_tags
                  else tags_from_result(res, len(doc.words), schema))
            bio.update(gold_tags[doc.id], pt)
    known = {d.id for d in docs}
    problems += [f"{r.doc_id}: result for a document not in the data, ignored"
                 for r in results if r.doc_id not in known]
    every_conf, every_ok = pool_items(items)
    metrics = {
        "n_docs": len(doc_ids),
        "strict": strict.summary(), "lenient": lenient.summary(),
        "edit_similarity": soft.summary(),
        "oracle_recall": oracle.summary(), "oracle_recall_lenient": oracle_len.summary(),
        "calibration": calib.summary(),
        "bio": bio.summary() if gold_tags is not None else None,
        "savings": {"overall": savings(every_conf, every_ok),
                    "fields": {f: savings(items[f][0], items[f][1],
                                          configured=schema[f].auto_accept) for f in names}},
        "straight_through": (straight_through_metrics(docs, results, schema, acceptance, effort)
                             if acceptance is not None else None),
    }
    stats = {
        "fields": np.array(rows["fields"]).reshape(len(doc_ids), 2, len(names), 3),
        "all_correct": np.array(rows["all_correct"]).reshape(-1, 2),
        "nes": np.array(rows["nes"]).reshape(-1, 2),
        "anls": np.array(rows["anls"]).reshape(-1, 2),
    }
    return RunEval(model=model, ocr=ocr, data=data, metrics=metrics, outcomes=outcomes,
                   doc_ids=doc_ids, doc_stats=stats, problems=problems)
