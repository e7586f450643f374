"""Training data for the ensemble: documents of a split, labelled windows, epoch batches.

Gold values become BIO word labels through ``extractor.align.align_document`` (labels on
each word's first sub-token); long pages are cut into overlapping windows
(``KVEnsemble.windows``). Every OCR pass of a page gets its own alignment, so an epoch can
read a page from an image OCR pass (``mixed_windows``) and meet the OCR errors of images.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace

from extractor.align import align_document
from extractor.document import Document, Schema, Word
from extractor.model.ensemble import KVEnsemble
from extractor.model.features import Window

log = logging.getLogger(__name__)

_skipped: ContextVar[dict[tuple[str, str], None] | None] = ContextVar("kvloop_skipped_files",
                                                                     default=None)


@contextmanager
def skipped_files() -> Iterator[dict[tuple[str, str], None]]:
    """Within, the (file, reason) of every file a ``load_split`` skips, in order, each once:
    a trainer loads one dataset for several splits and OCR passes, and each load meets the
    same bad file, logged only the first time (``kvloop train`` counts them in its exit
    status)."""
    seen: dict[tuple[str, str], None] = {}
    token = _skipped.set(seen)
    try:
        yield seen
    finally:
        _skipped.reset(token)


def load_split(spec: str, split: str, ocr: str = "provided",
               max_docs: int | None = None) -> list[Document]:
    """Documents of one split of a dataset spec; a file that cannot be read is logged and
    skipped (once within ``skipped_files``), and the batch goes on."""
    from extractor.loaders import load_documents
    report = load_documents(spec, split=split, ocr=ocr)
    seen = _skipped.get()
    for f in report.failures:
        if seen is not None:
            if (f.path, f.reason) in seen:
                continue
            seen[(f.path, f.reason)] = None
        log.warning("skipped %s: %s", f.path, f.reason)
    docs = report.documents
    return docs[:max_docs] if max_docs else docs


def pass_windows(model: KVEnsemble, docs: Sequence[Document], schema: Schema,
                 variants: bool = True) -> tuple[list[list[list[Window]]], dict[str, int]]:
    """Per document, per OCR pass (``doc.words`` first, then ``doc.variants`` when
    ``variants``): the labelled windows, gold aligned to that pass's words. Unaligned gold
    fields are counted on the first pass."""
    l2i = schema.label2id
    out: list[list[list[Window]]] = []
    unaligned: dict[str, int] = {}
    for i, doc in enumerate(docs):
        passes = [doc.words] + (list(doc.variants.values()) if variants else [])
        per_pass = []
        for p, words in enumerate(passes):
            page = replace(doc, words=words, variants={})
            al = align_document(page, schema)
            if p == 0:
                for name in al.unaligned:
                    unaligned[name] = unaligned.get(name, 0) + 1
            w, _ = model.windows([w.text for w in words], page.normalized_boxes(), doc=i,
                                 labels=[l2i[t] for t in al.tags])
            per_pass.append(w)
        out.append(per_pass)
    return out, unaligned


def mixed_windows(per_pass: Sequence[Sequence[Sequence[Window]]], mix: float,
                  rng: random.Random) -> list[Window]:
    """One epoch's windows: each page from its first pass, or with probability ``mix`` (and
    when it has other passes) from one of them at random."""
    out: list[Window] = []
    for passes in per_pass:
        use = passes[0]
        if len(passes) > 1 and rng.random() < mix:
            use = passes[rng.randrange(1, len(passes))]
        out += use
    return out


def image_pass_words(doc: Document) -> dict[str, list[Word]]:
    """Every OCR pass of an image-read page as ``engine:pass`` -> words (its main words
    first), the names saying which engine read each (``KVPredictor.pass_engines``)."""
    engines = (doc.meta.get("ocr") or {}).get("engines") or {}
    main = doc.ocr.split(":", 1)[0]
    return {doc.ocr: doc.words,
            **{f"{engines.get(k, main)}:{k}": v for k, v in doc.variants.items()}}


def with_image_variants(docs: Sequence[Document], spec: str, split: str,
                        max_docs: int | None = None, ocr: str = "images") -> list[Document]:
    """``docs`` with every OCR pass of the same page image as variants: the default engines'
    passes (``ocr="images"``, cached on disk) or the five tesseract passes."""
    read = {d.id: d for d in load_split(spec, split, ocr, max_docs)}
    out = []
    for doc in docs:
        page = read.get(doc.id)
        if page is None:
            log.warning("%s: its image could not be read; trained on its own words only", doc.id)
            out.append(doc)
            continue
        out.append(replace(doc, variants={**doc.variants, **image_pass_words(page)}))
    return out


def epoch_batches(wins: Sequence[Window], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar-length windows (sorted within random pools of 16 batches)."""
    order = list(range(len(wins)))
    rng.shuffle(order)
    pool = batch_size * 16
    batches = []
    for p in range(0, len(order), pool):
        chunk = sorted(order[p:p + pool], key=lambda i: len(wins[i].input_ids))
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches
