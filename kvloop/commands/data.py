"""``kvloop data``: load a dataset, write it as kvloop JSONL and summarise what was read."""

from __future__ import annotations

import argparse
import sys

from extractor.document import RECEIPT_SCHEMA, Document
from extractor.loaders import OCR_MODES, DocumentLoadError, load_documents
from extractor.loaders.jsonl import write_documents
from extractor.splits import SPLITS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="'demo', a SROIE folder, a .jsonl file, a Label Studio or "
                                     "FUNSD JSON export, or image/PDF files (a file or folder)")
    parser.add_argument("--split", choices=SPLITS, default="all",
                        help="deterministic split (dev = every fifth id; see extractor/splits.py)")
    parser.add_argument("--ocr", choices=OCR_MODES, default="provided",
                        help="'provided': the dataset's own words; 'tesseract': re-OCR the page "
                             "images with the default variants (cached)")
    parser.add_argument("--workers", type=int, default=2, help="parallel tesseract processes")
    parser.add_argument("--out", help="output JSONL of Documents (omit to only summarise)")


def summary_rows(docs: list[Document]) -> list[tuple[str, str]]:
    """(label, value) rows: documents, words, and how many documents have gold per field."""
    rows = [("documents", str(len(docs))), ("words", str(sum(len(d.words) for d in docs))),
            ("with variants", str(sum(bool(d.variants) for d in docs)))]
    names = list(dict.fromkeys([*RECEIPT_SCHEMA.field_names,
                                *(k for d in docs for k in (d.gold or {}))]))
    for name in names:
        n = sum(1 for d in docs if (d.gold or {}).get(name) not in (None, ""))
        rows.append((f"gold {name}", f"{n}/{len(docs)}"))
    return rows


def print_table(rows: list[tuple[str, str]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("")
    table.add_column("count", justify="right")
    for label, value in rows:
        table.add_row(label, value)
    Console().print(table)


def run(args: argparse.Namespace) -> int:
    try:
        report = load_documents(args.spec, split=args.split, ocr=args.ocr, workers=args.workers)
    except (ValueError, DocumentLoadError) as e:
        print(f"kvloop data: {e}", file=sys.stderr)
        return 2
    print(report.summary(), file=sys.stderr)
    print_table(summary_rows(report.documents), f"{args.spec} ({args.split}, {args.ocr} OCR)")
    if args.out:
        n = write_documents(args.out, report.documents)
        print(f"wrote {n} document(s) to {args.out}")
    return 0 if report.documents else 1
