"""Benchmark the OCR engines on the same SROIE receipts: coverage, speed, memory, images-in F1.

    python scripts/bench_ocr_engines.py --split dev                      # coverage + speed
    python scripts/bench_ocr_engines.py --split dev --model runs/base    # + F1 per choice

One run reads every receipt of the split once per engine group (``--groups``: PP-OCRv6, the
first tesseract pass, the other four default tesseract passes), each group timed alone by a
pool of ``--workers`` single-threaded processes and an empty cache of its own, so the seconds
per image of a choice of engines is the sum of its groups'. Then, from those readings, for
each choice (``--choices``, pass specs of ``extractor.ocr.passes_by_name``):

* coverage: a gold value is covered when the page's OCR text (any pass of the choice)
  contains it; lenient = whitespace removed and case folded, strict = whitespace collapsed;
  per field and overall (an upper bound on what an extractor reading those words gets right);
* images per second on ``--workers`` cores (OCR alone, and end to end with ``--model``);
* peak memory: the largest resident set of one OCR worker and of this process (the model);
* with ``--model``: images-in lenient and strict F1 of each choice, and paired bootstrap 95%
  intervals of every choice against the first (``eval.compare.compare_pair``).

Wall times are upper bounds when other jobs share the machine (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from extractor.document import RECEIPT_SCHEMA, Document, Word
from extractor.normalize import lenient_key, strict_key
from extractor.ocr import (
    OcrJob,
    OcrOutcome,
    OcrPass,
    ReadOptions,
    ocr_batch,
    passes_by_name,
)

SROIE = Path(os.environ.get("KVLOOP_SROIE", REPO.parent / "shared" / "data" / "sroie"))
GROUPS = "rapidocr;psm6;psm4_x2+psm4+psm6_adaptive+psm6_x2"
CHOICES = "tesseract;rapidocr;rapidocr+psm6;rapidocr+tesseract"


def sroie_pages(root: Path, split: str, n: int | None) -> list[Document]:
    """The split's receipts with their gold (the provided OCR is not used)."""
    from extractor.loaders import load_documents

    docs = load_documents(root, split=split, progress=False).documents
    return docs[:n] if n else docs


def read_group(jobs: Sequence[OcrJob], passes: Sequence[OcrPass], workers: int,
               cache: str) -> tuple[list[OcrOutcome], float, float]:
    """Every job read with ``passes`` (a cache no other group shares), the wall seconds and
    the CPU seconds of the workers (tesseract's own processes included: reaped children),
    which other jobs on the machine barely change."""
    start, cpu0 = time.perf_counter(), os.times()
    outs = ocr_batch(jobs, passes, workers=workers, cache_dir=cache, progress=False,
                     options=ReadOptions())
    cpu1 = os.times()
    cpu = (cpu1.children_user + cpu1.children_system) - (cpu0.children_user
                                                         + cpu0.children_system)
    return outs, time.perf_counter() - start, cpu


def covered(words: Sequence[Sequence[Word]], value: str, key: Callable[[str], str]) -> bool:
    want = key(value)
    return bool(want) and any(want in key(" ".join(w.text for w in ws)) for ws in words)


def coverage(docs: Sequence[Document], words: dict[str, dict[str, list[Word]]],
             passes: Sequence[str]) -> dict[str, dict[str, list[int]]]:
    """Per key (lenient/strict) and field: [covered, gold values]."""
    out: dict[str, dict[str, list[int]]] = {}
    for name, key in (("lenient", lenient_key), ("strict", strict_key)):
        per = out.setdefault(name, {f: [0, 0] for f in RECEIPT_SCHEMA.field_names})
        for d in docs:
            got = [words[d.id][p] for p in passes if p in words.get(d.id, {})]
            for f, v in (d.gold or {}).items():
                if f in per and v:
                    per[f][0] += covered(got, v, key)
                    per[f][1] += 1
    return out


def pct(hit: int, tot: int) -> str:
    return f"{100 * hit / max(1, tot):5.1f}%"


def choice_documents(docs: Sequence[Document], outs: dict[str, OcrOutcome],
                     passes: Sequence[OcrPass]) -> list[Document]:
    """Each receipt as the choice reads it (its passes' words), gold kept; pages the choice
    could not read are left out (scored as no prediction by ``evaluate_results``)."""
    from extractor.ocr import document_from_words

    out = []
    for d in docs:
        o = outs.get(d.id)
        if o is None:
            continue
        by_name = {p.name: o.words[p.name] for p in passes if p.name in o.words}
        if not any(by_name.values()):
            continue
        page = document_from_words(d.id, by_name, passes, o.size, source=d.source,
                                   settings=o.settings(passes))
        page.gold = d.gold
        out.append(page)
    return out


