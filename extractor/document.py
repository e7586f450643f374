"""The one document model every kvloop stage shares.

``Document`` (id, source, page size, ``Word`` list with pixel boxes) is what loaders and OCR
produce; ``Schema``/``FieldSpec`` say which key-value fields to extract and how to type them;
``ExtractionResult`` -> ``FieldResult`` -> ``Candidate`` is what the extractor emits, the UI
shows and the feedback store records. Every structure round-trips through ``export()`` /
``from_dict()`` (plain JSON types only), so JSONL files, the database and the trainers all see
the same thing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

TEXT_LAYER_OCR = "pdf-text"
"""``Document.ocr`` of a PDF page read from its own text layer: exact words, like a dataset's
provided OCR (``"provided"``), unlike an OCR engine's (``"tesseract:<pass>"``)."""

Box = tuple[int, int, int, int]
"""A pixel box ``(x0, y0, x1, y1)``: left, top, right, bottom, origin at the top-left."""

FieldType = Literal["text", "date", "amount"]
FIELD_TYPES: tuple[str, ...] = ("text", "date", "amount")
# Longest value a field of each type may hold unless its spec says otherwise: far above any
# real receipt value (SROIE's longest address is under 200 characters), low enough that a
# pasted page or a stuck key is refused rather than stored.
MAX_VALUE_CHARS: dict[str, int] = {"text": 300, "date": 40, "amount": 32}


@dataclass
class Word:
    """One OCR word: its text, pixel box, OCR confidence in [0, 1] and the line it sits on."""

    text: str
    box: Box
    confidence: float = 1.0
    line: int = -1

    def export(self) -> dict[str, Any]:
        return {"text": self.text, "box": list(self.box), "confidence": self.confidence,
                "line": self.line}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Word:
        box = d["box"]
        if len(box) != 4:
            raise ValueError(f"word box must have 4 numbers, got {box!r}")
        return cls(text=str(d["text"]), box=tuple(int(v) for v in box),  # type: ignore[arg-type]
                   confidence=float(d.get("confidence", 1.0)), line=int(d.get("line", -1)))


