"""Label Studio JSON exports of the OCR template -> ``Document`` objects with gold values.

The OCR template gives each region a rectangle (``rectangle`` / ``rectanglelabels``), a label
(``labels``) and a transcription (``textarea``); the results of one region share an ``id``.
Coordinates are percentages of ``original_width`` x ``original_height``. Every transcribed
region becomes words (split like a SROIE line, ``Word.line`` = region index in reading order);
a region whose label names a schema field (case-insensitive) contributes its text to that
field's gold value (several regions are joined in reading order).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from extractor.document import RECEIPT_SCHEMA, Document, Schema, Word
from extractor.loaders.report import DocumentLoadError, LoadFailure, LoadReport, read_json
from extractor.loaders.sroie import reading_order, split_line

_GEOMETRY = ("rectangle", "rectanglelabels")


def is_labelstudio_export(path: str | Path) -> bool:
    """A ``.json`` file holding a list of tasks with ``data`` and ``annotations``."""
    p = Path(path)
    if p.suffix.lower() != ".json" or not p.is_file():
        return False
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return (isinstance(data, list) and bool(data) and isinstance(data[0], dict)
            and "data" in data[0] and ("annotations" in data[0] or "predictions" in data[0]))


def _regions(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Merge the results of each region id: pixel box, labels, text."""
    regions: dict[str, dict[str, Any]] = {}
    for r in results:
        rid, value = str(r.get("id")), r.get("value") or {}
        reg = regions.setdefault(rid, {"labels": [], "text": ""})
        if "x" in value and "original_width" in r:
            w, h = float(r["original_width"]), float(r["original_height"])
            x0, y0 = float(value["x"]) * w / 100, float(value["y"]) * h / 100
            x1 = x0 + float(value["width"]) * w / 100
            y1 = y0 + float(value["height"]) * h / 100
            reg["box"] = (round(x0), round(y0), round(x1), round(y1))
            reg["size"] = (int(w), int(h))
        for key in ("labels", "rectanglelabels"):
            reg["labels"] += [str(lab) for lab in value.get(key) or []]
        if r.get("type") == "textarea":
            reg["text"] = " ".join(str(t) for t in value.get("text") or []).strip()
    return regions


def parse_task(task: dict[str, Any], schema: Schema = RECEIPT_SCHEMA) -> Document:
    """One exported task (its first annotation, else its first prediction) -> ``Document``."""
    if not isinstance(task, dict) or "data" not in task:
        raise ValueError("a task must be an object with 'data'")
    runs = task.get("annotations") or task.get("predictions") or []
    if not runs:
        raise ValueError("task has no annotations or predictions")
    regions = _regions(runs[0].get("result") or [])
    boxed = [(reg["box"], reg) for reg in regions.values() if "box" in reg and reg["text"]]
    if not boxed:
        raise ValueError("no region has both a rectangle and a transcription")
    fields = {f.name.casefold(): f.name for f in schema.fields}
    words: list[Word] = []
    parts: dict[str, list[str]] = {}
    for line, (box, reg) in enumerate(reading_order(boxed)):
        words += split_line(box, reg["text"], line)
        for lab in reg["labels"]:
            if lab.casefold() in fields:
                parts.setdefault(fields[lab.casefold()], []).append(reg["text"])
    width, height = boxed[0][1]["size"]
    data = task["data"]
    source = next((str(v) for v in data.values() if isinstance(v, str)), None)
    gold: dict[str, str | None] = {f: " ".join(parts[f]) if f in parts else None
                                   for f in schema.field_names}
    return Document(id=str(task.get("id", "")), words=words, width=width, height=height,
                    source=source, ocr="labelstudio", gold=gold,
                    meta={"dataset": "labelstudio"})


def load_labelstudio(path: str | Path, schema: Schema = RECEIPT_SCHEMA) -> LoadReport:
    """Every task of an export; a bad task becomes a failure named ``file#task-id``."""
    path = Path(path)
    tasks = read_json(path, "Label Studio export")
    if not isinstance(tasks, list):
        raise DocumentLoadError(str(path), "a Label Studio export is a JSON list of tasks")
    report = LoadReport()
    for n, task in enumerate(tasks):
        where = f"{path}#{task.get('id', n) if isinstance(task, dict) else n}"
        try:
            report.documents.append(parse_task(task, schema))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            report.add_failure(DocumentLoadError(where, str(e)))
    if not report.documents and report.failures:
        # Not one task of the OCR template: the file is the problem, say so once.
        kinds = sorted(result_types(tasks))
        found = f"its results are {', '.join(kinds)}" if kinds else "it has no results"
        return LoadReport(failures=[LoadFailure(str(path), (
            f"not a Label Studio export of the OCR template: no task has a rectangle with a "
            f"transcription ({found}; {len(report.failures)} task(s))"))])
    return report


def result_types(tasks: list[Any]) -> set[str]:
    """The ``type`` of every result of every annotation / prediction (``choices``, ...)."""
    out: set[str] = set()
    for task in (t for t in tasks if isinstance(t, dict)):
        runs = task.get("annotations") or task.get("predictions") or []
        for run in (r for r in runs if isinstance(r, dict)) if isinstance(runs, list) else ():
            results = run.get("result")
            if isinstance(results, list):
                out.update(str(r.get("type")) for r in results if isinstance(r, dict))
    return out

