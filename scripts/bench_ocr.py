"""Benchmark tesseract on SROIE receipts: speed (threads x workers) and gold-value coverage.

    python scripts/bench_ocr.py timing   --n 20          # s/receipt, OMP_THREAD_LIMIT 1 vs all
    python scripts/bench_ocr.py coverage --n 40          # which OCR variants find gold values
    python scripts/bench_ocr.py synth    --n 40          # the same coverage on the demo receipts
    python scripts/bench_ocr.py plain    --n 20          # kvloop's OCR pool vs a pytesseract loop

``plain`` reads the same receipts twice, one pass each, in one run: a plain
``pytesseract.image_to_data(Image.open(page))`` loop in this process (tesseract's own
threading: what a script without kvloop does), then ``iter_image_documents`` with ``--workers``
single-threaded tesseract processes, pixel caps and the orientation check, and an empty cache of
its own; it prints wall seconds, pages/s and words found of each.

Timing runs without the OCR cache; coverage uses it (a re-run is instant). "Coverage" of a
gold value = its lenient key (no whitespace, case folded) is a substring of the lenient key of
the page's OCR words: an upper bound on what an extractor reading those words can get right.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from extractor.document import RECEIPT_SCHEMA, Word
from extractor.normalize import lenient_key
from extractor.ocr import OcrConfig, OcrJob, ocr_batch, variants_by_name

SROIE = Path(os.environ.get("KVLOOP_SROIE", REPO.parent / "shared" / "data" / "sroie"))


def sroie_jobs(n: int, offset: int = 0) -> tuple[list[OcrJob], dict[str, dict[str, str | None]]]:
    """``n`` SROIE receipts (sorted by id, from ``offset``) and their gold values."""
    keys = sorted((SROIE / "key").glob("*.json"))[offset:offset + n]
    if not keys:
        sys.exit(f"no SROIE receipts under {SROIE} (set KVLOOP_SROIE)")
    gold = {k.stem: json.loads(k.read_text(encoding="utf-8")) for k in keys}
    return [OcrJob(k.stem, str(SROIE / "img" / f"{k.stem}.jpg")) for k in keys], gold


def timing(n: int, threads_opts: list[str], workers_opts: list[int]) -> None:
    """Wall and CPU seconds per receipt; CPU time (tesseract's, via reaped children) is far less
    sensitive than wall time to other jobs sharing the machine."""
    jobs, _ = sroie_jobs(n)
    config = [OcrConfig("psm6", psm=6)]
    cpus = os.cpu_count() or 1
    print(f"tesseract psm6 over {len(jobs)} SROIE receipts, no cache, {cpus} CPUs, "
          f"load average at start {os.getloadavg()[0]:.1f}")
    print(f"{'OMP threads/process':>20} {'workers':>8} {'wall s':>8} {'wall s/rcpt':>12} "
          f"{'CPU s/rcpt':>11}")
    for opt in threads_opts:
        threads = cpus if opt == "all" else int(opt)
        label = f"{cpus} (default)" if opt == "all" else str(threads)
        for workers in workers_opts:
            t0, c0 = time.perf_counter(), os.times()
            outs = ocr_batch(jobs, config, workers=workers, cache_dir=None, progress=False,
                             omp_threads=threads)
            wall, c1 = time.perf_counter() - t0, os.times()
            cpu = (c1.children_user + c1.children_system) - (c0.children_user + c0.children_system)
            bad = sum(o.error is not None for o in outs)
            print(f"{label:>20} {workers:>8} {wall:8.1f} {wall / len(jobs):12.2f} "
                  f"{cpu / len(jobs):11.2f}" + (f"  ({bad} failed)" if bad else ""), flush=True)


def found(words: list[Word], value: str | None) -> bool:
    return bool(value) and lenient_key(value) in lenient_key("".join(w.text for w in words))


def coverage(jobs: list[OcrJob], gold: dict[str, dict[str, str | None]], workers: int,
             configs: list[OcrConfig]) -> None:
    outs = ocr_batch(jobs, configs, workers=workers, desc="OCR variants")
    fields = RECEIPT_SCHEMA.field_names
    pairs = [(o.job.doc_id, f) for o in outs if o.error is None for f in fields
             if gold[o.job.doc_id].get(f)]
    hits = {c.name: {(o.job.doc_id, f) for o in outs if o.error is None for f in fields
                     if found(o.words[c.name], gold[o.job.doc_id].get(f))} for c in configs}
    total = len(pairs)
    print(f"{len(outs)} receipts, {total} gold values; coverage = value found in the OCR text "
          "(lenient)")
    print(f"{'variant':>16} {'alone':>7} " + " ".join(f"{f:>8}" for f in fields))
    for c in configs:
        per = [sum(1 for d, g in hits[c.name] if g == f) / max(1, sum(1 for _, g in pairs
                                                                    if g == f)) for f in fields]
        print(f"{c.name:>16} {len(hits[c.name]) / total:7.1%} "
              + " ".join(f"{p:8.1%}" for p in per))
    # Greedy forward selection: the variant adding most newly covered values, each step.
    chosen: list[str] = []
    covered: set[tuple[str, str]] = set()
    print("greedy union (variant added -> cumulative coverage):")
    while len(chosen) < len(configs):
        name = max((c.name for c in configs if c.name not in chosen),
                   key=lambda k: len(hits[k] - covered))
        if not hits[name] - covered and chosen:
            break
        chosen.append(name)
        covered |= hits[name]
        print(f"  + {name:<16} {len(covered) / total:7.1%}")
    everything = set().union(*hits.values())
    print(f"all {len(configs)} variants: {len(everything) / total:.1%}")


def synth_jobs(n: int) -> tuple[list[OcrJob], dict[str, dict[str, str | None]]]:
    from extractor.synth.demo import demo_id, synth_receipt

    out = Path(os.environ.get("TMPDIR", "/tmp")) / "kvloop-bench-synth"
    out.mkdir(parents=True, exist_ok=True)
    jobs, gold = [], {}
    for i in range(n):
        receipt, img = synth_receipt(0, i)
        path = out / f"{demo_id(i)}.png"
        img.save(path)
        jobs.append(OcrJob(demo_id(i), str(path)))
        gold[demo_id(i)] = receipt.gold
    return jobs, gold


def plain(jobs: list[OcrJob], workers: int) -> None:
    """kvloop's OCR pool against a plain pytesseract loop on the same pages (module doc)."""
    import tempfile

    import pytesseract
    from PIL import Image

    from extractor.document import Document
    from extractor.loaders.images import iter_image_documents
    from extractor.ocr import DEFAULT_VARIANTS

    print(f"{len(jobs)} SROIE receipts, {os.cpu_count()} CPUs, load average at start "
          f"{os.getloadavg()[0]:.1f}")
    start, words = time.perf_counter(), 0
    for job in jobs:
        with Image.open(job.path) as im:
            data = pytesseract.image_to_data(im, output_type=pytesseract.Output.DICT)
        words += sum(1 for t in data["text"] if t.strip())
    rows = [("plain pytesseract loop", time.perf_counter() - start, words)]
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        docs = iter_image_documents(jobs, DEFAULT_VARIANTS[:1], workers, cache_dir=cache)
        words = sum(len(d.words) for d in docs if isinstance(d, Document))
        rows.append((f"kvloop pool, {workers} workers", time.perf_counter() - start, words))
    print(f"  {'reader':28s} {'wall s':>7s} {'pages/s':>8s} {'words':>7s}")
    for name, wall, n_words in rows:
        print(f"  {name:28s} {wall:7.1f} {len(jobs) / wall:8.2f} {n_words:7d}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("what", choices=["timing", "coverage", "synth", "plain"])
    p.add_argument("--n", type=int, default=20, help="receipts to use")
    p.add_argument("--threads", default="1,all",
                   help="timing: OMP_THREAD_LIMIT values per process ('all' = one per CPU, "
                        "what OpenMP does by default)")
    p.add_argument("--workers-list", default="1,2", help="timing: process counts to try")
    p.add_argument("--variants", default="all", help="'all', 'default' or a comma list")
    p.add_argument("--offset", type=int, default=0, help="skip this many SROIE receipts")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    configs = variants_by_name(args.variants)
    if args.what == "timing":
        timing(args.n, args.threads.split(","), [int(w) for w in args.workers_list.split(",")])
    elif args.what == "plain":
        plain(sroie_jobs(args.n, args.offset)[0], args.workers)
    elif args.what == "coverage":
        coverage(*sroie_jobs(args.n, args.offset), workers=args.workers, configs=configs)
    else:
        coverage(*synth_jobs(args.n), workers=args.workers, configs=configs)


if __name__ == "__main__":
    main()