@dataclass
class Document:
    """One page of a document: the words that one OCR pass read from it.

    ``variants`` holds the words of other OCR passes over the same page (name -> words); the
    extractor reads each and merges their candidates. ``gold`` holds ground-truth field values
    when known (``None`` for a field that is absent from the page).
    """

    id: str
    words: list[Word]
    width: int
    height: int
    source: str | None = None
    page: int = 0
    ocr: str = "provided"
    gold: dict[str, str | None] | None = None
    variants: dict[str, list[Word]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    def content_hash(self) -> str:
        """Stable hash of what the model reads (words and boxes), for feedback records."""
        h = hashlib.sha256()
        for w in self.words:
            h.update(f"{w.text}\t{w.box}\n".encode())
        return h.hexdigest()[:16]

    def normalized_boxes(self, words: list[Word] | None = None) -> list[Box]:
        """Word boxes scaled to LayoutLM's 0-1000 grid and clipped to it."""
        sx, sy = 1000.0 / max(self.width, 1), 1000.0 / max(self.height, 1)

        def clip(v: float) -> int:
            return max(0, min(1000, round(v)))

        return [(clip(w.box[0] * sx), clip(w.box[1] * sy), clip(w.box[2] * sx), clip(w.box[3] * sy))
                for w in (self.words if words is None else words)]

    def with_words(self, words: list[Word], ocr: str) -> Document:
        """The same page read by another OCR pass (gold and source kept, no variants)."""
        return Document(id=self.id, words=words, width=self.width, height=self.height,
                        source=self.source, page=self.page, ocr=ocr, gold=self.gold,
                        meta=dict(self.meta))

    def export(self) -> dict[str, Any]:
        return {
            "id": self.id, "source": self.source, "page": self.page, "ocr": self.ocr,
            "width": self.width, "height": self.height,
            "words": [w.export() for w in self.words],
            "gold": self.gold,
            "variants": {k: [w.export() for w in ws] for k, ws in self.variants.items()},
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Document:
        for key in ("id", "words", "width", "height"):
            if key not in d:
                raise ValueError(f"document is missing required key {key!r}")
        return cls(
            id=str(d["id"]), words=[Word.from_dict(w) for w in d["words"]],
            width=int(d["width"]), height=int(d["height"]), source=d.get("source"),
            page=int(d.get("page", 0)), ocr=str(d.get("ocr", "provided")), gold=d.get("gold"),
            variants={k: [Word.from_dict(w) for w in ws]
                      for k, ws in (d.get("variants") or {}).items()},
            meta=dict(d.get("meta") or {}),
        )


@dataclass
class FieldSpec:
    """One key-value field to extract.

    ``auto_accept`` is the calibrated confidence at or above which the review queue treats the
    model's top value as accepted without an operator looking at it.
    """

    name: str
    type: FieldType = "text"
    description: str = ""
    auto_accept: float = 0.95
    multiline: bool = False
    max_length: int | None = None  # characters; None: MAX_VALUE_CHARS of its type

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"field name must be alphanumeric/underscore, got {self.name!r}")
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field {self.name!r}: type must be one of {FIELD_TYPES}, "
                             f"got {self.type!r}")
        if not 0.0 <= self.auto_accept <= 1.0:
            raise ValueError(f"field {self.name!r}: auto_accept must be in [0, 1]")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"field {self.name!r}: max_length must be >= 1, "
                             f"got {self.max_length!r}")

    @property
    def max_chars(self) -> int:
        """The longest value this field may hold."""
        return self.max_length or MAX_VALUE_CHARS[self.type]

    def export(self) -> dict[str, Any]:
        d = asdict(self)
        if d["max_length"] is None:  # the type's default: cards saved before it read the same
            del d["max_length"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FieldSpec:
        return cls(**d)


@dataclass
class Schema:
    """The fields a model extracts, and the BIO label set derived from them."""

    name: str
    fields: list[FieldSpec]

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"schema {self.name!r} has duplicate field names: {names}")
        if not names:
            raise ValueError(f"schema {self.name!r} has no fields")

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def __getitem__(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"schema {self.name!r} has no field {name!r}")

    @property
    def labels(self) -> list[str]:
        """BIO labels: ``O`` first, then ``B-<FIELD>``, ``I-<FIELD>`` for each field in order."""
        out = ["O"]
        for f in self.fields:
            out += [f"B-{f.name.upper()}", f"I-{f.name.upper()}"]
        return out

    @property
    def label2id(self) -> dict[str, int]:
        return {lab: i for i, lab in enumerate(self.labels)}

    def export(self) -> dict[str, Any]:
        return {"name": self.name, "fields": [f.export() for f in self.fields]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schema:
        return cls(name=d["name"], fields=[FieldSpec.from_dict(f) for f in d["fields"]])


RECEIPT_SCHEMA = Schema(
    name="receipt",
    fields=[
        FieldSpec("company", "text", "Name of the issuing company or shop", 0.95),
        FieldSpec("date", "date", "Date of the receipt as printed", 0.95),
        FieldSpec("address", "text", "Address of the shop, possibly over several lines", 0.95,
                  multiline=True),
        FieldSpec("total", "amount", "Total amount due (after rounding)", 0.97),
    ],
)


@dataclass
class Candidate:
    """One proposed value for a field.

    ``score`` is the extractor's probability for this value (span probability, merged over OCR
    variants); ``word_indices`` point into the document's ``words`` (empty when the value only
    came from a variant whose words do not map onto them); ``source`` says which pass found it.
    ``engines``: the OCR engines (``tesseract``, ``rapidocr``) on whose reading of the page
    this value was the field's best; two or more means independent engines agree on it.
    """

    value: str
    score: float
    word_indices: list[int] = field(default_factory=list)
    source: str = "model"
    logprob: float | None = None
    engines: list[str] = field(default_factory=list)

    def export(self) -> dict[str, Any]:
        d = asdict(self)
        if not self.engines:  # pages read by one engine (or given words) export as before
            d.pop("engines")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        return cls(value=str(d["value"]), score=float(d["score"]),
                   word_indices=[int(i) for i in d.get("word_indices", [])],
                   source=str(d.get("source", "model")), logprob=d.get("logprob"),
                   engines=[str(e) for e in d.get("engines", [])])


@dataclass
class FieldResult:
    """The extractor's answer for one field: ranked candidates and a calibrated confidence.

    An empty candidate list means the model found no value ("not present").
    ``confidence`` is the calibrated probability that the top candidate is right.
    """

    name: str
    candidates: list[Candidate] = field(default_factory=list)
    confidence: float = 0.0

    @property
    def value(self) -> str | None:
        return self.candidates[0].value if self.candidates else None

    @property
    def top(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def agreement(self) -> int:
        """How many independent OCR engines read the top value as the field's best (two
        engines that read the same string are rarely both wrong): a confidence signal."""
        return len(self.candidates[0].engines) if self.candidates else 0

    def export(self) -> dict[str, Any]:
        return {"name": self.name, "confidence": self.confidence,
                "candidates": [c.export() for c in self.candidates]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FieldResult:
        return cls(name=d["name"], confidence=float(d.get("confidence", 0.0)),
                   candidates=[Candidate.from_dict(c) for c in d.get("candidates", [])])


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class ExtractionResult:
    """Everything the extractor says about one document, tagged with the model that said it."""

    doc_id: str
    model_version: str
    fields: dict[str, FieldResult]
    created_at: str = field(default_factory=utc_now)
    doc_hash: str | None = None

    def values(self) -> dict[str, str | None]:
        return {name: fr.value for name, fr in self.fields.items()}

    def export(self) -> dict[str, Any]:
        return {"doc_id": self.doc_id, "model_version": self.model_version,
                "created_at": self.created_at, "doc_hash": self.doc_hash,
                "fields": {k: v.export() for k, v in self.fields.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExtractionResult:
        return cls(doc_id=str(d["doc_id"]), model_version=str(d["model_version"]),
                   created_at=d.get("created_at") or utc_now(), doc_hash=d.get("doc_hash"),
                   fields={k: FieldResult.from_dict(v) for k, v in d["fields"].items()})


# -- JSONL helpers shared by every stage -------------------------------------------------------

def write_jsonl(path: str, items: Iterable[Any]) -> int:
    """Write objects with ``export()`` (or plain dicts) one per line; returns the count."""
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for item in items:
            d = item.export() if hasattr(item, "export") else item
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str) -> Iterator[dict[str, Any]]:
    """Yield one dict per non-empty line; a bad line raises naming the file and line number."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
