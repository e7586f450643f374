"""SROIE task-3 folders (``img/``, ``box/``, ``key/``) -> ``Document`` objects with gold values.

The provided OCR is line-level (a quad and a transcript per row); LayoutLM wants word boxes,
so each line is split on whitespace and every word gets the slice of the line box that its
character offsets cover. Lines are put in reading order (top to bottom, left to right within
a visual row) and ``Word.line`` is the line's index in that order. ``ocr="tesseract"``
replaces the provided words by engineer B's tesseract passes (cached on disk).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from tqdm import tqdm

from extractor.document import RECEIPT_SCHEMA, Box, Document, Schema, Word
from extractor.loaders.report import DocumentLoadError, LoadFailure, LoadReport, read_json

if TYPE_CHECKING:
    from extractor.ocr import OcrPass, ReadOptions

Line = tuple[Box, str]
T = TypeVar("T")
_WORD = re.compile(r"\S+")


def is_sroie_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "box").is_dir() and (p / "key").is_dir()


def _id_key(doc_id: str) -> tuple[int, str]:
    return (int(doc_id), doc_id) if doc_id.isdigit() else (1 << 62, doc_id)


def sroie_ids(root: str | Path) -> list[str]:
    """Every receipt id of a SROIE folder (a ``box/*.csv`` or ``key/*.json`` stem), numeric order.

    Ids present in only one of the folders are kept so that loading reports the missing file.
    """
    root = Path(root)
    stems = {p.stem for p in (root / "box").glob("*.csv")} | {p.stem for p in
                                                             (root / "key").glob("*.json")}
    return sorted(stems, key=_id_key)


# -- the box file ----------------------------------------------------------------------------

def parse_box_line(raw: str) -> Line:
    """``x1,y1,...,x4,y4,transcript`` -> (axis-aligned box, transcript); may raise ValueError.

    The transcript is everything after the eighth comma (it may contain commas).
    """
    parts = raw.split(",", 8)
    if len(parts) < 9:
        raise ValueError(f"expected 8 coordinates and a transcript, got {raw[:60]!r}")
    try:
        coords = [round(float(v)) for v in parts[:8]]
    except ValueError:
        raise ValueError(f"non-numeric coordinate in {raw[:60]!r}") from None
    xs, ys = coords[0::2], coords[1::2]
    return (min(xs), min(ys), max(xs), max(ys)), parts[8].strip()


def read_box_file(path: str | Path) -> list[Line]:
    """All non-empty lines of a box file; an unreadable, malformed or empty file raises."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DocumentLoadError(str(path), "box file is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DocumentLoadError(str(path), f"cannot read box file ({e})") from None
    lines: list[Line] = []
    bad: list[tuple[int, str]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            box, transcript = parse_box_line(raw)
        except ValueError as e:
            bad.append((lineno, str(e)))
            continue
        if transcript:
            lines.append((box, transcript))
    if bad:
        # One record for the file, naming every bad row (the first few in full).
        shown = "; ".join(f"row {n}: {why}" for n, why in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise DocumentLoadError(f"{path}:{bad[0][0]}",
                                f"{len(bad)} malformed row(s) in the box file: {shown}{more}")
    if not lines:
        raise DocumentLoadError(str(path), "box file has no text lines")
    return lines


def reading_order(lines: Sequence[tuple[Box, T]]) -> list[tuple[Box, T]]:
    """Boxed items top to bottom; items whose vertical centres are within half a line height
    of a row's first item form one visual row and are read left to right."""
    by_top = sorted(lines, key=lambda ln: ((ln[0][1] + ln[0][3]) / 2, ln[0][0]))
    rows: list[list[tuple[Box, T]]] = []
    for ln in by_top:
        cy, h = (ln[0][1] + ln[0][3]) / 2, max(1, ln[0][3] - ln[0][1])
        if rows:
            first = rows[-1][0][0]
            fcy, fh = (first[1] + first[3]) / 2, max(1, first[3] - first[1])
            if abs(cy - fcy) <= 0.5 * min(h, fh):
                rows[-1].append(ln)
                continue
        rows.append([ln])
    return [ln for row in rows for ln in sorted(row, key=lambda ln: ln[0][0])]


def split_line(box: Box, text: str, line: int) -> list[Word]:
    """Whitespace words of a line, each with the part of the box its characters span."""
    x0, y0, x1, y1 = box
    n = max(1, len(text))
    width = x1 - x0
    return [Word(m.group(), (x0 + round(width * m.start() / n), y0,
                             x0 + round(width * m.end() / n), y1), 1.0, line)
            for m in _WORD.finditer(text)]


def lines_to_words(lines: Sequence[Line]) -> list[Word]:
    words: list[Word] = []
    for i, (box, text) in enumerate(reading_order(lines)):
        words += split_line(box, text, i)
    return words


# -- key and image ---------------------------------------------------------------------------

def read_key_file(path: str | Path, schema: Schema = RECEIPT_SCHEMA) -> dict[str, str | None]:
    """Gold values of the schema's fields (``None`` for a field the key file lacks: SROIE
    leaves out what a receipt does not print, e.g. receipt 053's address).

    A field the schema does not know (a typo, another dataset's template) raises: its value
    would be lost and the field it was meant for would read as absent.
    """
    path = Path(path)
    data = read_json(path, "key file", encoding="utf-8-sig")
    if not isinstance(data, dict):
        raise DocumentLoadError(str(path), f"key file must hold a JSON object, got "
                                           f"{type(data).__name__}")
    unknown = [k for k in data if k not in schema.field_names]
    if unknown:
        raise DocumentLoadError(str(path), f"key file has field(s) the schema does not know: "
                                           f"{', '.join(map(repr, unknown))} (expected "
                                           f"{', '.join(schema.field_names)})")
    gold: dict[str, str | None] = {}
    for name in schema.field_names:
        value = data.get(name)
        if value is not None and not isinstance(value, (str, int, float)):
            raise DocumentLoadError(str(path), f"field {name!r} must be a string, got "
                                               f"{type(value).__name__}")
        gold[name] = None if value is None else str(value)
    return gold


def find_image(root: Path, doc_id: str) -> Path | None:
    for suffix in (".jpg", ".jpeg", ".png", ".JPG", ".PNG"):
        p = root / "img" / f"{doc_id}{suffix}"
        if p.exists():
            return p
    return None


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the image header (no pixel is decoded), or ``DocumentLoadError``
    for a file that is not an image or claims too many pixels (``extractor.ocr.image_size``)."""
    from extractor.ocr import image_size as header_size

    try:
        return header_size(path)
    except ValueError as e:
        raise DocumentLoadError(str(path), str(e).removeprefix(f"{path}: ")) from None


# -- documents -------------------------------------------------------------------------------

def load_sroie_document(root: str | Path, doc_id: str,
                        schema: Schema = RECEIPT_SCHEMA) -> Document:
    """One receipt with the provided OCR; any bad file raises ``DocumentLoadError``."""
    root = Path(root)
    img = find_image(root, doc_id)
    if img is None:
        raise DocumentLoadError(str(root / "img" / f"{doc_id}.jpg"), "image is missing")
    width, height = image_size(img)
    words = lines_to_words(read_box_file(root / "box" / f"{doc_id}.csv"))
    gold = read_key_file(root / "key" / f"{doc_id}.json", schema)
    return Document(id=doc_id, words=words, width=width, height=height, source=str(img),
                    ocr="provided", gold=gold, meta={"dataset": "sroie"})


def load_sroie(root: str | Path, ids: Iterable[str] | None = None, *, ocr: str = "provided",
               workers: int = 2, cache_dir: str | Path | None = "default",
               schema: Schema = RECEIPT_SCHEMA, progress: bool = True,
               options: ReadOptions | None = None) -> LoadReport:
    """Receipts of a SROIE folder (all, or ``ids``), bad ones listed as failures.

    ``ocr="images"`` re-reads every image with the default OCR engines, ``ocr="tesseract"``
    with ``extractor.ocr.DEFAULT_VARIANTS``: the first pass gives ``words``, the others go to
    ``variants``; results are cached in ``cache_dir``.
    """
    from extractor.loaders import OCR_MODES, image_passes

    if ocr not in OCR_MODES:
        raise ValueError(f"ocr must be one of {', '.join(OCR_MODES)}, got {ocr!r}")
    root = Path(root)
    if not is_sroie_dir(root):
        raise ValueError(f"{root}: not a SROIE folder (expected box/ and key/ subfolders)")
    report = LoadReport()
    for doc_id in tqdm(list(ids) if ids is not None else sroie_ids(root), desc="SROIE",
                       unit="doc", disable=not progress):
        try:
            report.documents.append(load_sroie_document(root, doc_id, schema))
        except DocumentLoadError as e:
            report.add_failure(e)
    if ocr != "provided":
        report = tesseract_documents(report, workers=workers, cache_dir=cache_dir,
                                     configs=image_passes(ocr), progress=progress,
                                     options=options)
    return report


def tesseract_documents(report: LoadReport, *, workers: int = 2,
                        cache_dir: str | Path | None = "default",
                        configs: Sequence[OcrPass] | None = None,
                        progress: bool = True, options: ReadOptions | None = None) -> LoadReport:
    """The same documents with their words replaced by OCR's (from ``doc.source``; ``configs``
    default to the tesseract passes).

    Gold, id and meta are kept; a page the OCR cannot read becomes a failure.
    """
    out = LoadReport(failures=list(report.failures))
    with tqdm(total=len(report.documents), desc="tesseract", unit="page",
              disable=not progress) as bar:
        for item in iter_tesseract_documents(report.documents, workers=workers,
                                             cache_dir=cache_dir, configs=configs,
                                             options=options, on_page=bar.update):
            out.add(item)
    return out


def iter_tesseract_documents(docs: Sequence[Document], *, workers: int = 2,
                             cache_dir: str | Path | None = "default",
                             configs: Sequence[OcrPass] | None = None,
                             options: ReadOptions | None = None,
                             on_page: Callable[[], None] | None = None,
                             ) -> Iterator[Document | LoadFailure]:
    """``tesseract_documents`` streamed: each document re-read (or its failure), in order."""
    from extractor.loaders.images import outcome_document
    from extractor.ocr import DEFAULT_VARIANTS, OcrJob, iter_ocr

    configs = list(configs or DEFAULT_VARIANTS)
    for d in docs:
        if not d.source:
            yield LoadFailure(d.id, "no source image to OCR")
    readable = [d for d in docs if d.source]
    jobs = [OcrJob(d.id, str(d.source), d.page) for d in readable]
    for doc, res in zip(readable, iter_ocr(jobs, configs, workers, cache_dir, options)):
        if on_page is not None:
            on_page()
        new = outcome_document(res, configs)
        if isinstance(new, Document):
            new.gold, new.meta = doc.gold, {**doc.meta, **new.meta}
        yield new
