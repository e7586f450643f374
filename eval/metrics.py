"""Small stateful metrics: ``update(gt, pred)`` per document, ``summary()``, ``reset()``.

Each metric sees one document at a time (gold values and predictions as plain dicts or tag
lists), so the same objects serve a whole dataset, one field, or one bootstrap resample.
The SROIE task-3 rules: a (document, field) pair is a true positive only when the predicted
string equals the gold string under the comparison key (``strict_key`` collapses whitespace,
``lenient_key`` also removes it and folds case). An absent gold with no prediction counts for
nothing; a prediction for an absent field is a false positive; a wrong value is both a false
positive and a false negative.

These are metrics of extraction quality. Whether one answer is *correct*, what calibration,
ECE and auto-accept count, is ``extractor.scoring.is_correct``: the strict key, with "not
present" on an absent gold a correct answer (here it counts for nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from extractor.normalize import lenient_key, strict_key

KeyFn = Callable[[str | None], str]
KEYS: dict[str, KeyFn] = {"strict": strict_key, "lenient": lenient_key}


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 from counts (0.0 where undefined).

    >>> prf(3, 1, 1)
    {'precision': 0.75, 'recall': 0.75, 'f1': 0.75}
    """
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f}


@dataclass
class Counts:
    """True positives, false positives and false negatives of one field (or of all)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, tp: int, fp: int, fn: int) -> None:
        self.tp += tp
        self.fp += fp
        self.fn += fn

    def summary(self) -> dict[str, float]:
        return {**prf(self.tp, self.fp, self.fn), "tp": self.tp, "fp": self.fp, "fn": self.fn}


def judge(gold: str | None, pred: str | None, key: KeyFn = strict_key) -> tuple[int, int, int]:
    """(tp, fp, fn) of one (document, field) pair under the SROIE rules.

    >>> judge("27, JALAN  DEDAP", "27, JALAN DEDAP")
    (1, 0, 0)
    >>> judge("60.30", "6.30"), judge(None, "6.30"), judge("60.30", None), judge(None, "")
    ((0, 1, 1), (0, 1, 0), (0, 0, 1), (0, 0, 0))
    """
    g, p = key(gold), key(pred)
    if not g:
        return (0, 1 if p else 0, 0)
    if not p:
        return (0, 0, 1)
    return (1, 0, 0) if g == p else (0, 1, 1)


class FieldMatch:
    """SROIE task-3 P/R/F1 micro over (document, field), per field, and all-fields-correct rate.

    >>> m = FieldMatch(["company", "total"], key="lenient")
    >>> m.update({"company": "ABC  Sdn Bhd", "total": "9.00"},
    ...          {"company": "abc sdnbhd", "total": "9.00"})
    >>> m.update({"company": "XYZ", "total": None}, {"company": "XYZ", "total": "1.00"})
    >>> s = m.summary()
    >>> s["overall"]["tp"], s["overall"]["fp"], s["overall"]["fn"], s["doc_accuracy"]
    (3, 1, 0, 0.5)
    >>> round(s["overall"]["f1"], 4), s["fields"]["total"]["precision"]
    (0.8571, 0.5)
    """

    def __init__(self, fields: Sequence[str], key: str = "strict") -> None:
        if key not in KEYS:
            raise ValueError(f"key must be one of {sorted(KEYS)}, got {key!r}")
        self.fields = list(fields)
        self.key_name = key
        self.key = KEYS[key]
        self.reset()

    def reset(self) -> None:
        self.per_field = {f: Counts() for f in self.fields}
        self.docs = 0
        self.docs_all_correct = 0

    def update(self, gt: Mapping[str, str | None], pred: Mapping[str, str | None]) -> None:
        all_ok = True
        for f in self.fields:
            tp, fp, fn = judge(gt.get(f), pred.get(f), self.key)
            self.per_field[f].add(tp, fp, fn)
            all_ok &= fp == 0 and fn == 0
        self.docs += 1
        self.docs_all_correct += int(all_ok)

    def summary(self) -> dict:
        total = Counts()
        for c in self.per_field.values():
            total.add(c.tp, c.fp, c.fn)
        return {
            "key": self.key_name,
            "overall": total.summary(),
            "fields": {f: c.summary() for f, c in self.per_field.items()},
            "doc_accuracy": self.docs_all_correct / self.docs if self.docs else 0.0,
            "docs": self.docs,
        }


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert, delete, substitute each cost 1).

    >>> levenshtein("kitten", "sitting"), levenshtein("", "abc"), levenshtein("abc", "abc")
    (3, 3, 0)
    """
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def edit_similarity(gold: str | None, pred: str | None) -> float:
    """Normalised edit similarity ``1 - lev / max(len)`` on strict keys (1.0 when both empty).

    >>> edit_similarity("60.30", "60.80"), edit_similarity("ABC", None), edit_similarity(None, "")
    (0.8, 0.0, 1.0)
    """
    g, p = strict_key(gold), strict_key(pred)
    if not g and not p:
        return 1.0
    return 1.0 - levenshtein(g, p) / max(len(g), len(p))


