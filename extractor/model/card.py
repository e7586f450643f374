"""The model card: everything a saved model directory says about itself, as one dataclass.

``kvloop.json`` beside the weights is ``ModelCard.export()``; every reader goes through
:meth:`ModelCard.load` (the ensemble for its architecture, the predictor for its decisions,
the review service for its schema and auto-accept thresholds, trainers for lineage). Keys are
the ones models have always been written with, so directories saved before the card existed
load unchanged (their ``training`` dict was the supervised config: it becomes a
:class:`TrainingRecord` of trainer ``base``).

Lineage: each trainer records the version it started from (``parent_version``), its config,
the feedback it read (how many records and a hash of their ids) and where its curves are,
so a version id leads back through every model and every correction that made it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from extractor.document import Schema
from extractor.lexicon import LEXICON_FILE
from extractor.model.calibrate import DecisionProfile
from extractor.straight_through import StraightThrough

FORMAT = "kvloop.ensemble/1"
VERSION_PREFIX = "kv.ensemble.v1"
CARD_FILE = "kvloop.json"
CURVES_FILE = "curves.jsonl"


@dataclass
class FeedbackRef:
    """Which feedback a trainer read: how many records, a hash of their ids, the filter."""

    n_records: int = 0
    n_documents: int = 0
    ids_sha256: str = ""
    source: str = ""  # the store URL (password removed) or dataset spec it came from
    filters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, record_ids: Iterable[str], doc_ids: Iterable[str], source: str = "",
           filters: dict[str, Any] | None = None) -> FeedbackRef:
        ids = sorted(set(record_ids))
        return cls(len(ids), len(set(doc_ids)),
                   hashlib.sha256("\n".join(ids).encode()).hexdigest(), source,
                   dict(filters or {}))

    def export(self) -> dict[str, Any]:
        return {"n_records": self.n_records, "n_documents": self.n_documents,
                "ids_sha256": self.ids_sha256, "source": self.source, "filters": self.filters}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeedbackRef:
        return cls(int(d.get("n_records", 0)), int(d.get("n_documents", 0)),
                   str(d.get("ids_sha256", "")), str(d.get("source", "")),
                   dict(d.get("filters", {})))


@dataclass
class TrainingRecord:
    """How the weights were made: trainer, its config, the parent model, the data, curves."""

    trainer: str = "base"
    config: dict[str, Any] = field(default_factory=dict)
    parent_version: str | None = None
    feedback: FeedbackRef | None = None
    curves: str | None = CURVES_FILE  # file beside the card, one JSON row per logged step
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch

    def export(self) -> dict[str, Any]:
        return {"trainer": self.trainer, "config": self.config,
                "parent_version": self.parent_version,
                "feedback": self.feedback.export() if self.feedback else None,
                "curves": self.curves, "best_epoch": self.best_epoch, "history": self.history}

    @classmethod
    def from_dict(cls, d: dict[str, Any], legacy: dict[str, Any] | None = None
                  ) -> TrainingRecord:
        if "trainer" not in d:  # saved before the card: ``training`` was the base config
            legacy = legacy or {}
            return cls("base", dict(d), None, None, None, legacy.get("best_epoch"),
                       list(legacy.get("history", [])))
        fb = d.get("feedback")
        return cls(str(d["trainer"]), dict(d.get("config", {})), d.get("parent_version"),
                   FeedbackRef.from_dict(fb) if fb else None, d.get("curves"),
                   d.get("best_epoch"), list(d.get("history", [])))


class CardFile:
    """The serialisation every card shares (``ModelCard``, ``RewardCard``): the lineage
    fields (``training``, ``epoch``, ``version``) after the card's own keys, and the JSON file
    it lives in (``FILE``), written atomically."""

    FILE: ClassVar[str]
    WHAT: ClassVar[str]  # "model card": how errors name the file
    training: TrainingRecord | None
    epoch: int | None
    version: str | None

    def export(self) -> dict[str, Any]:
        raise NotImplementedError

    def export_lineage(self) -> dict[str, Any]:
        """The set lineage fields, as the end of ``export()``."""
        out: dict[str, Any] = {}
        if self.training is not None:
            out["training"] = self.training.export()
        if self.epoch is not None:
            out["epoch"] = self.epoch
        if self.version is not None:
            out["version"] = self.version
        return out

    @staticmethod
    def lineage_from_dict(d: dict[str, Any], legacy: bool = False) -> dict[str, Any]:
        """The lineage fields of a card's JSON (``legacy``: a card whose training config was
        saved at its top level)."""
        training = d.get("training")
        record = (TrainingRecord.from_dict(training, d if legacy else None) if training
                  else None)
        return {"training": record, "epoch": d.get("epoch"), "version": d.get("version")}

    @classmethod
    def read_json(cls, path: Path) -> dict[str, Any]:
        return read_card_json(path, cls.WHAT)

    def save(self, model_dir: str | Path) -> Path:
        return write_json(Path(model_dir) / self.FILE, self.export())


@dataclass
class ModelCard(CardFile):
    """``kvloop.json``: architecture, decisions (per OCR engine), routing, lineage, version.

    ``decisions`` is the default profile (fitted on the calibration split as loaded; its keys
    stay top-level in the JSON), ``ocr_profiles`` the per-engine ones (``tesseract``), and
    ``auto_accept`` the per-field confidence at or above which routing accepts a value
    without review, fitted for a target precision (``None``: that field is always reviewed).
    ``straight_through``: the correctness model and the per-field certified thresholds on
    its P(correct) (``extractor.straight_through``); when present, routing goes by it.
    """

    schema: Schema
    arch: str = "custom"
    fusion_raw: list[float] = field(default_factory=lambda: [0.5413, 0.5413])
    fusion_weights: list[float] = field(default_factory=lambda: [1.0, 1.0])
    max_length: int = 512
    stride: int = 128
    max_span_len: int = 48
    decisions: DecisionProfile = field(default_factory=DecisionProfile)
    calibration_ocr: str = "provided"
    ocr_profiles: dict[str, DecisionProfile] = field(default_factory=dict)
    profile_fits: dict[str, dict[str, Any]] = field(default_factory=dict)  # F1 behind each
    calibration_fit: dict[str, Any] | None = None  # the grid behind ``decisions``
    auto_accept: dict[str, float | None] = field(default_factory=dict)
    auto_accept_fit: dict[str, Any] = field(default_factory=dict)
    straight_through: StraightThrough | None = None
    training: TrainingRecord | None = None
    epoch: int | None = None  # set on mid-training checkpoints
    version: str | None = None
    format: str = FORMAT

    FILE: ClassVar[str] = CARD_FILE
    WHAT: ClassVar[str] = "model card"

    def export(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": self.format, "arch": self.arch, "schema": self.schema.export(),
            "labels": self.schema.labels, "fusion_raw": list(self.fusion_raw),
            "fusion_weights": list(self.fusion_weights), "max_length": self.max_length,
            "stride": self.stride, "max_span_len": self.max_span_len,
            **self.decisions.export(), "calibration_ocr": self.calibration_ocr,
            "ocr_profiles": {k: {**p.export(), **self.profile_fits.get(k, {})}
                             for k, p in self.ocr_profiles.items()},
        }
        if self.calibration_fit is not None:
            out["calibration_fit"] = self.calibration_fit
        if self.auto_accept:
            out["auto_accept"] = dict(self.auto_accept)
            out["auto_accept_fit"] = self.auto_accept_fit
        if self.straight_through is not None:
            out["straight_through"] = self.straight_through.export()
        return {**out, **self.export_lineage()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = CARD_FILE) -> ModelCard:
        """Parse a card; ``ValueError`` naming ``where`` and the problem when it is not one."""
        if d.get("format") != FORMAT:
            raise ValueError(f"{where}: unsupported format {d.get('format')!r}")
        try:
            schema = Schema.from_dict(d["schema"])
            if schema.labels != d["labels"]:
                raise ValueError("label list does not match the schema")
            profiles = {k: DecisionProfile.from_dict(v)
                        for k, v in d.get("ocr_profiles", {}).items()}
            fits = {k: {f: v[f] for f in ("lenient_f1", "n_fields") if f in v}
                    for k, v in d.get("ocr_profiles", {}).items()}
            auto_accept = d.get("auto_accept", {})
            if not isinstance(auto_accept, dict):
                raise ValueError('"auto_accept" must map field names to thresholds, not '  # noqa: TRY004
                                 f"{type(auto_accept).__name__}")
            for name, v in auto_accept.items():
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                    raise ValueError(f"auto-accept threshold of {name!r} must be a number or "
                                     f"null, got {v!r}")
            return cls(
                schema=schema, arch=d.get("arch", "custom"),
                fusion_raw=[float(x) for x in d["fusion_raw"]],
                fusion_weights=[float(x) for x in d.get("fusion_weights", [1.0, 1.0])],
                max_length=int(d["max_length"]), stride=int(d["stride"]),
                max_span_len=int(d["max_span_len"]), decisions=DecisionProfile.from_dict(d),
                calibration_ocr=d.get("calibration_ocr", "provided"), ocr_profiles=profiles,
                profile_fits=fits, calibration_fit=d.get("calibration_fit"),
                auto_accept={k: (None if v is None else float(v))
                             for k, v in auto_accept.items()},
                auto_accept_fit=dict(d.get("auto_accept_fit", {})),
                straight_through=(StraightThrough.from_dict(d["straight_through"])
                                  if d.get("straight_through") else None),
                **cls.lineage_from_dict(d, legacy=True))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: not a valid model card ({type(e).__name__}: {e})") from e

    # -- files -------------------------------------------------------------------------------
    @classmethod
    def load(cls, model_dir: str | Path) -> ModelCard:
        d = Path(model_dir)
        path = d / CARD_FILE
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: no such model folder")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not a kvloop model folder ({CARD_FILE} missing"
                                    f"{_other_kind(d)})")
        return cls.from_dict(cls.read_json(path), str(path))

    def decision_key(self) -> list[Any]:
        """What of the card enters the version hash besides the weights: every decision that
        changes what a user is shown. Keys are appended only when set, so models saved before
        they existed keep their ids."""
        d = self.export()
        key = [d["fusion_raw"], d["calibration"], d["absent_threshold"]]
        for name in ("ocr_profiles", "correct_below", "auto_accept"):
            if d.get(name):
                key.append(d[name])
        if self.straight_through is not None:
            key.append(self.straight_through.summary())
        return key


def write_json(path: Path, obj: Any) -> Path:
    """``obj`` as JSON in ``path``, written to a temporary file and renamed over it: a kill
    leaves the old file or the new one, never half of one (``kvloop train calibrate`` rewrites
    a card in place)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_card_json(path: Path, what: str) -> dict[str, Any]:
    """A card file's JSON object; ``ValueError`` naming the file when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read the {what} ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the {what} is not a JSON object")  # noqa: TRY004
    return data


def _other_kind(d: Path) -> str:
    """What ``d`` holds instead of an extractor, as the end of an error message."""
    if (d / "reward.json").is_file():  # extractor.model.reward.REWARD_CARD_FILE
        return ("; it holds reward.json: that is a reward model (kvloop train reward), "
                "given where an extractor is expected; pass it as --rerank")
    inner = sorted(p.parent.name for p in d.glob(f"*/{CARD_FILE}"))
    if inner:
        return f"; the model folders inside it: {', '.join(inner[:5])}"
    return ""


def check_safetensors(path: Path, expected: dict[str, tuple[int, ...]] | None = None,
                      what: str = "weights") -> None:
    """``path`` is a whole safetensors file (its header read, no tensor data): else
    ``FileNotFoundError``/``ValueError`` naming it and the problem (missing, truncated, not
    safetensors; with ``expected``, tensor names or shapes that do not fit)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (the {what})")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or 8 + n > size:
            raise ValueError(f"{path}: truncated or not a safetensors file ({size} bytes; "
                             f"the {what})")
        try:
            header = json.loads(fh.read(n))
            tensors = {k: v for k, v in header.items() if k != "__metadata__"}
            end = max((int(v["data_offsets"][1]) for v in tensors.values()), default=0)
            shapes = {k: tuple(v["shape"]) for k, v in tensors.items()}
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError,
                TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a safetensors file (bad header: {e}; the "
                             f"{what})") from e
    if 8 + n + end != size:
        raise ValueError(f"{path}: truncated: {size} bytes, its header describes "
                         f"{8 + n + end} (the {what})")
    if expected is None:
        return
    problems = [f"{k} missing" for k in expected if k not in shapes]
    problems += [f"{k} unexpected" for k in shapes if k not in expected]
    problems += [f"{k} is {list(shapes[k])}, the config needs {list(v)}"
                 for k, v in expected.items() if k in shapes and shapes[k] != v]
    if problems:
        raise ValueError(f"{path}: does not fit its config ({len(problems)} problem(s): "
                         f"{'; '.join(problems[:4])}; the {what})")


def model_version(model_dir: str | Path) -> str:
    """``kv.ensemble.v1@<hash>``: a hash of both members' weights, the card's decisions
    (:meth:`ModelCard.decision_key`) and the lexicon; every result and correction records it."""
    d = Path(model_dir)
    h = hashlib.sha256()
    for part in ("bert/model.safetensors", "layoutlm/model.safetensors"):
        with open(d / part, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    h.update(json.dumps(ModelCard.load(d).decision_key()).encode())
    if (d / LEXICON_FILE).is_file():
        h.update((d / LEXICON_FILE).read_bytes())
    return f"{VERSION_PREFIX}@{h.hexdigest()[:12]}"
