"""Benchmark a trained extractor on a SROIE split; prints a Markdown report, writes JSON.

Measures, in one run:
* field F1 (SROIE task 3, micro over (receipt, field)), lenient and strict, and per field;
* oracle recall@1..k (gold value among the first k candidates, lenient);
* ECE of the calibrated top-1 confidence (and of the raw one), over the items of
  ``extractor.scoring`` (strict correctness, absent/absent answers counted: as
  ``kvloop eval``);
* the ablation from one joint run: BERT head alone, LayoutLM head alone, fused;
* throughput (docs/s) of the predictor (length-bucketed, dynamic padding, inference mode)
  against a naive loop (batch of one, padded to 512, same decoder), interleaved in the chunks
  ``kvloop extract`` uses (32 documents) so both see the same machine load;
* with ``--ocr tesseract``: F1 with the main pass only vs all OCR variants merged, with the
  provided-OCR decisions instead of the model's tesseract profile and with that profile but
  no lexicon correction, and the OCR ceiling (share of gold values some span reproduces) for
  one pass and for the union.

    python scripts/bench_extractor.py --model runs/extractor-base \
        --data /work/shared/data/sroie --split dev --out runs/bench-dev.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.field_scores import score_results
from extractor.document import Document
from extractor.loaders import load_documents
from extractor.model.batch import CHUNK_BATCHES
from extractor.model.calibrate import DecisionProfile
from extractor.model.predictor import KVPredictor, load_predictor
from extractor.scoring import expected_calibration_error


def scores(pred: KVPredictor, docs: Sequence[Document], lps: list[list[torch.Tensor]],
           k: int) -> dict[str, Any]:
    results = pred.results_from_log_probs(docs, lps, k)
    fs = score_results([d.gold or {} for d in docs], results, k_max=k)
    s = fs.summary()
    s["ece"] = expected_calibration_error(fs.confidences, fs.correct)
    raw = pred.uncalibrated()
    fr = score_results([d.gold or {} for d in docs], raw.results_from_log_probs(docs, lps, k), k)
    s["ece_raw"] = expected_calibration_error(fr.confidences, fr.correct)
    return s


def replace_profiles(pred: KVPredictor, profiles: dict[str, DecisionProfile]) -> KVPredictor:
    """``pred`` with other per-engine decision profiles (the default profile kept)."""
    return KVPredictor(pred.model, pred.default_profile, pred.version, profiles, pred.lexicon)


def throughput(pred: KVPredictor, docs: Sequence[Document],
               batch_size: int = 8) -> dict[str, float]:
    """Seconds for the predictor and for the naive loop over the same docs, interleaved in
    the chunks that ``kvloop extract`` hands the predictor (``extract_batches``)."""
    chunk = batch_size * CHUNK_BATCHES
    fast = naive = 0.0
    with torch.inference_mode():
        for i in range(0, len(docs), chunk):
            part = list(docs[i:i + chunk])
            t = time.perf_counter()
            pred.predict(part, batch_size=batch_size)
            fast += time.perf_counter() - t
            t = time.perf_counter()
            for doc in part:  # the plain recipe: one document at a time, padded to 512
                page = ([w.text for w in doc.words], doc.normalized_boxes())
                lp = pred.model.word_log_probs([page], batch_size=1, pad_to=512, bucket=False)
                pred.results_from_log_probs([doc], [[lp[0]["fused"]]])
            naive += time.perf_counter() - t
    n = len(docs)
    return {"docs": n, "fast_docs_per_s": n / fast, "naive_docs_per_s": n / naive,
            "speedup": naive / fast}


def fmt(x: float) -> str:
    return f"{100 * x:.2f}"


def report(res: dict[str, Any]) -> str:
    lines = [(f"model `{res['model_version']}`, split `{res['split']}` ({res['n_docs']} docs), "
             f"OCR `{res['ocr']}`, {res['date']}, {res['machine']}"), "",
             ("| scorer | lenient P | lenient R | lenient F1 | strict F1 | "
              + " | ".join(f"F1 {f}" for f in res["fields"]) + " | ECE |"),
             "|---" * (6 + len(res["fields"])) + "|"]
    for name, s in res["members"].items():
        lines.append(f"| {name} | {fmt(s['lenient']['precision'])} | "
                     f"{fmt(s['lenient']['recall'])} | {fmt(s['lenient']['f1'])} | "
                     f"{fmt(s['strict']['f1'])} | "
                     + " | ".join(fmt(s["lenient"]["per_field"].get(f, 0.0))
                                  for f in res["fields"]) + f" | {s['ece']:.4f} |")
    f = res["members"]["fused"]
    lines += ["", "oracle recall@k (fused): " + ", ".join(
        f"@{k} {fmt(v)}" for k, v in f["recall_at"].items()),
        f"ECE top-1 (fused): calibrated {f['ece']:.4f}, raw {f['ece_raw']:.4f}"]
    if "throughput" in res:
        t = res["throughput"]
        lines.append(f"throughput on {t['docs']} docs: predictor {t['fast_docs_per_s']:.2f} "
                     f"docs/s, naive loop {t['naive_docs_per_s']:.2f} docs/s, "
                     f"speed-up x{t['speedup']:.2f}")
    if "ceiling" in res:
        c = res["ceiling"]
        lines.append(f"OCR ceiling (lenient): one pass {fmt(c['single']['overall'])}, "
                     f"union of variants {fmt(c['union']['overall'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default="/work/shared/data/sroie")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--ocr", choices=("provided", "tesseract"), default="provided")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--throughput-docs", type=int, default=100, help="0 to skip")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="JSON file for the figures")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    pred = load_predictor(args.model)
    rep = load_documents(args.data, split=args.split, ocr=args.ocr)
    docs = rep.documents
    members = ("bert", "layoutlm", "fused")
    lps = pred.member_pass_log_probs(docs, members)
    res: dict[str, Any] = {
        "model_version": pred.version, "split": args.split, "ocr": args.ocr,
        "n_docs": len(docs), "load_failures": len(rep.failures),
        "fields": pred.schema.field_names,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{torch.get_num_threads()} torch threads, {platform.machine()}, "
                   f"torch {torch.__version__}",
        "members": {m: scores(pred, docs, lps[m], args.k) for m in members}}
    if args.ocr == "tesseract":
        main_only = [[p[0]] for p in lps["fused"]]
        res["members"]["fused, main pass only"] = scores(pred, docs, main_only, args.k)
        profile = pred.ocr_profiles.get("tesseract")
        if profile is not None:  # what the image-input decisions add (same forward pass)
            res["members"]["fused, provided-OCR decisions"] = scores(
                replace_profiles(pred, {}), docs, lps["fused"], args.k)
            if profile.correct_below > 0:
                res["members"]["fused, tesseract profile without lexicon"] = scores(
                    replace_profiles(pred, {"tesseract": replace(profile, correct_below=0.0)}),
                    docs, lps["fused"], args.k)
        from extractor.align import ocr_ceiling
        res["ceiling"] = ocr_ceiling(docs, pred.schema, "lenient")
    if args.throughput_docs:
        res["throughput"] = throughput(pred, docs[:args.throughput_docs])
    text = report(res)
    print(text)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
