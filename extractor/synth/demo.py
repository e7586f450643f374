"""The embedded demo dataset: synthetic receipts, rendered, then read by real tesseract OCR.

``generate_demo`` writes ``img/<id>.png``, ``key/<id>.json`` (gold, SROIE style) and
``documents.jsonl`` (OCR'd ``Document``s carrying that gold). ``load_demo`` does this once into
a cache folder and afterwards only reads ``documents.jsonl``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from extractor.document import Document, read_jsonl, write_jsonl
from extractor.loaders.report import DocumentLoadError, LoadReport
from extractor.ocr import (
    DEFAULT_VARIANTS,
    OcrConfig,
    OcrJob,
    default_cache_dir,
    document_from_words,
    ocr_batch,
)
from extractor.synth.content import Receipt, make_receipt
from extractor.synth.render import render_receipt

SYNTH_VERSION = "1"  # bump when content or rendering changes, so cached demos are rebuilt
DEMO_OCR: list[OcrConfig] = DEFAULT_VARIANTS[:1]
INVOICE_SHARE = 0.2  # the rest are till receipts, like SROIE


def receipt_rng(seed: int, index: int) -> random.Random:
    """Receipt ``index`` of a seed depends on nothing else (not on n, not on order)."""
    return random.Random(f"kvloop-synth-{SYNTH_VERSION}-{seed}-{index}")


def synth_receipt(seed: int, index: int) -> tuple[Receipt, Image.Image]:
    """Content and rendered image of one synthetic receipt."""
    rng = receipt_rng(seed, index)
    template = "invoice" if rng.random() < INVOICE_SHARE else "receipt"
    receipt = make_receipt(rng)
    receipt.extra["template"] = template
    return receipt, render_receipt(receipt, rng, template)


def demo_id(index: int) -> str:
    return f"synth-{index:04d}"


def generate_demo(out_dir: str | Path, n: int = 120, seed: int = 0,
                  configs: Sequence[OcrConfig] | None = None, workers: int = 2,
                  cache_dir: str | Path | None = "default", progress: bool = True) -> LoadReport:
    """Render ``n`` receipts into ``out_dir``, OCR them and write ``documents.jsonl``.

    Same ``seed`` -> byte-identical PNGs and identical gold. A receipt whose OCR fails or finds
    no words is reported as a failure and left out of ``documents.jsonl``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    configs = list(configs or DEMO_OCR)
    out = Path(out_dir)
    (out / "img").mkdir(parents=True, exist_ok=True)
    (out / "key").mkdir(parents=True, exist_ok=True)
    gold: dict[str, dict[str, str | None]] = {}
    templates: dict[str, str] = {}
    jobs: list[OcrJob] = []
    for i in tqdm(range(n), desc="render", unit="receipt", disable=not progress):
        receipt, img = synth_receipt(seed, i)
        doc_id = demo_id(i)
        img_path = out / "img" / f"{doc_id}.png"
        img.save(img_path, format="PNG", optimize=False)
        (out / "key" / f"{doc_id}.json").write_text(
            json.dumps(receipt.gold, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        gold[doc_id] = receipt.gold
        templates[doc_id] = receipt.extra["template"]
        jobs.append(OcrJob(doc_id, str(img_path)))
    report = LoadReport()
    for o in ocr_batch(jobs, configs, workers=workers, cache_dir=cache_dir, progress=progress,
                       desc="OCR demo"):
        if o.error is not None or not any(o.words.values()):
            report.add_failure(DocumentLoadError(o.job.path, o.error or "OCR found no words"))
            continue
        doc = document_from_words(o.job.doc_id, o.words, configs, o.size, source=o.job.path)
        doc.gold = gold[o.job.doc_id]
        doc.meta = {"synthetic": True, "seed": seed, "synth_version": SYNTH_VERSION,
                    "template": templates[o.job.doc_id]}
        report.documents.append(doc)
    write_jsonl(str(out / "documents.jsonl"), report.documents)
    return report


def read_documents(path: str | Path) -> LoadReport:
    """Documents from a kvloop JSONL file; a bad line is a failure naming file and line."""
    report = LoadReport()
    try:
        for d in read_jsonl(str(path)):
            report.documents.append(Document.from_dict(d))
    except ValueError as e:
        report.add_failure(DocumentLoadError(str(path), str(e)))
    return report


def load_demo(n: int = 120, seed: int = 0, cache_dir: str | Path | None = None,
              progress: bool = True) -> LoadReport:
    """The demo documents: generated (and OCR'd) on first use, then read from the cache.

    ``cache_dir`` defaults to ``$KVLOOP_CACHE/demo`` (``~/.cache/kvloop/demo``).
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir().parent / "demo"
    out = root / f"v{SYNTH_VERSION}-seed{seed}-n{n}"
    docs = out / "documents.jsonl"
    if docs.is_file():
        return read_documents(docs)
    return generate_demo(out, n=n, seed=seed, progress=progress)
