"""``kvloop extract <model> <images|pdfs|dataset> --out results.jsonl [--rerank REWARD]``.

Loads the documents (tesseract for images/PDFs, or a dataset's own OCR), runs the saved model
over them in chunks as the OCR pool reads them, and appends one line per document to
``--out`` (``extractor.model.batch.ResultsFile``: ``ExtractionResult.export()`` plus the OCR
settings that produced the words). Files that cannot be read and documents that fail are
listed at the end; the batch goes on past them.

Resumable: run the same command again after a crash or a kill and it skips the documents
already in ``--out`` and does the rest (a torn last line is dropped first); ``--overwrite``
starts afresh. Exit status: 0 when every document was extracted, 1 when some file or document
failed (0 with ``--allow-partial`` if at least one result was written), 2 for a bad model,
input or output.

``--rerank REWARD_DIR`` reorders each field's k-best by a reward model (``kvloop train
reward``; best-of-k, ``extractor.model.predictor.RerankingPredictor``, the same one the review
UI's uploads use) before writing; the results' model version is then
``<extractor version>+<reward version>``.
"""

from __future__ import annotations

import argparse
import sys

from extractor.devices import DEVICE_HELP
from extractor.loaders.report import ALLOW_PARTIAL_HELP, batch_status
from kvloop.commands.data import add_read_arguments, read_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model directory written by `kvloop train base`")
    parser.add_argument("input", help="image/PDF file or folder, SROIE folder, JSONL, or demo")
    parser.add_argument("--out", required=True,
                        help="output JSONL of extraction results (appended to: a run that was "
                             "stopped resumes where it stopped)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out instead of resuming it")
    parser.add_argument("--k", type=int, default=5, help="candidates per field (default: 5)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    parser.add_argument("--ocr", choices=("provided", "tesseract"), default="provided",
                        help="for datasets with their own OCR: use it, or re-read with tesseract")
    parser.add_argument("--split", default="all", help="dataset split (train/dev/all/...)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--workers", type=int, default=2, help="parallel tesseract processes")
    parser.add_argument("--device", default="auto", help=f"model device: {DEVICE_HELP}")
    parser.add_argument("--rerank", metavar="REWARD_DIR", default=None,
                        help="reward model (`kvloop train reward`) that reorders each field's "
                             "k-best before writing (confidence stays the extractor's)")
    parser.add_argument("--allow-partial", action="store_true", help=ALLOW_PARTIAL_HELP)
    add_read_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from extractor.loaders import iter_documents
    from extractor.model.batch import ResultsFile, extract_to_file
    from extractor.model.predictor import load_predictor

    torch.set_num_threads(args.threads)
    try:
        options = read_options(args)
        predictor = load_predictor(args.model, args.device, rerank=args.rerank)
        out = ResultsFile(args.out, predictor.version, args.ocr, overwrite=args.overwrite)
        done = out.open()
    except (OSError, ValueError) as e:
        print(f"kvloop extract: {e}", file=sys.stderr)
        return 2
    try:
        items = iter_documents(args.input, split=args.split, ocr=args.ocr, workers=args.workers,
                               options=options, exclude=done)
        outcome = extract_to_file(predictor, items, out, done, args.ocr, k=args.k,
                                  batch_size=args.batch_size)
    except (OSError, ValueError) as e:
        print(f"kvloop extract: {e}", file=sys.stderr)
        return 2
    finally:
        out.close()
    again = f" ({outcome.skipped} already there from an earlier run)" if outcome.skipped else ""
    torn = " (dropped a torn last line first)" if out.torn else ""
    print(f"{predictor.version}: wrote {outcome.n_ok} result(s) to {args.out}{again}{torn}")
    for f in outcome.load_failures:
        print(f"  FAILED to load {f.path}: {f.reason}", file=sys.stderr)
    for x in outcome.failures:
        print(f"  FAILED to extract {x.doc_id} ({x.source}): {x.reason}", file=sys.stderr)
    status, why = batch_status(outcome.n_failed, outcome.n_ok + outcome.skipped,
                               args.allow_partial)
    if why:
        print(f"kvloop extract: {why}", file=sys.stderr)
    return status
