"""``kvloop eval``: score one or more models (or results files) and write an HTML/JSON/MD report."""

from __future__ import annotations

import argparse
import sys

from extractor.devices import DEVICE_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", action="append", default=[], metavar="DIR",
                     help="model folder (repeat to compare several models)")
    src.add_argument("--results", action="append", default=[], metavar="JSONL",
                     help="existing extraction results (repeat to compare several files)")
    parser.add_argument("--data", required=True,
                        help="SROIE folder, kvloop JSONL, image folder or 'demo'")
    parser.add_argument("--split", default="dev", help="dataset split (default: dev)")
    parser.add_argument("--ocr", default="provided",
                        choices=("provided", "images", "tesseract", "both"),
                        help="words to evaluate on: the dataset's own ('provided'), its page "
                             "images read by the OCR engines ('images', --ocr-engines) or by "
                             "the five tesseract passes ('tesseract'); 'both' puts provided "
                             "and images side by side")
    parser.add_argument("--out", required=True, help="output folder for the report")
    parser.add_argument("--k", type=int, default=5, help="candidates per field (recall@k)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--gallery", type=int, default=24, help="error gallery size per model")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N documents")
    parser.add_argument("--device", default="auto", help=f"model device: {DEVICE_HELP}")


def run(args: argparse.Namespace) -> int:
    from eval.run import EvalConfig, EvalError, run_eval
    from eval.straight_through import Effort
    from extractor.loaders.report import DocumentLoadError
    from kvloop.compare.operator import EffortModel

    em = EffortModel()

    try:
        cfg = EvalConfig(data=args.data, out=args.out, models=args.model, results=args.results,
                         split=args.split, ocr=args.ocr, k=args.k, n_boot=args.n_boot,
                         seed=args.seed, gallery=args.gallery, limit=args.limit,
                         device=args.device,
                         effort=Effort(em.accepted_field_s, em.document_s(saved=True)))
        out = run_eval(cfg)
    except (EvalError, DocumentLoadError, FileNotFoundError) as e:
        print(f"kvloop eval: error: {e}", file=sys.stderr)
        return 2
    for r in out["runs"]:
        s = r.metrics["strict"]
        print(f"{r.model} [{r.ocr}]: strict F1 {s['overall']['f1']:.3f}, lenient F1 "
              f"{r.metrics['lenient']['overall']['f1']:.3f}, all fields correct "
              f"{s['doc_accuracy']:.3f} on {r.metrics['n_docs']} docs")
        st = r.metrics.get("straight_through")
        if st:
            c = st["overall"]["certified"]
            prec = "-" if c["precision"] is None else f"{c['precision']:.4f}"
            print(f"  certified auto-accept: {c['coverage']:.1%} of fields (target "
                  f"{st['target']:g}), realised strict precision {prec}, "
                  f"{st.get('minutes_per_100', 0.0):.1f} operator-minutes saved per 100 docs")
    t = out["timing"]
    print(f"inference {t['inference']:.1f}s; evaluation (metrics {t['metrics']:.1f}s, "
          f"gallery {t['gallery']:.1f}s, report {t['report']:.1f}s)")
    n_problems = sum(len(r.problems) for r in out["runs"]) + out["load_problems"]
    if n_problems:
        print(f"{n_problems} problem(s) (documents not loaded, not scored or not predicted): "
              "listed at the end of the report", file=sys.stderr)
    print(f"report: {out['paths']['html']}")
    return 0
