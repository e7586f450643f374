"""``kvloop store``: import results, export corrections, show a history or stats."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = sub.add_parser("import-results", help="add documents and extraction results (JSONL)")
    imp.add_argument("--documents", help="kvloop documents JSONL (kvloop data output)")
    imp.add_argument("--results", help="ExtractionResult JSONL (kvloop predict output)")
    imp.add_argument("--dataset", default="default")
    exp = sub.add_parser("export", help="write corrected documents or preference pairs")
    exp.add_argument("--kind", choices=["corrected", "pairs"], default="corrected")
    exp.add_argument("--out", required=True, help="JSONL file to write")
    exp.add_argument("--model-version", default=None)
    hist = sub.add_parser("history", help="every field's before/after for one document")
    hist.add_argument("doc_id")
    sub.add_parser("stats", help="reviews today, corrections per field, agreement")
    for p in (imp, exp, hist, sub.choices["stats"]):
        p.add_argument("--store", required=True, help="SQLAlchemy URL or SQLite file path")


def run(args: argparse.Namespace) -> int:
    from feedback_ui.store import FeedbackStore, export_jsonl
    from feedback_ui.store.importer import import_jsonl

    store = FeedbackStore(args.store)
    if args.action == "import-results":
        if not args.documents and not args.results:
            print("kvloop store import-results: give --documents and/or --results",
                  file=sys.stderr)
            return 2
        report = import_jsonl(store, args.documents, args.results, args.dataset)
        print(report.summary())
        return 1 if report.failures else 0
    if args.action == "export":
        filters = {"model_version": args.model_version} if args.model_version else {}
        n = export_jsonl(store, args.out, args.kind, **filters)
        print(f"wrote {n} {args.kind} record(s) to {args.out}")
        return 0
    if args.action == "history":
        rows = store.history(args.doc_id)
        if not rows:
            print(f"no review recorded for {args.doc_id!r}")
        for h in rows:
            flag = "  (undone)" if h.undone else ""
            print(f"{h.ended_at:%Y-%m-%d %H:%M:%S} {h.operator:<12} {h.field:<10} "
                  f"{h.action:<11} {h.before!r} -> {h.after!r}{flag}")
        return 0
    now = datetime.now(timezone.utc)
    s = store.stats(now.replace(hour=0, minute=0, second=0, microsecond=0))
    print(f"documents {s.documents}, reviewed {s.reviewed_documents}, reviewed today "
          f"{s.docs_reviewed_since} ({s.saves_since} saves)")
    for f, n in s.actions_per_field.items():
        print(f"  {f:<10} reviewed {n:>5}  corrected {s.corrections_per_field.get(f, 0):>5}  "
              f"agreement {s.agreement_per_field[f]:.1%}")
    return 0
