"""``kvloop store``: import results, export corrections or a backup, restore a backup, show a
history or stats."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from feedback_ui.store import FeedbackFilter, FeedbackStore

FILTERS = ("model_version", "dataset", "operator", "since", "until", "actions", "limit")

EXPORT_HELP = """\
Output files:
  --kind corrected  OUT: one line per reviewed document: doc_id, model_version, operator,
                    reviewed_at, values / actions / spans per field (fields whose value is
                    known; a field left open by a reject is not listed), document (the page).
  --kind pairs      OUT: one line per preference pair: doc_id, field, chosen, chosen_span,
                    rejected, rejected_span, rejected_score, rejected_rank, explicit (the
                    operator pressed reject), model_version. No page in it: the pages of
                    those documents go once each to --documents (default: pairs.jsonl ->
                    pairs.documents.jsonl), one Document JSON per line as `kvloop data`
                    writes them. Fields left open by a reject give no pair.
  --kind backup     OUT (.gz: gzipped): every row of every table (documents, extraction
                    results, saves, actions, leases, lease history), ids included, from one
                    snapshot; `kvloop store import --store NEW OUT` restores it into an empty
                    store. Filters do not apply to a backup.
Filters select a field by its latest action (the save's dataset, operator and end time, the
model version of its extraction, the action name); they run in the database.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = sub.add_parser("import-results", help="add documents and extraction results (JSONL)")
    imp.add_argument("--documents", help="kvloop documents JSONL (kvloop data output)")
    imp.add_argument("--results", help="ExtractionResult JSONL (kvloop predict output)")
    imp.add_argument("--dataset", default="default")
    exp = sub.add_parser("export", help="write corrected documents or preference pairs",
                         description="Write corrected documents or preference pairs as JSONL.",
                         epilog=EXPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    exp.add_argument("--kind", choices=["corrected", "pairs", "backup"], default="corrected")
    exp.add_argument("--out", required=True, help="JSONL file to write")
    exp.add_argument("--documents", default=None,
                     help="pages file for --kind pairs (default: pairs.jsonl -> "
                          "pairs.documents.jsonl)")
    exp.add_argument("--model-version", default=None)
    exp.add_argument("--dataset", default=None)
    exp.add_argument("--operator", default=None)
    exp.add_argument("--since", type=_utc_time, default=None,
                     help="ISO date/time, inclusive (UTC unless it names a zone)")
    exp.add_argument("--until", type=_utc_time, default=None, help="ISO date/time, exclusive")
    exp.add_argument("--actions", type=_actions, default=None,
                     help="comma-separated action names, e.g. edit,pick,reject")
    exp.add_argument("--limit", type=int, default=None, help="at most this many documents")
    res = sub.add_parser("import", help="restore a backup (export --kind backup) into an empty "
                         "store", description="Restore every row of a backup into an empty "
                         "store (all or nothing), migrated to the newest schema.")
    res.add_argument("backup", help="backup file written by `kvloop store export --kind backup`")
    hist = sub.add_parser("history", help="every field's before/after and the lease history "
                          "of one document")
    hist.add_argument("doc_id")
    sub.add_parser("stats", help="reviews today, corrections per field, agreement")
    for p in (imp, exp, res, hist, sub.choices["stats"]):
        p.add_argument("--store", required=True, help="SQLAlchemy URL or SQLite file path")


def _utc_time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from e
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _actions(text: str) -> frozenset[str]:
    from feedback_ui.store import ACTIONS

    names = frozenset(a.strip() for a in text.split(",") if a.strip())
    unknown = sorted(names - set(ACTIONS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown action(s) {unknown}; choose from {ACTIONS}")
    return names


def _filter(args: argparse.Namespace) -> FeedbackFilter:
    from feedback_ui.store import FeedbackFilter

    return FeedbackFilter(**{k: getattr(args, k) for k in FILTERS})


def _export(store: FeedbackStore, args: argparse.Namespace) -> int:
    from feedback_ui.store import export_jsonl
    from feedback_ui.store.backup import export_backup
    from feedback_ui.store.export import documents_path

    if args.kind == "backup":
        given = [f"--{k.replace('_', '-')}" for k in FILTERS + ("documents",)
                 if getattr(args, k) is not None]
        if given:
            print(f"kvloop store export: a backup holds every row; {', '.join(given)} do(es) "
                  "not apply", file=sys.stderr)
            return 2
        print(export_backup(store, args.out).summary(f"wrote {args.out}:"))
        return 0
    n = export_jsonl(store, args.out, args.kind, _filter(args), documents=args.documents)
    docs = args.documents or documents_path(args.out)
    pages = f" (pages in {docs})" if args.kind == "pairs" else ""
    print(f"wrote {n} {args.kind} record(s) to {args.out}{pages}")
    return 0


def _history(store: FeedbackStore, doc_id: str) -> int:
    rows = store.history(doc_id)
    if not rows:
        print(f"no review recorded for {doc_id!r}")
    for h in rows:
        flag = "  (undone)" if h.undone else ""
        print(f"{h.ended_at:%Y-%m-%d %H:%M:%S} {h.operator:<12} {h.field:<10} "
              f"{h.action:<11} {h.before!r} -> {h.after!r}{flag}")
    leases = store.lease_history(doc_id)
    if leases:
        print("lease history:")
    for e in leases:
        until = f" until {e.expires_at:%H:%M:%S}" if e.expires_at else ""
        came = f" (from {e.previous!r})" if e.previous else ""
        print(f"{e.at:%Y-%m-%d %H:%M:%S} {e.operator:<12} {e.event}{came}{until}")
    return 0


def _stats(store: FeedbackStore) -> int:
    now = datetime.now(timezone.utc)
    s = store.stats(now.replace(hour=0, minute=0, second=0, microsecond=0))
    print(f"documents {s.documents}, reviewed {s.reviewed_documents}, reviewed today "
          f"{s.docs_reviewed_since} ({s.saves_since} saves)")
    for f, n in s.actions_per_field.items():
        print(f"  {f:<10} reviewed {n:>5}  corrected {s.corrections_per_field.get(f, 0):>5}  "
              f"rejected {s.rejects_per_field.get(f, 0):>5}  "
              f"agreement {s.agreement_per_field[f]:.1%}")
    return 0


def run(args: argparse.Namespace) -> int:
    from feedback_ui.store import FeedbackStore, StoreError
    from feedback_ui.store.backup import import_backup
    from feedback_ui.store.importer import import_jsonl

    if args.action == "import":
        try:
            restored = import_backup(args.store, args.backup)
        except StoreError as e:
            print(f"kvloop store import: {e}", file=sys.stderr)
            return 1
        print(restored.summary(f"restored into {args.store}:"))
        return 0
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
        return _export(store, args)
    if args.action == "history":
        return _history(store, args.doc_id)
    return _stats(store)