def f1_rows(model_dir: str, docs: Sequence[Document], outs: dict[str, OcrOutcome],
            choices: dict[str, list[OcrPass]], n_boot: int) -> tuple[list[str], float]:
    """Images-in F1 per choice and paired CIs against the first; model seconds per image."""
    from eval.compare import compare_pair
    from eval.evaluate import evaluate_results
    from extractor.model.predictor import load_predictor

    pred = load_predictor(model_dir, device="cpu")
    runs, lines, model_s, n = [], [], 0.0, 0
    for label, passes in choices.items():
        pages = choice_documents(docs, outs, passes)
        start = time.perf_counter()
        results = pred.predict(pages)
        model_s += time.perf_counter() - start
        n += len(pages)
        run = evaluate_results(list(docs), results, RECEIPT_SCHEMA, model="m", data="dev",
                               ocr=label)
        s = run.metrics
        runs.append(run)
        lines.append(f"  {label:<24} lenient F1 {100 * s['lenient']['overall']['f1']:5.1f}  "
                     f"strict F1 {100 * s['strict']['overall']['f1']:5.1f}")
    for run in runs[1:]:
        c = compare_pair(runs[0], run, RECEIPT_SCHEMA.field_names, n_boot=n_boot)
        for m in ("lenient_f1", "strict_f1"):
            ci = c["metrics"][m]
            lines.append(f"  {run.ocr} - {runs[0].ocr}: {m} {100 * ci['diff']:+5.1f} "
                         f"[{100 * ci['low']:+5.1f}, {100 * ci['high']:+5.1f}]")
    return lines, model_s / max(1, n)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=str(SROIE), help="a SROIE folder")
    p.add_argument("--split", default="dev")
    p.add_argument("--n", type=int, default=None, help="only the first N receipts")
    p.add_argument("--groups", default=GROUPS, help="';'-separated pass specs timed alone")
    p.add_argument("--choices", default=CHOICES, help="';'-separated pass specs compared")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--model", default=None, help="a model directory: also images-in F1")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--cache-dir", default=None,
                   help="read through this OCR cache ('default': $KVLOOP_CACHE/ocr) instead of "
                        "an empty one per group: pages already read cost nothing, so the "
                        "timings then mean nothing (for F1 runs after a timed one)")
    args = p.parse_args()

    docs = sroie_pages(Path(args.data), args.split, args.n)
    jobs = [OcrJob(d.id, str(d.source)) for d in docs]
    groups = {g: passes_by_name(g) for g in args.groups.split(";")}
    choices = {c: passes_by_name(c) for c in args.choices.split(";")}
    print(f"{len(docs)} SROIE {args.split} receipts, {args.workers} workers, {os.cpu_count()} "
          f"CPUs, load average at start {os.getloadavg()[0]:.1f}", flush=True)

    outs: dict[str, OcrOutcome] = {}
    seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for g, passes in groups.items():
            cache = str(Path(tmp) / g) if args.cache_dir is None else args.cache_dir
            read, wall, cpu = read_group(jobs, passes, args.workers, cache)
            for o in read:
                merged = outs.setdefault(o.job.doc_id, o)
                if merged is not o:
                    merged.words.update(o.words)
                    merged.failed.update(o.failed)
            for p_ in passes:  # per pass: the group's share
                seconds[p_.name] = wall / len(passes)
                cpu_seconds[p_.name] = cpu / len(passes)
            bad = sum(o.error is not None for o in read)
            print(f"  group {g:<36} {wall / len(jobs):5.2f} s/image wall on {args.workers} "
                  f"workers ({len(jobs) / wall:4.2f} images/s), {cpu / len(jobs):5.2f} CPU "
                  f"s/image" + (f", {bad} failed" if bad else ""), flush=True)
    words = {d: o.words for d, o in outs.items() if o.error is None}
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    print(f"\ncoverage of gold values (lenient | strict), {len(docs)} receipts:")
    fields = RECEIPT_SCHEMA.field_names
    print("images/s: wall on the pool; CPU: 2 cores / CPU seconds per image (no contention)")
    print(f"  {'choice':<24} {'images/s':>8} {'CPU':>5} {'lenient':>8} {'strict':>8}  "
          + "  ".join(f"{f + ' L/S':>15}" for f in fields))
    for label, passes in choices.items():
        cov = coverage(docs, words, [p_.name for p_ in passes])
        wall = sum(seconds[p_.name] for p_ in passes)
        cpu = sum(cpu_seconds[p_.name] for p_ in passes) / len(jobs)
        tot = {k: [sum(v[0] for v in cov[k].values()), sum(v[1] for v in cov[k].values())]
               for k in cov}
        print(f"  {label:<24} {len(jobs) / wall:8.2f} {args.workers / cpu:5.2f} "
              f"{pct(*tot['lenient']):>8} "
              f"{pct(*tot['strict']):>8}  " + "  ".join(
                  f"{pct(*cov['lenient'][f])}/{pct(*cov['strict'][f])}" for f in fields))
    print(f"\npeak memory: {worker_mb:,.0f} MB per OCR worker (largest), this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")

    if args.model:
        lines, model_s = f1_rows(args.model, docs, outs, choices, args.n_boot)
        print(f"\nimages-in F1 ({args.model}, model {model_s:.2f} s/image on this process):")
        print("\n".join(lines))
        for label, passes in choices.items():
            # OCR wall time per image on the pool, then the model's time in this process
            end = 1 / (sum(seconds[p_.name] for p_ in passes) / len(jobs) + model_s)
            print(f"  end to end {label:<24} {end:4.2f} images/s")
        print(f"peak memory with the model: this process "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    print(json.dumps({"load_average_end": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
