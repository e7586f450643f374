"""CORD v2 receipts (``<split>/json/receipt_NNNNN.json``) -> ``Document`` objects with gold values.

A CORD file holds the receipt's OCR and its labels at once: ``valid_line`` is a list of line
groups, each with a ``category`` (``total.total_price``), a ``group_id`` and ``words`` (text, a
pixel quad, ``is_key``, ``row_id``). The words of every group are the page's words (the
dataset's own OCR, as SROIE's box files are): each quad becomes its axis-aligned box clipped to
the page, a word holding spaces (``DEBIT BCA:``) is cut into whitespace words with the slices
of its box their characters cover (as SROIE lines are), and words are put in reading order by
their ``row_id`` rows (top to bottom, left to right within a row); ``Word.line`` is the row's
index in that order.

Gold (``extractor.schemas.CORD_SCHEMA``): a field's value is the non-key words of the line
groups of its category with one ``group_id`` (a key such as ``TOTAL`` or ``Rp`` is a word of
the page but not of the value), joined in reading order and read as the field's type
(``extractor.align.span_value``: ``:9,000`` is the amount ``9,000``), so gold and a predicted
span over the same words give the same value; a value that is no amount (``-`` printed for
no tax, 3 receipts) is absent. Where a category has several groups on one
receipt (one subtotal of the 900), the first in reading order is the value, the others are
ordinary words; ``meta["cord"]["extra_groups"]`` counts them.

``dontcare`` regions are quads without text (masked or unreadable parts of the image): with
no image there is nothing to read in them, so they add no words; ``meta["cord"]["dontcare"]``
counts them. Ids name the split (``train/receipt_00012``): file names restart in each split,
and ``extractor.splits`` keeps CORD's own train / dev split from them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from extractor.align import span_value
from extractor.document import Box, Document, Schema, Word
from extractor.loaders.report import DocumentLoadError, LoadReport, read_json
from extractor.loaders.sroie import reading_order, split_line
from extractor.normalize import validate_value
from extractor.schemas import CORD_CATEGORIES, CORD_SCHEMA
from extractor.splits import OWN_SPLITS, id_sort_key

_CATEGORY = re.compile(r"^[a-z_]+\.[a-z_]+$")


def cord_files(root: str | Path) -> dict[str, Path]:
    """Document id (``train/receipt_00012``) -> annotation file, over every split folder
    (``train``, ``dev``, ``test``) with a ``json/`` folder."""
    root = Path(root)
    return {f"{split}/{f.stem}": f for split in OWN_SPLITS
            for f in sorted((root / split / "json").glob("*.json"))}


def is_cord_dir(path: str | Path) -> bool:
    """A folder laid out as CORD: ``train/json`` or ``dev/json`` holding JSON files."""
    p = Path(path)
    return p.is_dir() and any(any((p / s / "json").glob("*.json")) for s in OWN_SPLITS)


@dataclass
class _Group:
    """The words of one line group of a category, in reading order, and whether each is a key."""

    category: str
    words: list[Word]
    is_key: list[bool]


def _box(quad: Any, width: int, height: int, where: str) -> Box:
    if not isinstance(quad, dict):
        raise TypeError(f"{where}: quad must be an object with x1..x4, y1..y4")
    try:
        xs = [float(quad[f"x{i}"]) for i in range(1, 5)]
        ys = [float(quad[f"y{i}"]) for i in range(1, 5)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where}: quad must hold numbers x1..x4, y1..y4, got {quad!r}") from None

    def clip(v: float, hi: int) -> int:
        return max(0, min(hi, round(v)))

    return (clip(min(xs), width), clip(min(ys), height), clip(max(xs), width),
            clip(max(ys), height))


def _page_size(data: dict[str, Any]) -> tuple[int, int]:
    size = (data.get("meta") or {}).get("image_size") or {}
    try:
        width, height = int(size["width"]), int(size["height"])
    except (KeyError, TypeError, ValueError):
        raise ValueError("meta.image_size must hold a width and a height") from None
    if width < 1 or height < 1:
        raise ValueError(f"meta.image_size must be positive, got {width} x {height}")
    return width, height


def parse_cord(data: Any, doc_id: str, schema: Schema = CORD_SCHEMA) -> Document:
    """One CORD annotation object -> ``Document`` with ``schema``'s gold (fields named in
    ``CORD_CATEGORIES``); raises ``ValueError`` / ``TypeError`` on malformed input."""
    if not isinstance(data, dict) or not isinstance(data.get("valid_line"), list):
        raise TypeError('expected an object with a "valid_line" list')
    width, height = _page_size(data)
    # (row_id, box, text, is_key, group key) per word as given.
    raw: list[tuple[Any, Box, str, bool, tuple[str, Any]]] = []
    for n, line in enumerate(data["valid_line"]):
        if not isinstance(line, dict) or not isinstance(line.get("words"), list):
            raise TypeError(f"valid_line[{n}] is not an object with a words list")
        category = str(line.get("category", ""))
        if not _CATEGORY.match(category):
            raise ValueError(f"valid_line[{n}]: category {category!r} is not 'group.name'")
        for k, w in enumerate(line["words"]):
            where = f"valid_line[{n}].words[{k}]"
            if not isinstance(w, dict):
                raise TypeError(f"{where} is not an object")
            text = str(w.get("text", "")).strip()
            if text:
                raw.append((w.get("row_id", f"line{n}"), _box(w.get("quad"), width, height,
                                                              where),
                            text, bool(w.get("is_key", 0)), (category, line.get("group_id"))))
    if not raw:
        raise ValueError("no words in valid_line")
    words, groups = _ordered_words(raw)
    gold, extra = _gold(groups, schema)
    meta = {"dataset": "cord", "cord": {"dontcare": len(data.get("dontcare") or []),
                                        "extra_groups": extra}}
    return Document(id=doc_id, words=words, width=width, height=height, source=None,
                    ocr="provided", gold=gold, meta=meta)


def _ordered_words(raw: list[tuple[Any, Box, str, bool, tuple[str, Any]]]
                   ) -> tuple[list[Word], dict[tuple[str, Any], _Group]]:
    """Page words in reading order (rows by ``row_id``) and each line group's words."""
    rows: dict[Any, list[int]] = {}
    for i, r in enumerate(raw):
        rows.setdefault(r[0], []).append(i)

    def union(idx: list[int]) -> Box:
        bs = [raw[i][1] for i in idx]
        return (min(b[0] for b in bs), min(b[1] for b in bs), max(b[2] for b in bs),
                max(b[3] for b in bs))

    ordered_rows = reading_order([(union(idx), idx) for idx in rows.values()])
    words: list[Word] = []
    groups: dict[tuple[str, Any], _Group] = {}
    for line, (_, idx) in enumerate(ordered_rows):
        for i in sorted(idx, key=lambda i: (raw[i][1][0], raw[i][1][1])):
            _, box, text, is_key, gkey = raw[i]
            pieces = split_line(box, text, line)
            words += pieces
            g = groups.setdefault(gkey, _Group(gkey[0], [], []))
            g.words += pieces
            g.is_key += [is_key] * len(pieces)
    return words, groups