class EditSimilarity:
    """ANLS-style soft score: mean normalised edit similarity over (document, field) pairs.

    Pairs where gold and prediction are both absent are skipped (as in task-3 P/R/F1).
    ``anls`` zeroes similarities below ``tau`` (0.5, as in DocVQA's ANLS), ``nes`` does not.

    >>> m = EditSimilarity(["total"])
    >>> m.update({"total": "60.30"}, {"total": "60.80"})
    >>> m.update({"total": "1.00"}, {"total": "xyz"})
    >>> m.update({"total": None}, {"total": None})
    >>> s = m.summary(); s["overall"]["nes"], s["overall"]["anls"], s["overall"]["n"]
    (0.4, 0.4, 2)
    """

    def __init__(self, fields: Sequence[str], tau: float = 0.5) -> None:
        self.fields = list(fields)
        self.tau = tau
        self.reset()

    def reset(self) -> None:
        self.sims: dict[str, list[float]] = {f: [] for f in self.fields}

    def update(self, gt: Mapping[str, str | None], pred: Mapping[str, str | None]) -> None:
        for f in self.fields:
            g, p = gt.get(f), pred.get(f)
            if strict_key(g) or strict_key(p):
                self.sims[f].append(edit_similarity(g, p))

    def _stats(self, sims: list[float]) -> dict[str, float]:
        n = len(sims)
        return {"nes": sum(sims) / n if n else 0.0,
                "anls": sum(s for s in sims if s >= self.tau) / n if n else 0.0, "n": n}

    def summary(self) -> dict:
        every = [s for f in self.fields for s in self.sims[f]]
        return {"overall": self._stats(every),
                "fields": {f: self._stats(self.sims[f]) for f in self.fields}, "tau": self.tau}


class OracleRecallAtK:
    """Share of present gold values found among the top-k candidates, for k = 1..max_k.

    Recall@1 equals task-3 recall; the gap to recall@5 is what choosing an alternative
    candidate (an operator click) could fix.

    >>> m = OracleRecallAtK(["total"], max_k=3)
    >>> m.update({"total": "9.00"}, {"total": ["8.00", "9.00"]})
    >>> m.update({"total": "1.00"}, {"total": ["1.00"]}); m.update({"total": "2.00"}, {"total": []})
    >>> [round(v, 3) for v in m.summary()["overall"].values()]
    [0.333, 0.667, 0.667]
    """

    def __init__(self, fields: Sequence[str], max_k: int = 5, key: str = "strict") -> None:
        self.fields = list(fields)
        self.max_k = max_k
        self.key = KEYS[key]
        self.key_name = key
        self.reset()

    def reset(self) -> None:
        self.hits = {f: [0] * self.max_k for f in self.fields}
        self.n = {f: 0 for f in self.fields}

    def update(self, gt: Mapping[str, str | None], pred: Mapping[str, Sequence[str]]) -> None:
        for f in self.fields:
            g = self.key(gt.get(f))
            if not g:
                continue
            self.n[f] += 1
            ranks = [i for i, v in enumerate(pred.get(f, [])[: self.max_k]) if self.key(v) == g]
            if ranks:
                for k in range(ranks[0], self.max_k):
                    self.hits[f][k] += 1

    def _at(self, hits: list[int], n: int) -> dict[str, float]:
        return {f"@{k + 1}": hits[k] / n if n else 0.0 for k in range(self.max_k)}

    def summary(self) -> dict:
        hits = [sum(self.hits[f][k] for f in self.fields) for k in range(self.max_k)]
        return {"overall": self._at(hits, sum(self.n.values())), "key": self.key_name,
                "fields": {f: self._at(self.hits[f], self.n[f]) for f in self.fields}}


class TokenBIO:
    """Token-level BIO entity P/R/F1 (seqeval, conlleval rules), overall and per entity type.

    >>> m = TokenBIO()
    >>> m.update(["B-TOTAL", "O", "B-DATE", "I-DATE"], ["B-TOTAL", "O", "B-DATE", "O"])
    >>> s = m.summary()
    >>> s["overall"]["precision"], s["fields"]["TOTAL"]["f1"], s["fields"]["DATE"]["f1"]
    (0.5, 1.0, 0.0)
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.gold: list[list[str]] = []
        self.pred: list[list[str]] = []

    def update(self, gt: Sequence[str], pred: Sequence[str]) -> None:
        if len(gt) != len(pred):
            raise ValueError(f"BIO tag sequences differ in length: {len(gt)} gold vs "
                             f"{len(pred)} predicted")
        self.gold.append(list(gt))
        self.pred.append(list(pred))

    def summary(self) -> dict:
        from seqeval.metrics import classification_report

        if not any(self.gold) and not any(self.pred):
            return {"overall": prf(0, 0, 0), "fields": {}, "docs": 0}
        rep = classification_report(self.gold, self.pred, output_dict=True, zero_division=0)
        fields = {k: _bio_row(v) for k, v in rep.items() if not k.endswith(" avg")}
        return {"overall": _bio_row(rep["micro avg"]), "fields": fields, "docs": len(self.gold)}


def _bio_row(row: Mapping[str, float]) -> dict[str, float]:
    return {"precision": float(row["precision"]), "recall": float(row["recall"]),
            "f1": float(row["f1-score"]), "support": int(row["support"])}
