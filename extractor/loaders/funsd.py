"""FUNSD-style form annotations -> ``Document`` objects.

A FUNSD file is ``{"form": [entity, ...]}``; an entity has ``id``, ``text``, ``box``,
``label`` (question / answer / header / other), ``words`` (``text`` + ``box``) and ``linking``
(``[question_id, answer_id]`` pairs). The dataset layout is ``annotations/NAME.json`` beside
``images/NAME.png``. Words keep their boxes; entities are read in reading order and
``Word.line`` is the entity's index in it. Gold values come from question -> answer links when
``key_map`` says which question text means which schema field; otherwise ``gold`` is ``None``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tqdm import tqdm

from extractor.document import Box, Document, Word
from extractor.loaders.report import DocumentLoadError, LoadReport, read_json
from extractor.loaders.sroie import image_size, reading_order

_KEY_JUNK = re.compile(r"[\s:#.\-]+")


def question_key(text: str) -> str:
    """How a question's text is compared with ``key_map`` keys: case, spaces, ``:#.-`` dropped."""
    return _KEY_JUNK.sub("", text).casefold()


def is_funsd_file(path: str | Path) -> bool:
    """A ``.json`` file whose top level is an object with a ``form`` list."""
    p = Path(path)
    if p.suffix.lower() != ".json" or not p.is_file():
        return False
    try:
        with p.open(encoding="utf-8") as fh:
            head = fh.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    return bool(re.match(r'\s*\{\s*"form"\s*:', head))


def funsd_files(path: str | Path) -> list[Path]:
    """Annotation files of a FUNSD folder (``annotations/*.json``, or ``*.json`` inside it)."""
    p = Path(path)
    if p.is_file():
        return [p]
    if (p / "annotations").is_dir():  # the dataset layout: every JSON there is meant as FUNSD
        return sorted((p / "annotations").glob("*.json"))
    return sorted(f for f in p.glob("*.json") if is_funsd_file(f))


def _box(value: Any, where: str) -> Box:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise ValueError(f"{where}: box must be 4 numbers, got {value!r}")
    x0, y0, x1, y1 = (round(float(v)) for v in value)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _entity_order(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Top to bottom, entities on one visual row left to right (as SROIE lines)."""
    return [e for _, e in reading_order([(e["_box"], e) for e in entities])]


def parse_funsd(data: Any, doc_id: str, key_map: dict[str, str] | None = None,
                size: tuple[int, int] | None = None, source: str | None = None) -> Document:
    """One FUNSD annotation object -> ``Document``; raises ``ValueError`` / ``TypeError`` on
    malformed input."""
    if not isinstance(data, dict) or not isinstance(data.get("form"), list):
        raise TypeError('expected an object with a "form" list')
    entities = []
    for n, ent in enumerate(data["form"]):
        if not isinstance(ent, dict):
            raise TypeError(f"form[{n}] is not an object")
        ent = dict(ent, _box=_box(ent.get("box"), f"form[{n}]"))
        entities.append(ent)
    words: list[Word] = []
    span: dict[Any, list[int]] = {}
    for line, ent in enumerate(_entity_order(entities)):
        start = len(words)
        for k, w in enumerate(ent.get("words") or []):
            text = str(w.get("text", "")).strip()
            if text:
                words.append(Word(text, _box(w.get("box"), f"entity {ent.get('id')} word {k}"),
                                  1.0, line))
        span[ent.get("id")] = list(range(start, len(words)))
    if size is None:
        size = (max((w.box[2] for w in words), default=1), max((w.box[3] for w in words),
                                                               default=1))
    gold = None if key_map is None else _gold(entities, words, span, key_map)
    return Document(id=doc_id, words=words, width=size[0], height=size[1], source=source,
                    ocr="funsd", gold=gold, meta={"dataset": "funsd"})


def _gold(entities: list[dict[str, Any]], words: list[Word], span: dict[Any, list[int]],
          key_map: dict[str, str]) -> dict[str, str | None]:
    """Field -> the text of the answer(s) linked to the question that ``key_map`` names."""
    keys = {question_key(k): f for k, f in key_map.items()}
    by_id = {e.get("id"): e for e in entities}
    gold: dict[str, str | None] = {f: None for f in key_map.values()}
    for ent in entities:
        field = keys.get(question_key(str(ent.get("text", ""))))
        if field is None or ent.get("label") != "question":
            continue
        answers = [b for a, b in (ent.get("linking") or []) if a == ent.get("id")]
        texts = [" ".join(words[i].text for i in span.get(b, [])) for b in answers
                 if by_id.get(b, {}).get("label") == "answer"]
        texts = [t for t in texts if t]
        if texts:
            gold[field] = " ".join(texts)
    return gold


def _image_for(ann: Path) -> Path | None:
    for folder in (ann.parent.parent / "images", ann.parent):
        for suffix in (".png", ".jpg", ".jpeg"):
            p = folder / f"{ann.stem}{suffix}"
            if p.exists():
                return p
    return None


def load_funsd_file(path: str | Path, key_map: dict[str, str] | None = None) -> Document:
    path = Path(path)
    data = read_json(path, "FUNSD file")
    img = _image_for(path)
    size = image_size(img) if img is not None else None  # header only; bombs refused
    try:
        return parse_funsd(data, path.stem, key_map, size, str(img) if img else None)
    except (ValueError, TypeError, AttributeError) as e:
        raise DocumentLoadError(str(path), f"not a FUNSD annotation ({e})") from None


def load_funsd(path: str | Path, key_map: dict[str, str] | None = None,
               progress: bool = True) -> LoadReport:
    """A FUNSD folder (or one file); bad files are listed as failures."""
    files = funsd_files(path)
    if not files:
        raise ValueError(f"{path}: no FUNSD annotation files (JSON objects with a 'form' list)")
    report = LoadReport()
    for f in tqdm(files, desc="FUNSD", unit="doc", disable=not progress):
        try:
            report.documents.append(load_funsd_file(f, key_map))
        except DocumentLoadError as e:
            report.add_failure(e)
    return report
