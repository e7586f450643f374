"""``kvloop align``: align gold values to OCR words and report what could not be aligned."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from extractor.align import evaluate_alignment
from extractor.loaders import OCR_MODES, DocumentLoadError, load_documents
from extractor.schemas import schema_for_documents
from extractor.splits import SPLITS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="anything `kvloop data` reads (with gold values)")
    parser.add_argument("--split", choices=SPLITS, default="all")
    parser.add_argument("--ocr", choices=OCR_MODES, default="provided")
    parser.add_argument("--passes", default="main",
                        help="'main' (Document.words), 'union' (best over the main words and "
                             "every OCR variant) or one variant's name")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--examples", type=int, default=20,
                        help="how many failed fields to list, per kind (unaligned / not "
                             "reproduced)")
    parser.add_argument("--out", help="write the report as JSON here")


def print_report(report: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("field", "gold present", "aligned", "exact (strict)", "exact (lenient)"):
        table.add_column(col, justify="left" if col == "field" else "right")
    for name, row in report["fields"].items():
        table.add_row(name, str(row["present"]), f"{row['aligned']:.1%}", f"{row['strict']:.1%}",
                      f"{row['lenient']:.1%}")
    console = Console()
    console.print(table)
    for kind, heading in (("unaligned", "not aligned"),
                          ("not_reproduced", "aligned, but the span does not reproduce the gold")):
        if report["examples"][kind]:
            console.print(f"[bold]{heading}:[/bold]")
        for ex in report["examples"][kind]:
            console.print(f"  {ex['doc']} {ex['field']}: {ex['problem']}", markup=False,
                          highlight=False)


def run(args: argparse.Namespace) -> int:
    try:
        loaded = load_documents(args.spec, split=args.split, ocr=args.ocr, workers=args.workers)
        docs = [d for d in loaded.documents if d.gold]
        if not docs:
            raise ValueError(f"{args.spec}: no document has gold values to align")
        result = evaluate_alignment(docs, schema_for_documents(docs), args.passes, args.examples,
                                    progress=True).export()
    except (ValueError, DocumentLoadError) as e:
        print(f"kvloop align: {e}", file=sys.stderr)
        return 2
    if loaded.failures:
        print(loaded.summary(), file=sys.stderr)
    print_report(result, f"alignment: {args.spec} ({args.split}, {args.ocr} OCR, {args.passes})")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")
        print(f"wrote {args.out}")
    return 0
