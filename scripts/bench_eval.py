"""Time ``kvloop eval`` beyond model inference: metrics, bootstrap, gallery and report stages.

Evaluates results file(s) against a dataset (default: the 100 SROIE dev receipts, provided
OCR) ``--repeat`` times and prints the median time of each stage. With one results file the
paired bootstrap is timed on the file against itself (same cost as against another model).

    python scripts/bench_eval.py --results runs/eval/results-<model>-provided.jsonl
    python scripts/bench_eval.py --tiny     # predicts first with a seeded tiny model
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eval.compare import compare_all
from eval.evaluate import evaluate_results
from eval.gallery import build_gallery
from eval.report import ReportInput, run_key, write_report
from eval.run import load_dataset, predict_all, read_results, schema_for_results


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--results", action="append", metavar="JSONL",
                     help="results file(s) to evaluate")
    src.add_argument("--model", metavar="DIR",
                     help="predict the documents with this model first (timed separately)")
    src.add_argument("--tiny", action="store_true",
                     help="like --model, with a fresh seeded 'tiny' model from "
                          "extractor.model.zoo (no trained model needed)")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "sroie"))
    p.add_argument("--split", default="dev")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return p


def bench_once(args: argparse.Namespace, out_dir: str) -> dict[str, float]:
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    files = [read_results(p) for p in args.results]
    schema = schema_for_results([r for rs, _ in files for r in rs])
    t["read_results"] = time.perf_counter() - t0
    s = time.perf_counter()
    ds = load_dataset(args.data, args.split, "provided", schema, args.limit)
    t["load_data_and_align"] = time.perf_counter() - s
    s = time.perf_counter()
    runs = [evaluate_results(ds.docs, res, schema, model=f"{name}#{i}", data=args.split,
                             gold_tags=ds.gold_tags) for i, (res, name) in enumerate(files)]
    t["metrics"] = time.perf_counter() - s
    s = time.perf_counter()
    # One file: compare it with a relabelled copy of itself (the bootstrap costs the same).
    pair = runs if len(runs) > 1 else [runs[0], replace(runs[0], model=runs[0].model + "'")]
    comparisons = compare_all(pair, schema.field_names, args.n_boot)
    t["bootstrap"] = time.perf_counter() - s
    s = time.perf_counter()
    docs = {d.id: d for d in ds.docs}
    gal = {run_key(r): build_gallery(r.outcomes, docs, ds.gold_tags) for r in runs}
    t["gallery"] = time.perf_counter() - s
    s = time.perf_counter()
    write_report(ReportInput(runs, schema.field_names, comparisons, gal,
                             {"title": "bench", "split": args.split}), out_dir)
    t["report"] = time.perf_counter() - s
    t["total"] = time.perf_counter() - t0
    t["docs"] = len(ds.docs)
    return t


def predict_to_file(args: argparse.Namespace, tmp: str) -> str:
    """Run the model once over the documents, write its results, print the inference time."""
    from extractor.document import write_jsonl
    from extractor.model.predictor import load_predictor

    model_dir = args.model
    if args.tiny:
        from extractor.model.zoo import build_model

        model_dir = os.path.join(tmp, "tiny")
        build_model("tiny", seed=0).save_pretrained(model_dir)
    predictor = load_predictor(model_dir)
    ds = load_dataset(args.data, args.split, "provided", predictor.schema, args.limit)
    t = time.perf_counter()
    results, _, problems = predict_all(predictor, ds.docs, k=5, batch_size=8)
    print(f"inference (predict + word_tags, {len(ds.docs)} docs, {predictor.version}): "
          f"{time.perf_counter() - t:.1f} s; {len(problems)} problem(s)")
    path = os.path.join(tmp, "results.jsonl")
    write_jsonl(path, results)
    return path


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.results:
            args.results = [predict_to_file(args, tmp)]
        rounds = [bench_once(args, tmp) for _ in range(args.repeat)]
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(f"kvloop eval stages, median of {args.repeat} runs, {int(med['docs'])} docs, "
          f"{len(args.results)} results file(s), provided OCR, n_boot={args.n_boot}")
    for k, v in med.items():
        if k != "docs":
            print(f"  {k:<22} {v:7.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"median": med, "rounds": rounds}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
