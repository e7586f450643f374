"""Which pool documents the operator reviews next: the document-selection strategies.

Each round the harness calls ``pick_next`` with the current model's extraction results for the
whole pool and the ids already reviewed; it returns the next ``n`` ids, most wanted first.
Every strategy scores a document (higher = reviewed sooner; ``score``) and ties go to the
smaller document id, so an order is a pure function of the results and the seed:

* ``random``: a uniform number per (seed, document) from SHA-256, as the audit sample of
  ``feedback_ui.routing.in_audit_sample`` draws it: a fixed random order of the pool that
  does not depend on the results, on their order or on what was reviewed.
* ``least-confident``: 1 - the lowest field confidence (uncertainty sampling, Lewis & Gale
  1994, "A Sequential Algorithm for Training Text Classifiers", on the least confident of the
  document's decisions). The minimum, not the mean: a document needs an operator as soon as
  one field is doubtful, and it is the order the review queue itself uses
  (``feedback_ui.routing.most_uncertain_first``), so this strategy is "what the UI would show".
* ``expected-error``: the expected number of wrong fields, ``sum_f (1 - c_f)``, where ``c_f``
  is the field's calibrated confidence that its answer (value or "not present") is right
  (``extractor.document.FieldResult``): documents with the most to correct first.

A field the result lacks counts with confidence 0 (as routing does) when ``fields`` names it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence

from extractor.document import ExtractionResult

STRATEGIES = ("random", "least-confident", "expected-error")


def _check(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown selection strategy {strategy!r}; choose from {STRATEGIES}")


def _confidences(result: ExtractionResult, fields: Sequence[str] | None) -> list[float]:
    if fields is None:
        return [fr.confidence for fr in result.fields.values()]
    return [fr.confidence if (fr := result.fields.get(f)) else 0.0 for f in fields]


def uniform(seed: int, doc_id: str) -> float:
    """A number in [0, 1) fixed by (seed, document id)."""
    h = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def score(strategy: str, result: ExtractionResult, *, seed: int = 0,
          fields: Sequence[str] | None = None) -> float:
    """How much ``strategy`` wants ``result``'s document reviewed (higher: sooner)."""
    _check(strategy)
    if strategy == "random":
        return uniform(seed, result.doc_id)
    conf = _confidences(result, fields)
    if strategy == "least-confident":
        return 1.0 - min(conf, default=0.0)
    return math.fsum(1.0 - c for c in conf)  # expected wrong fields; fsum: order-free ties


def order(strategy: str, results: Sequence[ExtractionResult], *, seed: int = 0,
          fields: Sequence[str] | None = None) -> list[str]:
    """Every document of ``results``, most wanted first (ties: smaller id first).

    Raises ``ValueError`` on an unknown strategy or a document with two results.
    """
    _check(strategy)
    ids = [r.doc_id for r in results]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"selection: documents with more than one result: {dup}")
    keyed = [(-score(strategy, r, seed=seed, fields=fields), r.doc_id) for r in results]
    return [doc_id for _, doc_id in sorted(keyed)]


def pick_next(strategy: str, results: Sequence[ExtractionResult], reviewed: Iterable[str],
              n: int, *, seed: int = 0, fields: Sequence[str] | None = None) -> list[str]:
    """The next ``n`` documents to review (fewer when the pool runs out): ``order`` without
    the ids in ``reviewed`` (ids not in the pool are ignored)."""
    if n < 0:
        raise ValueError(f"selection: n must be >= 0, got {n}")
    done = set(reviewed)
    todo = [d for d in order(strategy, results, seed=seed, fields=fields) if d not in done]
    return todo[:n]
