"""Orchestration of ``kvloop eval``: load data, get results (model or file), score, report.

Stages are timed separately (``timing`` in report.json) so that model inference is told apart
from the evaluation itself.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval.compare import compare_all
from eval.evaluate import RunEval, evaluate_results
from eval.gallery import build_gallery
from eval.report import ReportInput, run_key, write_report
from eval.straight_through import Effort
from extractor.document import (
    Document,
    ExtractionResult,
    FieldSpec,
    Schema,
    read_jsonl,
    utc_now,
    write_jsonl,
)
from extractor.loaders.report import LoadReport
from extractor.schemas import schema_for_fields

OCR_CHOICES = ("provided", "images", "tesseract", "both")
RE_OCR_FORMATS = ("sroie", "funsd", "labelstudio")
"""Formats that carry their own OCR, so ``images``/``tesseract`` mean re-reading their page
images."""


class EvalError(ValueError):
    """Bad input for an evaluation; the message names the file and the problem."""


@dataclass
class EvalConfig:
    """One ``kvloop eval`` invocation."""

    data: str
    out: str
    models: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    split: str = "dev"
    ocr: str = "provided"
    k: int = 5
    n_boot: int = 1000
    seed: int = 0
    gallery: int = 24
    limit: int | None = None
    batch_size: int = 8
    device: str = "auto"
    effort: Effort | None = None  # operator seconds, for minutes saved by auto-accept

    def __post_init__(self) -> None:
        if bool(self.models) == bool(self.results):
            raise EvalError("give either --model (one or more) or --results (one or more)")
        if self.ocr not in OCR_CHOICES:
            raise EvalError(f"--ocr must be one of {OCR_CHOICES}, got {self.ocr!r}")
        if self.results and self.ocr == "both":
            raise EvalError("--ocr both needs --model: a results file holds the predictions of "
                            "one OCR pass (evaluate each file with --ocr provided, images or "
                            "tesseract)")
        for p in self.models + self.results:
            if not os.path.exists(p):
                raise EvalError(f"{p}: no such file or directory")


@dataclass
class Dataset:
    """The documents of one OCR pass, their gold BIO tags and what went wrong loading them."""

    ocr: str
    docs: list[Document]
    gold_tags: dict[str, list[str]]
    problems: list[str]


def data_label(spec: str, split: str) -> str:
    name = Path(spec.rstrip("/")).name or spec
    return f"{name}/{split}"


def load_dataset(spec: str, split: str, ocr: str, schema: Schema,
                 limit: int | None = None) -> Dataset:
    """Documents with gold values (via engineer A's loaders) and their aligned gold tags."""
    from extractor.align import align_document
    from extractor.loaders import REREAD_MODES, detect_format, image_passes, load_documents
    from extractor.loaders.sroie import tesseract_documents

    try:
        # With --limit, cut before OCR: reading a whole split's images costs minutes.
        cut_first = (limit is not None and ocr in REREAD_MODES
                     and detect_format(spec) in RE_OCR_FORMATS)
        report = load_documents(spec, split=split, ocr="provided" if cut_first else ocr)
    except ValueError as e:  # the loaders name the path and what they expected
        raise EvalError(str(e)) from None
    problems = [f"{f.path}: {f.reason}" for f in report.failures]
    problems += [f"{d.id}: no gold values, not scored" for d in report.documents
                 if d.gold is None]
    docs = [d for d in report.documents if d.gold is not None][:limit]
    if cut_first:
        report = tesseract_documents(LoadReport(documents=docs), configs=image_passes(ocr))
        problems += [f"{f.path}: {f.reason}" for f in report.failures]
        docs = report.documents
    if not docs:
        raise EvalError(f"{spec}: no documents with gold values in split {split!r} "
                        f"({len(report.failures)} failed to load)")
    tags: dict[str, list[str]] = {}
    for d in tqdm(docs, desc=f"align ({ocr})", unit="doc", file=sys.stderr):
        try:
            tags[d.id] = list(align_document(d, schema).tags)
        except Exception as e:  # noqa: BLE001 - one bad document must not stop the batch
            problems.append(f"{d.id}: gold alignment failed ({e}); left out of BIO metrics")
    return Dataset(ocr, docs, tags, problems)


def split_input_kinds(datasets: dict[str, Dataset]) -> dict[str, Dataset]:
    """Each dataset whose pages are of several input kinds (``ocr_engine`` of their ``ocr``:
    ``provided``, ``tesseract``, ``pdf-text``), or that holds PDF text-layer pages, split into
    one dataset per kind, so that each kind is scored and reported on its own. A kind's label
    is its name, prefixed by the OCR choice when there are several (``provided/pdf-text``)."""
    from extractor.document import TEXT_LAYER_OCR
    from extractor.model.calibrate import ocr_engine

    out: dict[str, Dataset] = {}
    for choice, ds in datasets.items():
        kinds: dict[str, list[Document]] = {}
        for d in ds.docs:
            kinds.setdefault(ocr_engine(d.ocr), []).append(d)
        if len(kinds) < 2 and TEXT_LAYER_OCR not in kinds:
            out[choice] = ds
            continue
        for i, (kind, docs) in enumerate(sorted(kinds.items())):
            label = kind if len(datasets) == 1 else f"{choice}/{kind}"
            out[label] = Dataset(label, docs, {d.id: ds.gold_tags[d.id] for d in docs
                                               if d.id in ds.gold_tags},
                                 ds.problems if i == 0 else [])
    return out


def predict_all(predictor: Any, docs: Sequence[Document], k: int, batch_size: int
                ) -> tuple[list[ExtractionResult], dict[str, list[str]], list[str]]:
    """Results and predicted word tags; a failing batch is retried per document and the
    documents that still fail are reported and left without a result."""
    results: list[ExtractionResult] = []
    tags: dict[str, list[str]] = {}
    problems: list[str] = []
    bar = tqdm(total=len(docs), desc=f"predict {predictor.version}", unit="doc",
               file=sys.stderr)
    for i in range(0, len(docs), batch_size):
        batch = list(docs[i:i + batch_size])
        try:
            results += predictor.predict(batch, k=k)
        except Exception:  # noqa: BLE001 - retried per document to find the bad one
            for d in batch:
                try:
                    results += predictor.predict([d], k=k)
                except Exception as e:  # noqa: BLE001 - reported, the batch goes on
                    problems.append(f"{d.id}: prediction failed ({type(e).__name__}: {e})")
        for d in batch:
            try:
                tags[d.id] = list(predictor.word_tags(d))
            except Exception as e:  # noqa: BLE001 - reported, the batch goes on
                problems.append(f"{d.id}: word_tags failed ({type(e).__name__}: {e})")
        bar.update(len(batch))
    bar.close()
    return results, tags, problems


def read_results(path: str) -> tuple[list[ExtractionResult], str]:
    """Results of a JSONL file and the model label (its single model_version, else the stem)."""
    out: list[ExtractionResult] = []
    try:
        for lineno, row in enumerate(read_jsonl(path), 1):
            try:
                out.append(ExtractionResult.from_dict(row))
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise EvalError(f"{path}: record {lineno} is not an extraction result "
                                f"({type(e).__name__}: {e})") from None
    except OSError as e:
        raise EvalError(f"{path}: cannot read results ({e.strerror})") from None
    except ValueError as e:
        if isinstance(e, EvalError):
            raise
        raise EvalError(str(e)) from None
    if not out:
        raise EvalError(f"{path}: no extraction results in the file")
    versions = {r.model_version for r in out}
    return out, versions.pop() if len(versions) == 1 else Path(path).stem


def schema_for_results(results: Sequence[ExtractionResult]) -> Schema:
    """The known schema (``extractor.schemas``: receipt, cord) holding the results' fields,
    else text fields by name."""
    names = list(dict.fromkeys(n for r in results for n in r.fields))
    return schema_for_fields(names) or Schema("from-results", [FieldSpec(n) for n in names])


def _unique(label: str, taken: set[str]) -> str:
    out, i = label, 2
    while out in taken:
        out, i = f"{label}#{i}", i + 1
    taken.add(out)
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _record_timing(json_path: str, timing: dict[str, float]) -> None:
    """Put the final stage times (report writing included) into report.json."""
    with open(json_path, encoding="utf-8") as fh:
        data = json.load(fh)
    data["meta"]["timing"] = timing
    with open(json_path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)


def _command_line() -> str:
    args = sys.argv[1:]
    if args[:1] == ["eval"]:  # run through ``kvloop eval``
        args = args[1:]
    return "kvloop eval " + " ".join(shlex.quote(a) for a in args)


def run_eval(cfg: EvalConfig, command: str | None = None) -> dict[str, Any]:
    """Run the whole evaluation and write the report; returns paths, timings and headline."""
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    ocrs = ["provided", "images"] if cfg.ocr == "both" else [cfg.ocr]
    predictors: list[Any] = []
    file_results: list[tuple[list[ExtractionResult], str]] = []
    if cfg.models:
        from extractor.model.predictor import load_predictor

        for m in cfg.models:
            try:
                predictors.append(load_predictor(m, cfg.device))
            except (OSError, ValueError, KeyError) as e:
                raise EvalError(f"{m}: cannot load the model ({type(e).__name__}: {e})") from None
        schema = predictors[0].schema
        for p, m in zip(predictors[1:], cfg.models[1:]):
            if p.schema.field_names != schema.field_names:
                raise EvalError(f"{m}: model extracts {p.schema.field_names}, the first model "
                                f"{schema.field_names}; compare models of one schema")
    else:
        file_results = [read_results(p) for p in cfg.results]
        schema = schema_for_results([r for rs, _ in file_results for r in rs])
    timing["load_models"] = time.perf_counter() - t0

    t = time.perf_counter()
    datasets = split_input_kinds({o: load_dataset(cfg.data, cfg.split, o, schema, cfg.limit)
                                  for o in ocrs})
    ocrs = list(datasets)
    timing["load_data_and_align"] = time.perf_counter() - t
    label = data_label(cfg.data, cfg.split)
    runs: list[RunEval] = []
    taken: set[str] = set()
    timing["inference"] = 0.0
    t_eval = 0.0
    os.makedirs(cfg.out, exist_ok=True)
    if predictors:
        names = [_unique(p.version, taken) for p in predictors]
        for p, name in zip(predictors, names):
            for o in ocrs:
                ds = datasets[o]
                t = time.perf_counter()
                res, tags, probs = predict_all(p, ds.docs, cfg.k, cfg.batch_size)
                timing["inference"] += time.perf_counter() - t
                # Keep what the model said, so the report can be rebuilt with --results.
                write_jsonl(os.path.join(cfg.out, f"results-{_safe(name)}-{_safe(o)}.jsonl"), res)
                t = time.perf_counter()
                run = evaluate_results(ds.docs, res, schema, model=name, data=label, ocr=o,
                                       gold_tags=ds.gold_tags, pred_tags=tags, max_k=cfg.k,
                                       acceptance=getattr(p, "acceptance", None),
                                       effort=cfg.effort)
                run.problems[:0] = probs
                runs.append(run)
                t_eval += time.perf_counter() - t
    else:
        for res, name in file_results:
            name = _unique(name, taken)
            for o in ocrs:  # one OCR choice, split by input kind when the pages mix kinds
                ds = datasets[o]
                ids = {d.id for d in ds.docs}
                mine = res if len(ocrs) == 1 else [r for r in res if r.doc_id in ids]
                t = time.perf_counter()
                runs.append(evaluate_results(ds.docs, mine, schema, model=name, data=label,
                                             ocr=ds.ocr, gold_tags=ds.gold_tags, max_k=cfg.k))
                t_eval += time.perf_counter() - t
    t = time.perf_counter()
    comparisons = compare_all(runs, schema.field_names, cfg.n_boot, cfg.seed)
    timing["metrics"] = t_eval + time.perf_counter() - t
    t = time.perf_counter()
    galleries = {run_key(r): build_gallery(r.outcomes, {d.id: d for d in datasets[r.ocr].docs},
                                           datasets[r.ocr].gold_tags, cfg.gallery)
                 for r in runs}
    timing["gallery"] = time.perf_counter() - t
    load_failures = [p for o in ocrs for p in datasets[o].problems]
    meta = {
        "title": f"kvloop evaluation: {label}",
        "data": cfg.data, "split": cfg.split, "ocr": ocrs, "created": utc_now(),
        "command": command or _command_line(),
        "models": cfg.models, "results": cfg.results, "n_boot": cfg.n_boot, "seed": cfg.seed,
        "load_failures": load_failures,
        "timing": timing,
    }
    t = time.perf_counter()
    paths = write_report(ReportInput(runs, schema.field_names, comparisons, galleries, meta),
                         cfg.out)
    timing["report"] = time.perf_counter() - t
    timing["total"] = time.perf_counter() - t0
    _record_timing(paths["json"], timing)
    return {"paths": paths, "timing": timing, "runs": runs, "comparisons": comparisons,
            "load_problems": len(load_failures)}
