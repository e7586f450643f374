"""Benchmark label alignment on the SROIE receipts: provided OCR vs tesseract (one pass, union).

    python scripts/bench_alignment.py                       # provided + tesseract, 500 receipts
    python scripts/bench_alignment.py --ocr provided        # provided OCR only (seconds)
    python scripts/bench_alignment.py --split dev --out runs/align_dev.json

For every gold field: share *aligned* (some word span matched it above the similarity
threshold) and share *exact* (``span_value`` of that span equals the gold under the SROIE strict
key, whitespace collapsed, and the lenient key, no whitespace and case folded). "union" counts a
field when any tesseract variant reproduces it: the OCR ceiling of a span extractor that merges
variants. Tesseract results come from the shared OCR cache (one single-threaded tesseract per
worker; the first run over 500 receipts and 5 variants takes ~20 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

from extractor.align import evaluate_alignment
from extractor.document import RECEIPT_SCHEMA, Document
from extractor.loaders import LoadReport, load_documents

SROIE = Path(os.environ.get("KVLOOP_SROIE", REPO.parent / "shared" / "data" / "sroie"))


def measure(docs: list[Document], passes: str) -> dict:
    t0 = time.perf_counter()
    result = evaluate_alignment(docs, RECEIPT_SCHEMA, passes, max_examples=15)
    out = result.export()
    out["ms_per_doc"] = 1000 * (time.perf_counter() - t0) / max(1, len(docs))
    return out


def cached_tesseract(root: str, split: str) -> LoadReport:
    """Tesseract documents of the receipts whose every default variant is cached already."""
    from extractor.loaders.sroie import tesseract_documents
    from extractor.ocr import DEFAULT_VARIANTS, OcrCache, image_digest, open_image

    cache = OcrCache()
    provided = load_documents(root, split=split, progress=False)
    keep = LoadReport()
    for doc in provided.documents:
        digest = image_digest(open_image(str(doc.source)))  # as extractor.ocr keys its cache
        if all(cache.get(digest, c) is not None for c in DEFAULT_VARIANTS):
            keep.documents.append(doc)
    print(f"{len(keep.documents)}/{len(provided.documents)} receipts fully cached",
          file=sys.stderr)
    return tesseract_documents(keep, workers=1, progress=False)


def print_table(rows: dict[str, dict], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    fields = [*RECEIPT_SCHEMA.field_names, "overall"]
    table = Table(title=title)
    table.add_column("OCR pass")
    for f in fields:
        table.add_column(f"{f} al / strict / len", justify="right")
    for name, res in rows.items():
        cells = [f"{res['fields'][f]['aligned']:.1%} / {res['fields'][f]['strict']:.1%} / "
                 f"{res['fields'][f]['lenient']:.1%}" for f in fields]
        table.add_row(name, *cells)
    Console(width=200).print(table)


def markdown_table(rows: dict[str, dict]) -> str:
    """The same figures as a Markdown table (aligned / exact strict / exact lenient, in %)."""
    fields = [*RECEIPT_SCHEMA.field_names, "overall"]
    lines = ["| OCR pass | docs | " + " | ".join(fields) + " |",
             "|---|---:|" + "---:|" * len(fields)]
    for name, res in rows.items():
        cells = ["{:.1f} / {:.1f} / {:.1f}".format(*(100 * res["fields"][f][k] for k in (
            "aligned", "strict", "lenient"))) for f in fields]
        lines.append(f"| {name} | {res['documents']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sroie", default=str(SROIE))
    parser.add_argument("--split", default="all")
    parser.add_argument("--ocr", default="provided,tesseract",
                        help="comma list of provided / tesseract")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "runs" / "bench_alignment.json"))
    parser.add_argument("--cached-only", action="store_true",
                        help="tesseract: measure only receipts whose every variant is already in "
                             "the OCR cache (no new OCR); the JSON records which ids")
    args = parser.parse_args()

    results: dict[str, dict] = {}
    meta: dict[str, object] = {
        "command": " ".join(["python", "scripts/bench_alignment.py", *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPU, {platform.platform()}", "split": args.split}
    for ocr in args.ocr.split(","):
        if ocr == "tesseract" and args.cached_only:
            report = cached_tesseract(args.sroie, args.split)
            meta["tesseract_ids"] = [d.id for d in report.documents]
        else:
            report = load_documents(args.sroie, split=args.split, ocr=ocr, workers=args.workers)
        if report.failures:
            print(report.summary(), file=sys.stderr)
        docs = report.documents
        meta[f"{ocr}_documents"] = len(docs)
        if ocr == "provided":
            results["provided"] = measure(docs, "main")
            continue
        names = [docs[0].ocr.split(":")[-1], *docs[0].variants] if docs else []
        for name in names:
            results[f"tesseract {name}"] = measure(docs, name)
        results["tesseract union"] = measure(docs, "union")
        meta["tesseract_default_variant"] = names[0] if names else None
    golds = [d for d in load_documents(args.sroie, split=args.split, progress=False).documents]
    meta["gold_totals_with_currency_sign"] = sum(
        bool(re.search(r"[^\d.,\s-]", (d.gold or {}).get("total") or "")) for d in golds)
    meta["gold_totals"] = sum(bool((d.gold or {}).get("total")) for d in golds)

    print_table(results, f"SROIE alignment ({args.split}): aligned / exact strict / exact "
                         f"lenient")
    print(markdown_table(results))
    for name, res in results.items():
        print(f"{name}: {res['ms_per_doc']:.1f} ms/document")
    print(f"gold totals carrying a currency sign (kept as printed by span_value): "
          f"{meta['gold_totals_with_currency_sign']}/{meta['gold_totals']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
