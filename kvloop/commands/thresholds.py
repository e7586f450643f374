"""``kvloop thresholds``: certified straight-through processing for a saved model.

``fit``: fit the correctness model and certify per-field thresholds on the calibration split
(read as given and, with ``--ocr both``, by tesseract too); written into the model's card
(``--out``: into a copy, a new model version beside the old one).

``refit``: certify again on the calibration items plus every reviewed field of a feedback store
for this model version; writes a new model version at ``--out`` whose card records, per
field, the items, observed precision, error bound and threshold. A field with too little
evidence stays in review; a store with no usable review writes nothing (exit 1).

``status``: per field, the certificate and the running audit of a store.

Exit status: 0 done, 1 nothing to refit, 2 bad input (named).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from extractor.certify import LEVEL
from extractor.straight_through import TARGET

if TYPE_CHECKING:
    from extractor.straight_through import StraightThrough


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    fit = sub.add_parser("fit", help="fit the correctness model and certify thresholds on the "
                         "calibration split")
    fit.add_argument("--model", required=True, help="model folder")
    fit.add_argument("--data", required=True, help="dataset (SROIE folder, JSONL, ...)")
    fit.add_argument("--split", default="calibration", help="held-out split (default: "
                     "calibration)")
    fit.add_argument("--ocr", choices=("provided", "tesseract", "both"), default="both",
                     help="readings of the pages to fit on (default: both)")
    fit.add_argument("--memory", action="store_true",
                     help="use agreement with operator-confirmed vendor values as a feature")
    fit.add_argument("--scope", choices=("field", "pooled"), default="field",
                     help="certify each field on its own items (default), or one threshold on "
                          "all fields' items together (the promise is then about all "
                          "auto-accepted answers together)")
    fit.add_argument("--out", default=None, help="write a copy here (default: in place)")
    fit.add_argument("--limit", type=int, default=None, help="first N pages (tests)")
    for p in (fit, refit := sub.add_parser(
            "refit", help="certify again with a feedback store's reviews of this model")):
        p.add_argument("--target", type=float, default=None,
                       help=f"target precision per field (default: {TARGET:g}; refit: the "
                            "model's)")
        p.add_argument("--level", type=float, default=None,
                       help=f"confidence of the guarantee (default: {LEVEL:g}; refit: the "
                            "model's)")
    refit.add_argument("--store", required=True, help="feedback store URL or SQLite path")
    refit.add_argument("--model", required=True, help="model folder")
    refit.add_argument("--out", required=True, help="folder of the new model version")
    status = sub.add_parser("status", help="certificates and the running audit per field")
    status.add_argument("--store", required=True, help="feedback store URL or SQLite path")
    status.add_argument("--model", required=True, help="model folder")


def _print_certificates(st: StraightThrough) -> None:
    for name, c in st.certificates.items():
        src = ", ".join(f"{k} {v}" for k, v in st.sources.get(name, {}).items())
        if c.certified:
            print(f"  {name}: threshold {c.threshold:.4f}, {c.accepted}/{c.items} accepted "
                  f"({c.coverage:.1%}), precision {c.precision:.4f}, error bound {c.bound:.4f} "
                  f"[{src}]")
        else:
            print(f"  {name}: in review ({c.reason}) [{src}]")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (OSError, ValueError) as e:
        print(f"kvloop thresholds {args.action}: error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.action == "fit":
        from training.data import load_split
        from training.straight_through import fit_model_dir

        ocrs = ["provided", "tesseract"] if args.ocr == "both" else [args.ocr]
        sets = [load_split(args.data, args.split, o, args.limit) for o in ocrs]
        if not any(sets):
            raise ValueError(f"{args.data}: no documents in split {args.split!r}")
        out, version, st = fit_model_dir(args.model, [s for s in sets if s], args.out,
                                         args.target or TARGET, args.level or LEVEL,
                                         args.memory, scope=args.scope)
        print(f"{version} written to {out}; certified at {st.target:g} precision, "
              f"{st.level:g} confidence:")
        _print_certificates(st)
        return 0
    from feedback_ui.store import FeedbackStore

    store = FeedbackStore(args.store)
    try:
        if args.action == "status":
            from feedback_ui.audit import straight_through_status

            for s in straight_through_status(store, args.model):
                print(f"  {s.field}: {s.note}")
            return 0
        from training.straight_through import refit_from_store

        report = refit_from_store(args.model, store, args.out, args.target, args.level)
    finally:
        store.close()
    for m in report.messages:
        print(f"kvloop thresholds refit: {m}", file=sys.stderr)
    if report.straight_through is None:
        print("kvloop thresholds refit: nothing written", file=sys.stderr)
        return 1
    print(f"{report.version} written to {report.out}:")
    _print_certificates(report.straight_through)
    return 0
