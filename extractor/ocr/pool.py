"""The batch runner: pages read in parallel by single-threaded OCR engines (tesseract with one
OpenMP thread, ONNX Runtime with one intra-op thread) in a process pool that survives the
death of a worker."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from extractor.ocr.cache import default_cache_dir
from extractor.ocr.config import ReadOptions
from extractor.ocr.engines import OcrPass
from extractor.ocr.page import OcrJob, OcrOutcome, run_job


def _init_worker(omp_threads: int = 1) -> None:
    os.environ["OMP_THREAD_LIMIT"] = str(omp_threads)


@contextmanager
def _thread_cap(omp_threads: int) -> Iterator[None]:
    """Tesseract's OpenMP cap for pages read in this process, restored afterwards."""
    saved = os.environ.get("OMP_THREAD_LIMIT")
    _init_worker(omp_threads)
    try:
        yield
    finally:  # the inline path must not leave our thread cap in the caller's env
        if saved is None:
            os.environ.pop("OMP_THREAD_LIMIT", None)
        else:
            os.environ["OMP_THREAD_LIMIT"] = saved


WORKER_DIED = ("the OCR worker process died reading this page (killed, or out of memory); "
               "the page was retried alone and it died again")


def iter_ocr(jobs: Sequence[OcrJob], configs: Sequence[OcrPass], workers: int | None = None,
             cache_dir: str | Path | None = "default", options: ReadOptions | None = None,
             omp_threads: int = 1) -> Iterator[OcrOutcome]:
    """Outcomes of ``jobs`` in job order, read by ``workers`` single-threaded tesseracts.

    ``cache_dir="default"`` uses ``default_cache_dir()``; ``None`` disables the cache. Per-job
    errors are returned in the outcomes, never raised, so one bad page does not stop a batch;
    a worker process that dies takes only its page (see ``_pooled``). At most a few pages per
    worker are in flight, so memory stays bounded however long ``jobs`` is.
    """
    if not configs:
        raise ValueError("OCR needs at least one OCR pass")
    cache = None if cache_dir is None else str(
        default_cache_dir() if cache_dir == "default" else Path(cache_dir))
    options = options or ReadOptions()
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    if workers == 1:
        with _thread_cap(omp_threads):
            for job in jobs:
                yield run_job(job, configs, cache, options)
        return
    yield from _pooled(jobs, list(configs), cache, options, workers, omp_threads)


def _pooled(jobs: Sequence[OcrJob], configs: list[OcrPass], cache: str | None,
            options: ReadOptions, workers: int, omp_threads: int) -> Iterator[OcrOutcome]:
    """``iter_ocr`` over a process pool that survives the death of a worker.

    When a worker dies (SIGKILL, the kernel's out-of-memory killer) the pool breaks and every
    page in flight fails with it. Those pages are retried one at a time in a fresh pool: a
    page that breaks the pool when alone is the culprit and fails with ``WORKER_DIED``; the
    others are read normally.
    """
    # spawn, not fork: the parent may hold torch/streamlit threads that fork would copy.
    ctx = mp.get_context("spawn")
    queue: deque[int] = deque(range(len(jobs)))
    suspects: deque[int] = deque()
    done: dict[int, OcrOutcome] = {}
    nxt, ahead, in_flight = 0, 4 * workers, 2 * workers
    while nxt < len(jobs):
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(omp_threads,))
        running: dict[Future[OcrOutcome], int] = {}
        alone: int | None = None
        broken: list[int] = []
        try:
            while nxt < len(jobs) and not broken:
                if suspects:
                    if not running:
                        alone = suspects.popleft()
                        running[pool.submit(run_job, jobs[alone], configs, cache, options)] = alone
                else:  # bounded look-ahead: results are yielded in order from ``done``
                    while queue and len(running) < in_flight and queue[0] < nxt + ahead:
                        i = queue.popleft()
                        running[pool.submit(run_job, jobs[i], configs, cache, options)] = i
                if not running:  # cannot happen (``nxt`` is queued, suspect or done)
                    raise AssertionError(f"OCR scheduler stalled at job {nxt}")
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    i = running.pop(fut)
                    try:
                        done[i] = fut.result()
                    except BrokenProcessPool:
                        broken.append(i)
                    except Exception as e:  # noqa: BLE001 - e.g. an unpicklable result
                        done[i] = OcrOutcome(jobs[i], error=f"OCR worker failed ({e!r})")
                while nxt in done:
                    yield done.pop(nxt)
                    nxt += 1
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        broken += running.values()
        for i in sorted(broken):
            if i == alone:
                done[i] = OcrOutcome(jobs[i], error=WORKER_DIED)
            else:
                suspects.append(i)
        while nxt in done:
            yield done.pop(nxt)
            nxt += 1


def ocr_batch(jobs: Sequence[OcrJob], configs: Sequence[OcrPass], workers: int | None = None,
              cache_dir: str | Path | None = "default", progress: bool = True,
              desc: str = "OCR", omp_threads: int = 1,
              options: ReadOptions | None = None) -> list[OcrOutcome]:
    """``iter_ocr`` collected into a list (in job order), with a progress bar.

    ``omp_threads`` is tesseract's OpenMP thread cap per process (kept at 1 but for benchmarks).
    """
    if not configs:
        raise ValueError("ocr_batch needs at least one OCR pass")
    with tqdm(total=len(jobs), desc=desc, unit="page", disable=not progress) as bar:
        out = []
        for outcome in iter_ocr(jobs, configs, workers, cache_dir, options, omp_threads):
            out.append(outcome)
            bar.update()
    return out
