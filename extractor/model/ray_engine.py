"""``kvloop extract --engine ray``: the same batch as ``extract_to_file``, run on Ray Data.

The driver plans the input (``extractor.loaders.plan_documents``: the same split, the same
``--out`` resume and the same OCR passes as the local engine), then runs

    work items -> map_batches(read_pages)   OCR: Ray tasks of 1 CPU, one page each
               -> map_batches(ExtractStage) model: actors, each loads the predictor once
               -> the driver, which appends each batch's lines to the ``ResultsFile``

Work items are image / PDF pages (``OcrJob``), dataset documents that ``--ocr tesseract``
re-reads, or documents read already (a dataset's own OCR: SROIE, JSONL, demo), which skip
the OCR stage. The OCR stage calls the local engine's own functions
(``iter_image_documents`` / ``iter_tesseract_documents`` with one worker: tesseract inline,
single-threaded, same passes, same orientation check, same cache); the model stage calls
``predict_isolated`` and ``result_line``; so each line equals the local engine's, document for
document (only ``created_at`` and the order of lines differ).

Failures travel as records in the batch, never as exceptions: a page tesseract cannot read is
a ``LoadFailure``, a document whose extraction raises an ``ExtractFailure``. A page or batch
whose Ray task dies outright (its worker killed, out of memory) is skipped by Ray Data and
reported as lost, so a run always accounts for every document it planned.

Rows are ``{"id": document id, "item": work item / page / result}``: the items are Python
objects, which Ray Data carries in an object column (serialised by Ray itself, as it does every
task's arguments), so they arrive exactly as they were built.

Ray: a local Ray of ``RayEngine.cpus`` CPUs, started and shut down here, or the cluster at
``RayEngine.address`` (``auto``, ``ray://head:10001``), whose workers must have kvloop
installed and see the model and the input at the same paths as the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from extractor.document import Document
from extractor.loaders import ReadPlan
from extractor.loaders.report import LoadFailure
from extractor.model.batch import (
    CHUNK_BATCHES,
    BatchOutcome,
    ExtractFailure,
    ResultsFile,
    new_documents,
    predict_isolated,
    result_line,
)
from extractor.ocr import OcrJob, OcrPass, ReadOptions

Batch = dict[str, Any]  # a Ray Data batch in numpy format: column -> array of values
LOST = ("no result came back from Ray: the task reading or extracting it failed (its worker "
        "died or was killed; Ray's log above says why)")


@dataclass(frozen=True)
class RayEngine:
    """Where the pipeline runs and how big its model stage is.

    ``address``: a running cluster (``auto``, ``ray://head:10001``); ``None`` starts a local
    Ray limited to ``cpus`` CPUs and shuts it down afterwards. ``actors`` model actors each run
    torch with ``threads`` threads and reserve as many CPUs (``gpus`` GPUs each, for a CUDA
    device); every OCR task takes 1 CPU.
    """

    address: str | None = None
    cpus: int = 2
    actors: int = 1
    threads: int = 1
    gpus: float = 0.0

    def __post_init__(self) -> None:
        for name in ("cpus", "actors", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"ray {name} must be at least 1, got {getattr(self, name)}")

    def check_fits(self, needs_ocr: bool) -> None:
        """``ValueError`` when a local Ray's CPUs cannot hold the model actors plus one OCR
        task (Ray would wait for CPUs forever); a cluster is taken as it is."""
        if self.address:
            return
        model = self.actors * self.threads
        need = model + (1 if needs_ocr else 0)
        if need > self.cpus:
            ocr = " and 1 for OCR" if needs_ocr else ""
            raise ValueError(f"the local Ray has {self.cpus} CPU(s) (--ray-cpus), the model "
                             f"actors need {model} ({self.actors} x {self.threads} threads)"
                             f"{ocr}: lower --threads or raise --ray-cpus")


@dataclass(frozen=True)
class ModelSpec:
    """The predictor each model actor loads (``load_predictor`` arguments)."""

    model_dir: str
    device: str = "auto"
    rerank: str | None = None


# -- rows ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Carried:
    """One item in the ``item`` column. Bare, a result line (a dict) would become an Arrow
    struct whose values come back as numpy arrays; wrapped, every item is a Python object that
    Ray serialises and hands back unchanged."""

    value: Any


def as_batch(rows: list[tuple[str, Any]]) -> Batch:
    return {"id": [r[0] for r in rows], "item": [Carried(r[1]) for r in rows]}


def items_of(batch: Batch) -> list[Any]:
    return [c.value for c in batch["item"]]


def work_rows(plan: ReadPlan, done: set[str],
              outcome: BatchOutcome) -> tuple[list[tuple[str, Any]], dict[str, str | None]]:
    """The plan's work items as rows, and where each document comes from (for failures).

    Documents go through ``new_documents`` (resume, repeated ids) as in the local engine;
    pages were kept out of ``done`` by the plan already.
    """
    if plan.jobs:
        return ([(j.doc_id, j) for j in plan.jobs],
                {j.doc_id: j.path for j in plan.jobs})
    docs = list(new_documents(plan.documents, done, outcome))
    return [(d.id, d) for d in docs], {d.id: d.source for d in docs}


# -- the OCR stage ---------------------------------------------------------------------------

def read_item(item: OcrJob | Document, configs: list[OcrPass], options: ReadOptions | None,
              cache_dir: str) -> Document | LoadFailure:
    """One page read in this task as the local pool reads it (tesseract inline, one thread)."""
    from extractor.loaders.images import iter_image_documents, where
    from extractor.loaders.sroie import iter_tesseract_documents

    try:
        if isinstance(item, OcrJob):
            return next(iter_image_documents([item], configs, 1, cache_dir, options))
        return next(iter_tesseract_documents([item], workers=1, cache_dir=cache_dir,
                                             configs=configs, options=options))
    except Exception as e:  # noqa: BLE001 - a bug costs this page, not the batch
        name = where(item) if isinstance(item, OcrJob) else str(item.source or item.id)
        return LoadFailure(name, f"unexpected error reading the page ({type(e).__name__}: {e})")


def read_pages(batch: Batch, configs: list[OcrPass], options: ReadOptions | None,
               cache_dir: str) -> Batch:
    """The OCR stage: each work item's page (a ``Document``) or its ``LoadFailure``."""
    return as_batch([(str(i), read_item(item, configs, options, cache_dir))
                     for i, item in zip(batch["id"], items_of(batch))])


# -- the model stage -------------------------------------------------------------------------

class ExtractStage:
    """The model stage: an actor holding one predictor, loaded once; a batch of pages in,
    their result lines (``result_line``) or failures out, load failures passed through."""

    def __init__(self, model: ModelSpec, threads: int, ocr_mode: str, k: int,
                 batch_size: int) -> None:
        import torch

        from extractor.model.predictor import load_predictor

        torch.set_num_threads(threads)
        self.predictor = load_predictor(model.model_dir, model.device, rerank=model.rerank)
        self.ocr_mode, self.k, self.batch_size = ocr_mode, k, batch_size

    def __call__(self, batch: Batch) -> Batch:
        ids = [str(i) for i in batch["id"]]
        items = items_of(batch)
        docs = [d for d in items if isinstance(d, Document)]
        rows = [(i, x) for i, x in zip(ids, items) if not isinstance(x, Document)]
        outcome = BatchOutcome()
        if not docs:  # every page of the batch failed to read
            return as_batch(rows)
        try:
            results = predict_isolated(self.predictor, docs, self.k, self.batch_size, outcome)
            by_id = {d.id: d for d in docs}
            rows += [(r.doc_id, result_line(
                r, by_id[r.doc_id], self.ocr_mode,
                self.predictor.accept_decisions(by_id[r.doc_id], r))) for r in results]
        except Exception as e:  # noqa: BLE001 - e.g. a line that cannot be built: records
            outcome.failures = [ExtractFailure(d.id, d.source, f"{type(e).__name__}: {e}")
                                for d in docs]
        rows += [(f.doc_id, f) for f in outcome.failures]
        return as_batch(rows)


# -- the driver ------------------------------------------------------------------------------

@contextmanager
def ray_session(engine: RayEngine) -> Iterator[Any]:
    """The ``ray`` module, connected to ``engine.address`` or to a local Ray of
    ``engine.cpus`` CPUs started here (and shut down on the way out). A Ray this process
    started already is used as it is and left running."""
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("--engine ray needs ray: pip install 'ray[data]>=2.9'") from e
    if ray.is_initialized():
        yield ray
        return
    try:
        if engine.address:
            ray.init(address=engine.address, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=engine.cpus, include_dashboard=False,
                     logging_level=logging.WARNING)
    except Exception as e:  # Ray raises bare Exceptions (a node that timed out starting)
        where = f"connect to the Ray cluster at {engine.address}" if engine.address else (
            "start a local Ray")
        raise RuntimeError(f"could not {where}: {type(e).__name__}: {e}") from e
    try:
        yield ray
    finally:
        ray.shutdown()


@contextmanager
def run_data_context() -> Iterator[None]:
    """Ray Data settings for this run, restored afterwards: the driver's own progress bar
    instead of Ray's, and a block whose task died skipped (reported as lost) instead of
    ending the run, as a dead OCR worker costs the local engine only its page."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    saved = (ctx.enable_progress_bars, ctx.print_on_execution_start, ctx.max_errored_blocks)
    ctx.enable_progress_bars, ctx.print_on_execution_start, ctx.max_errored_blocks = (
        False, False, -1)
    try:
        yield
    finally:
        ctx.enable_progress_bars, ctx.print_on_execution_start, ctx.max_errored_blocks = saved


def build_pipeline(ray: Any, plan: ReadPlan, rows: list[tuple[str, Any]], model: ModelSpec,
                   engine: RayEngine, ocr_mode: str, k: int, batch_size: int,
                   options: ReadOptions | None) -> Any:
    """The Ray Dataset of result rows: work items -> OCR tasks (when needed) -> model actors."""
    chunk = max(1, batch_size * CHUNK_BATCHES)  # the local engine's predict chunk
    # One page per block, so that every page is its own OCR task; documents read already go
    # to the model stage in chunks.
    blocks = len(rows) if plan.needs_ocr else max(1, -(-len(rows) // chunk))
    ds = ray.data.from_items([{"id": i, "item": Carried(raw)} for i, raw in rows],
                             override_num_blocks=blocks)
    if plan.needs_ocr:
        # Tesseract single-threaded in every OCR worker, whatever its node's environment. Being
        # a setting the model actors lack, it also keeps Ray Data from fusing the OCR tasks
        # into the actors, which would then read only as many pages at a time as there are
        # actors (tests/test_extract_ray.py checks the plan).
        ds = ds.map_batches(read_pages, batch_size=1, batch_format="numpy", num_cpus=1,
                            runtime_env={"env_vars": {"OMP_THREAD_LIMIT": "1"}},
                            fn_kwargs={"configs": plan.configs, "options": options,
                                       "cache_dir": "default"})
    return ds.map_batches(ExtractStage, batch_size=chunk, batch_format="numpy",
                          compute=ray.data.ActorPoolStrategy(size=engine.actors),
                          num_cpus=engine.threads, num_gpus=engine.gpus,
                          fn_constructor_kwargs={"model": model, "threads": engine.threads,
                                                 "ocr_mode": ocr_mode, "k": k,
                                                 "batch_size": batch_size})


class Collector:
    """The driver's side: each batch's result lines appended to ``out`` (one durable write),
    failures kept for the outcome in input order, and the documents that never came back."""

    def __init__(self, rows: list[tuple[str, Any]], sources: dict[str, str | None],
                 out: ResultsFile, outcome: BatchOutcome) -> None:
        self.order = {doc_id: n for n, (doc_id, _) in enumerate(rows)}
        self.pending = dict(sources)
        self.out, self.outcome = out, outcome
        self.read_failures: list[tuple[int, LoadFailure]] = []

    def add(self, batch: Batch) -> int:
        """Record one batch; returns how many documents it accounted for."""
        lines = []
        for doc_id, item in zip(batch["id"], items_of(batch)):
            doc_id = str(doc_id)
            self.pending.pop(doc_id, None)
            if isinstance(item, LoadFailure):
                self.read_failures.append((self.order.get(doc_id, -1), item))
            elif isinstance(item, ExtractFailure):
                self.outcome.failures.append(item)
            else:
                lines.append(item)
        self.outcome.n_ok += self.out.append(lines)
        return len(batch["id"])

    def finish(self) -> BatchOutcome:
        """The outcome, failures in input order (Ray returns pages as they finish)."""
        outcome = self.outcome
        outcome.load_failures += [f for _, f in sorted(self.read_failures, key=lambda t: t[0])]
        outcome.failures += [ExtractFailure(i, s, LOST) for i, s in self.pending.items()]
        outcome.failures.sort(key=lambda f: self.order.get(f.doc_id, -1))
        return outcome


def extract_with_ray(plan: ReadPlan, model: ModelSpec, out: ResultsFile, done: set[str],
                     ocr_mode: str, engine: RayEngine, k: int = 5, batch_size: int = 8,
                     options: ReadOptions | None = None, progress: bool = True) -> BatchOutcome:
    """``extract_to_file`` on Ray Data (module docstring): every document of ``plan`` not in
    ``done`` extracted and its line appended to ``out`` as each model batch comes back."""
    outcome = BatchOutcome(skipped=len(done), load_failures=list(plan.failures))
    rows, sources = work_rows(plan, done, outcome)
    if not rows:
        return outcome
    engine.check_fits(plan.needs_ocr)
    collector = Collector(rows, sources, out, outcome)
    with ray_session(engine) as ray, run_data_context(), tqdm(
            total=len(rows), desc="extract (ray)", unit="doc", disable=not progress) as bar:
        ds = build_pipeline(ray, plan, rows, model, engine, ocr_mode, k, batch_size, options)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            bar.update(collector.add(batch))
    return collector.finish()
