"""Model-vs-model differences with paired bootstrap intervals over the shared documents."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from eval.bootstrap import f1_of_counts, mean_of, paired_bootstrap
from eval.evaluate import RunEval


def _aligned(a: RunEval, b: RunEval) -> tuple[list[int], list[int]]:
    """Row indices of the documents both runs scored, in ``a``'s order."""
    pos_b = {d: i for i, d in enumerate(b.doc_ids)}
    common = [(i, pos_b[d]) for i, d in enumerate(a.doc_ids) if d in pos_b]
    return [i for i, _ in common], [j for _, j in common]


def compare_pair(a: RunEval, b: RunEval, fields: Sequence[str], n_boot: int = 1000,
                 seed: int = 0) -> dict:
    """``b - a`` for the headline metrics and per-field strict F1, each with a 95% CI."""
    ia, ib = _aligned(a, b)
    sa = {k: v[ia] for k, v in a.doc_stats.items()}
    sb = {k: v[ib] for k, v in b.doc_stats.items()}
    same = a.model == b.model  # an OCR comparison: name the runs by their OCR pass
    out: dict = {"a": f"{a.model} [{a.ocr}]" if same else a.model,
                 "b": f"{b.model} [{b.ocr}]" if same else b.model, "ocr_a": a.ocr, "ocr_b": b.ocr,
                 "n_docs": len(ia), "metrics": {}}

    def add(name: str, xa: np.ndarray, xb: np.ndarray, fn) -> None:
        out["metrics"][name] = paired_bootstrap(xa, xb, fn, n_boot=n_boot, seed=seed).export()

    # fields stats: (docs, key[strict, lenient], field, [tp, fp, fn])
    add("strict_f1", sa["fields"][:, 0].sum(1), sb["fields"][:, 0].sum(1), f1_of_counts)
    add("lenient_f1", sa["fields"][:, 1].sum(1), sb["fields"][:, 1].sum(1), f1_of_counts)
    add("doc_accuracy", sa["all_correct"], sb["all_correct"], mean_of)
    add("anls", sa["anls"], sb["anls"], mean_of)
    for j, f in enumerate(fields):
        add(f"strict_f1/{f}", sa["fields"][:, 0, j], sb["fields"][:, 0, j], f1_of_counts)
    return out


def compare_all(runs: Sequence[RunEval], fields: Sequence[str], n_boot: int = 1000,
                seed: int = 0) -> list[dict]:
    """Every pair of models on the same OCR pass, and each model across OCR passes (the OCR
    effect: same model, same documents, only the words differ). Runs that share no document
    (the text-layer pages and the scanned pages of one folder) are not compared."""
    return [compare_pair(a, b, fields, n_boot, seed)
            for a, b in combinations(runs, 2)
            if (a.ocr == b.ocr) != (a.model == b.model) and set(a.doc_ids) & set(b.doc_ids)]
