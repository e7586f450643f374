"""``kvloop demo-data``: render seeded synthetic receipts, OCR them, write images, keys, JSONL."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from extractor.ocr import variants_by_name
from extractor.synth import generate_demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True,
                        help="folder for img/*.png, key/*.json and documents.jsonl")
    parser.add_argument("--n", type=int, default=120, help="number of receipts (default 120)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same receipts")
    parser.add_argument("--variants", default="psm6",
                        help="OCR passes ('default', 'all' or a comma list; default psm6)")
    parser.add_argument("--workers", type=int, default=2, help="parallel tesseract processes")
    parser.add_argument("--no-cache", action="store_true", help="do not use the OCR cache")


def run(args: argparse.Namespace) -> int:
    if args.n < 1:
        print("kvloop demo-data: --n must be at least 1", file=sys.stderr)
        return 2
    try:
        configs = variants_by_name(args.variants)
    except ValueError as e:
        print(f"kvloop demo-data: {e}", file=sys.stderr)
        return 2
    report = generate_demo(args.out, n=args.n, seed=args.seed, configs=configs,
                           workers=args.workers, cache_dir=None if args.no_cache else "default")
    print(report.summary(), file=sys.stderr)
    print(f"wrote {len(report.documents)} document(s) to {Path(args.out) / 'documents.jsonl'}")
    return 0 if report.documents else 1