def _gold(groups: dict[tuple[str, Any], _Group], schema: Schema
          ) -> tuple[dict[str, str | None], int]:
    """Field -> value of its category's first group in reading order (``groups`` is in that
    order), and how many further groups of a schema category were left as plain words."""
    gold: dict[str, str | None] = {name: None for name in schema.field_names}
    field_of = {CORD_CATEGORIES[name]: name for name in schema.field_names}
    extra = 0
    for g in groups.values():
        name = field_of.get(g.category)
        if name is None:
            continue
        value_words = [w for w, key in zip(g.words, g.is_key) if not key]
        if not value_words:
            continue
        if gold[name] is not None:
            extra += 1
            continue
        spec = schema[name]
        value = span_value(value_words, range(len(value_words)), spec)
        # a value that is no value of its type ("-" for no tax) is absent: nothing to extract
        gold[name] = value if value and validate_value(value, spec.type) is None else None
    return gold, extra


def load_cord_file(path: str | Path, doc_id: str, schema: Schema = CORD_SCHEMA) -> Document:
    data = read_json(path, "CORD annotation")
    try:
        return parse_cord(data, doc_id, schema)
    except (ValueError, TypeError) as e:
        raise DocumentLoadError(str(path), f"not a CORD annotation ({e})") from None


def load_cord(root: str | Path, ids: Iterable[str] | None = None, *,
              schema: Schema = CORD_SCHEMA, progress: bool = True) -> LoadReport:
    """Receipts of a CORD folder (all, or ``ids``), bad files listed as failures."""
    unknown = [n for n in schema.field_names if n not in CORD_CATEGORIES]
    if unknown:
        raise ValueError(f"schema {schema.name!r}: CORD has no field(s) {unknown} (it has "
                         f"{', '.join(CORD_CATEGORIES)})")
    files = cord_files(root)
    if not files:
        raise ValueError(f"{root}: not a CORD folder (expected train/json or dev/json with "
                         f"annotation files)")
    todo = sorted(files, key=id_sort_key) if ids is None else list(ids)
    report = LoadReport()
    for doc_id in tqdm(todo, desc="CORD", unit="doc", disable=not progress):
        if doc_id not in files:
            report.add_failure(DocumentLoadError(f"{root}/{doc_id}.json", "no such receipt"))
            continue
        try:
            report.documents.append(load_cord_file(files[doc_id], doc_id, schema))
        except DocumentLoadError as e:
            report.add_failure(e)
    return report
