"""``kvloop ocr``: the OCR engines over images, PDFs or folders of them, as kvloop JSONL.

PDF pages with a usable text layer are read from it (``--no-text-layer``: OCR them too)."""

from __future__ import annotations

import argparse
import sys

from extractor.document import write_jsonl
from extractor.loaders.images import load_image_folder
from extractor.loaders.report import LoadReport
from extractor.ocr import ALL_VARIANTS, passes_by_name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="image files, PDF files or folders of them")
    parser.add_argument("--out", required=True, help="output JSONL of Documents")
    parser.add_argument("--variants", default=None,
                        help="OCR passes, as --ocr-engines: 'rapidocr', 'tesseract' (five "
                             "passes), 'tesseract-all', or pass names from: "
                             f"{', '.join(c.name for c in ALL_VARIANTS)}, joined with '+' or "
                             "','. The first gives Document.words, the rest Document.variants "
                             "(default: the --ocr-engines default, what extract reads with)")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel single-threaded OCR processes (default: CPU count)")
    parser.add_argument("--dpi", type=int, default=200, help="PDF rendering resolution")
    parser.add_argument("--cache-dir", default="default",
                        help="OCR cache folder (default: $KVLOOP_CACHE/ocr or ~/.cache/kvloop/ocr)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    parser.add_argument("--no-text-layer", action="store_true",
                        help="OCR PDF pages that hold their own text too (default: read it)")


def run(args: argparse.Namespace) -> int:
    try:
        configs = passes_by_name(args.variants)
    except ValueError as e:
        print(f"kvloop ocr: {e}", file=sys.stderr)
        return 2
    report = LoadReport()
    for path in args.inputs:
        report.extend(load_image_folder(path, configs, workers=args.workers,
                                        cache_dir=None if args.no_cache else args.cache_dir,
                                        dpi=args.dpi, text_layer=not args.no_text_layer))
    n = write_jsonl(args.out, report.documents)
    print(report.summary(), file=sys.stderr)
    print(f"wrote {n} document(s) to {args.out}")
    return 0 if report.documents else 1
