"""``kvloop data``: load a dataset, write it as kvloop JSONL and summarise what was read.

Every file that cannot be read is listed (file and reason) and the rest is written; the exit
status says whether anything failed (``--allow-partial`` accepts a partial load).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from extractor.document import RECEIPT_SCHEMA, Document
from extractor.loaders import OCR_MODES, DocumentLoadError, load_documents
from extractor.loaders.jsonl import write_documents
from extractor.loaders.report import ALLOW_PARTIAL_HELP, batch_status
from extractor.schemas import schema_for_fields
from extractor.splits import SPLITS

if TYPE_CHECKING:
    from extractor.ocr import ReadOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="'demo', a SROIE folder, a .jsonl file, a Label Studio or "
                                     "FUNSD JSON export, or image/PDF files (a file or folder)")
    parser.add_argument("--split", choices=SPLITS, default="all",
                        help="deterministic split (dev = every fifth id; see extractor/splits.py)")
    parser.add_argument("--ocr", choices=OCR_MODES, default="provided",
                        help="'provided': the dataset's own words (a PDF page's text layer "
                             "where usable); 'images': re-read the page images with the OCR "
                             "engines (--ocr-engines); 'tesseract': with the five tesseract "
                             "passes (cached)")
    parser.add_argument("--workers", type=int, default=2, help="parallel OCR processes")
    parser.add_argument("--out", help="output JSONL of Documents (omit to only summarise)")
    parser.add_argument("--allow-partial", action="store_true", help=ALLOW_PARTIAL_HELP)
    add_read_arguments(parser)


def add_read_arguments(parser: argparse.ArgumentParser) -> None:
    """How tesseract reads each page (``extractor.ocr.ReadOptions``), for every command that
    OCRs a folder."""
    from extractor.ocr import PAGE_TIMEOUT

    parser.add_argument("--page-timeout", type=float, default=PAGE_TIMEOUT, metavar="SECONDS",
                        help=f"time limit per page for all its OCR passes; a page over it is "
                             f"a failure (default: {PAGE_TIMEOUT:g}; 0 = no limit)")
    parser.add_argument("--no-orient", action="store_true",
                        help="do not check poorly read pages for 90/180/270 degree rotation")


def add_engine_argument(parser: argparse.ArgumentParser) -> None:
    """``--ocr-engines``: which OCR engines read page images, for every command that reads
    them (``kvloop.cli`` adds it; ``use_engines`` applies it)."""
    from extractor.ocr import DEFAULT_ENGINES, ENGINES_ENV

    parser.add_argument("--ocr-engines", default=None, metavar="SPEC",
                        help=f"OCR engines and passes that read page images, first = the "
                             f"page's words, the rest merged: 'rapidocr' (PP-OCRv6), "
                             f"'tesseract' (its five passes), tesseract pass names (psm6, ...), "
                             f"joined with '+' (default: ${ENGINES_ENV} or {DEFAULT_ENGINES})")


def use_engines(args: argparse.Namespace) -> str | None:
    """Make ``--ocr-engines`` the default of this process and the processes it starts (OCR
    workers, Ray workers, the review UI); an error message for an unknown spec, else None."""
    import os

    from extractor.ocr import ENGINES_ENV, passes_by_name

    spec = getattr(args, "ocr_engines", None)
    if spec is None:
        return None
    try:
        passes_by_name(spec)
    except ValueError as e:
        return f"--ocr-engines: {e}"
    os.environ[ENGINES_ENV] = spec
    return None


def read_options(args: argparse.Namespace) -> ReadOptions:
    from extractor.ocr import ReadOptions

    return ReadOptions(page_timeout=args.page_timeout or None, orient=not args.no_orient)


def summary_rows(docs: list[Document]) -> list[tuple[str, str]]:
    """(label, value) rows: documents, words, and how many documents have gold per field."""
    rows = [("documents", str(len(docs))), ("words", str(sum(len(d.words) for d in docs))),
            ("with variants", str(sum(bool(d.variants) for d in docs)))]
    known = schema_for_fields(k for d in docs for k in (d.gold or {})) or RECEIPT_SCHEMA
    names = list(dict.fromkeys([*known.field_names,
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
    """Exit status: 0 when everything was read, 1 when some file failed (0 with
    ``--allow-partial`` if a document was read), 2 for a bad spec or options."""
    try:
        report = load_documents(args.spec, split=args.split, ocr=args.ocr, workers=args.workers,
                                options=read_options(args))
    except (ValueError, DocumentLoadError) as e:
        print(f"kvloop data: {e}", file=sys.stderr)
        return 2
    print(report.summary(), file=sys.stderr)
    print_table(summary_rows(report.documents), f"{args.spec} ({args.split}, {args.ocr} OCR)")
    if args.out:
        n = write_documents(args.out, report.documents)
        print(f"wrote {n} document(s) to {args.out}")
    status, why = batch_status(len(report.failures), len(report.documents), args.allow_partial)
    if why:
        print(f"kvloop data: {why}", file=sys.stderr)
    return status
