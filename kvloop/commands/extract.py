"""``kvloop extract <model> <images|pdfs|dataset> --out results.jsonl [--rerank REWARD]``.

Loads the documents (the OCR engines for images/PDFs, or a dataset's own OCR), runs the saved model
over them in chunks as the OCR pool reads them, and appends one line per document to
``--out`` (``extractor.model.batch.ResultsFile``: ``ExtractionResult.export()`` plus the OCR
settings that produced the words). Files that cannot be read and documents that fail are
listed at the end; the batch goes on past them.

Resumable: run the same command again after a crash or a kill and it skips the documents
already in ``--out`` and does the rest (a torn last line is dropped first); ``--overwrite``
starts afresh. Exit status: 0 when every document was extracted, 1 when some file or document
failed (0 with ``--allow-partial`` if at least one result was written), 2 for a bad model,
input or output.

``--engine ray`` runs the same batch on Ray Data (``extractor.model.ray_engine``): OCR tasks
on the cluster's CPUs, model actors that load the predictor once, the lines written here; a
local Ray of ``--ray-cpus`` CPUs, or the cluster at ``--ray-address``. Its lines equal the
local engine's, document for document, and it resumes the same ``--out``.

``--rerank REWARD_DIR`` reorders each field's k-best by a reward model (``kvloop train
reward``; best-of-k, ``extractor.model.predictor.RerankingPredictor``, the same one the review
UI's uploads use) before writing; the results' model version is then
``<extractor version>+<reward version>``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from extractor.devices import DEVICE_HELP
from extractor.loaders import OCR_MODES
from extractor.loaders.report import ALLOW_PARTIAL_HELP, batch_status
from kvloop.commands.data import add_read_arguments, read_options

if TYPE_CHECKING:
    from extractor.model.batch import BatchOutcome, ResultsFile
    from extractor.model.predictor import KVPredictor
    from extractor.ocr import ReadOptions

# Ray's own failures (not installed, a cluster that cannot run the pipeline) end a Ray run.
_ENGINE_ERRORS: dict[str, tuple[type[Exception], ...]] = {"local": (), "ray": (RuntimeError,)}


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
    parser.add_argument("--ocr", choices=OCR_MODES, default="provided",
                        help="for datasets with their own OCR: use it, or re-read the page "
                             "images with the OCR engines ('images', --ocr-engines) or the "
                             "five tesseract passes; images are always read with the engines, "
                             "PDF pages from their own text where usable ('provided') or OCR'd "
                             "(the other modes)")
    parser.add_argument("--split", default="all", help="dataset split (train/dev/all/...)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 2; with --engine ray: 1 per model "
                             "actor, which reserves as many CPUs)")
    parser.add_argument("--workers", type=int, default=2,
                        help="parallel OCR processes (local engine; Ray runs one OCR "
                             "task per free CPU)")
    parser.add_argument("--device", default="auto", help=f"model device: {DEVICE_HELP}")
    parser.add_argument("--rerank", metavar="REWARD_DIR", default=None,
                        help="reward model (`kvloop train reward`) that reorders each field's "
                             "k-best before writing (confidence stays the extractor's)")
    parser.add_argument("--allow-partial", action="store_true", help=ALLOW_PARTIAL_HELP)
    add_read_arguments(parser)
    ray = parser.add_argument_group("engine")
    ray.add_argument("--engine", choices=("local", "ray"), default="local",
                     help="local: an OCR pool and the model in this process; ray: the "
                          "same pipeline on Ray Data (default: local)")
    ray.add_argument("--ray-address", default=None, metavar="ADDR",
                     help="Ray cluster to run on ('auto', 'ray://head:10001'); default: a "
                          "local Ray of --ray-cpus CPUs, started and shut down here")
    ray.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray (default: 2)")
    ray.add_argument("--ray-actors", type=int, default=1,
                     help="model actors, each loading the model once (default: 1)")


def run(args: argparse.Namespace) -> int:
    import torch

    from extractor.model.batch import ResultsFile
    from extractor.model.predictor import load_predictor

    threads = args.threads or (1 if args.engine == "ray" else 2)
    torch.set_num_threads(threads)
    try:
        options = read_options(args)
        # Under Ray the driver loads the model only to check it and name its version: on the
        # CPU, whatever device the actors use.
        device = "cpu" if args.engine == "ray" else args.device
        predictor = load_predictor(args.model, device, rerank=args.rerank)
        out = ResultsFile(args.out, predictor.version, args.ocr, overwrite=args.overwrite)
        done = out.open()
    except (OSError, ValueError) as e:
        print(f"kvloop extract: {e}", file=sys.stderr)
        return 2
    errors: tuple[type[Exception], ...] = (OSError, ValueError, *_ENGINE_ERRORS[args.engine])
    try:
        if args.engine == "ray":
            outcome = _extract_on_ray(args, threads, out, done, options)
        else:
            outcome = _extract_here(args, predictor, out, done, options)
    except errors as e:
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


def _extract_here(args: argparse.Namespace, predictor: KVPredictor, out: ResultsFile,
                  done: set[str], options: ReadOptions) -> BatchOutcome:
    from extractor.loaders import iter_documents
    from extractor.model.batch import extract_to_file

    items = iter_documents(args.input, split=args.split, ocr=args.ocr, workers=args.workers,
                           options=options, exclude=done)
    return extract_to_file(predictor, items, out, done, args.ocr, k=args.k,
                           batch_size=args.batch_size)


def _extract_on_ray(args: argparse.Namespace, threads: int, out: ResultsFile, done: set[str],
                    options: ReadOptions) -> BatchOutcome:
    from extractor.loaders import plan_documents
    from extractor.model.ray_engine import ModelSpec, RayEngine, extract_with_ray

    engine = RayEngine(args.ray_address, args.ray_cpus, args.ray_actors, threads,
                       gpus=1.0 if args.device.startswith("cuda") else 0.0)
    plan = plan_documents(args.input, split=args.split, ocr=args.ocr, exclude=done)
    model = ModelSpec(args.model, args.device, args.rerank)
    return extract_with_ray(plan, model, out, done, args.ocr, engine, k=args.k,
                            batch_size=args.batch_size, options=options)
