"""``kvloop extract <model> <images|pdfs|dataset> --out results.jsonl [--rerank REWARD]``.

Loads the documents (tesseract for images/PDFs, or a dataset's own OCR), runs the saved model
over them in batches and writes one ``ExtractionResult.export()`` per line. Files that cannot be
read and documents that fail are listed at the end; the batch goes on past them.

``--rerank REWARD_DIR`` reorders each field's k-best by a reward model (``kvloop train
reward``; best-of-k, ``extractor.model.predictor.RerankingPredictor``, the same one the review
UI's uploads use) before writing; the results' model version is then
``<extractor version>+<reward version>``.
"""

from __future__ import annotations

import argparse
import json
import sys

from extractor.devices import DEVICE_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model directory written by `kvloop train base`")
    parser.add_argument("input", help="image/PDF file or folder, SROIE folder, JSONL, or demo")
    parser.add_argument("--out", required=True, help="output JSONL of extraction results")
    parser.add_argument("--k", type=int, default=5, help="candidates per field (default: 5)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    parser.add_argument("--ocr", choices=("provided", "tesseract"), default="provided",
                        help="for datasets with their own OCR: use it, or re-read with tesseract")
    parser.add_argument("--split", default="all", help="dataset split (train/dev/all/...)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="auto", help=f"model device: {DEVICE_HELP}")
    parser.add_argument("--rerank", metavar="REWARD_DIR", default=None,
                        help="reward model (`kvloop train reward`) that reorders each field's "
                             "k-best before writing (confidence stays the extractor's)")


def run(args: argparse.Namespace) -> int:
    import torch

    from extractor.loaders import load_documents
    from extractor.model.batch import BatchOutcome, extract_batches
    from extractor.model.predictor import load_predictor

    torch.set_num_threads(args.threads)
    try:
        predictor = load_predictor(args.model, args.device, rerank=args.rerank)
        report = load_documents(args.input, split=args.split, ocr=args.ocr)
    except (OSError, ValueError) as e:
        print(f"kvloop extract: {e}", file=sys.stderr)
        return 2
    outcome = BatchOutcome()
    results = extract_batches(predictor, report.documents, k=args.k,
                              batch_size=args.batch_size, outcome=outcome)
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(res.export(), ensure_ascii=False) + "\n" for res in results)
    print(f"{predictor.version}: wrote {outcome.n_ok} result(s) to {args.out}")
    for f in report.failures:
        print(f"  FAILED to load {f.path}: {f.reason}", file=sys.stderr)
    for x in outcome.failures:
        print(f"  FAILED to extract {x.doc_id} ({x.source}): {x.reason}", file=sys.stderr)
    return 0 if outcome.n_ok or not (report.failures or outcome.failures) else 1
