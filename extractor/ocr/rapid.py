"""The PP-OCRv6 engine: detection + recognition ONNX models run by ``rapidocr``.

Only the models inside the ``rapidocr`` wheel are used (``PP-OCRv6_det_small``,
``PP-OCRv6_rec_small`` and, when asked for, the 0/180-degree line classifier): every model path is given
explicitly, so rapidocr never reaches its download code, which is impossible here and in many
users' sites. A missing model file is a clear error, not a download attempt.

ONNX Runtime runs single-threaded (intra- and inter-op threads 1): the pool runs one page per
core, as it does for tesseract. Sessions are built once per process and config.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from extractor.document import Word
from extractor.ocr.config import Deadline

DET_MODEL = "PP-OCRv6_det_small.onnx"
REC_MODEL = "PP-OCRv6_rec_small.onnx"
CLS_MODEL = "ch_ppocr_mobile_v2.0_cls_mobile.onnx"
_KEY_DEFAULTS: dict[str, object] = {"det_limit": "min", "rec_batch": 6}


@dataclass(frozen=True)
class RapidConfig:
    """One PP-OCRv6 pass through rapidocr: the bundled models and the settings that change
    what is read. ``name`` identifies the pass in ``Document.variants`` and in the cache.

    ``text_score``: lines recognised below this score are dropped (rapidocr's default);
    ``max_side_len``: the page is reduced to fit this many pixels on its longer side before
    detection (bounds time and memory on huge pages); ``det_side_len`` with ``det_limit``:
    the detector sees the page scaled so that its shorter side is at least (``"min"``) or its
    longer side at most (``"max"``) that many pixels (recognition always reads the lines cut
    from the full page); ``rec_batch``: text lines recognised per ONNX call (a batch is padded
    to its widest line, so larger batches do more work on one thread); ``classify``: turn
    upside-down lines (the bundled 0/180 classifier). Off by default: it read the same gold
    values on 30 SROIE receipts, costs time, and with it an upside-down page reads well in
    reverse order, which orientation detection cannot see.
    """

    engine: ClassVar[str] = "rapidocr"

    name: str = "ppocrv6"
    det_model: str = DET_MODEL
    rec_model: str = REC_MODEL
    classify: bool = False
    text_score: float = 0.5
    max_side_len: int = 2000
    det_side_len: int = 736
    det_limit: str = "min"
    rec_batch: int = 6

    def __post_init__(self) -> None:
        if not 0.0 <= self.text_score <= 1.0:
            raise ValueError(f"OCR config {self.name!r}: text_score must be in [0, 1]")
        if self.max_side_len < 32 or self.det_side_len < 32:
            raise ValueError(f"OCR config {self.name!r}: side lengths must be >= 32 pixels")
        if self.det_limit not in ("min", "max"):
            raise ValueError(f"OCR config {self.name!r}: det_limit must be 'min' or 'max', "
                             f"not {self.det_limit!r}")
        if self.rec_batch < 1:
            raise ValueError(f"OCR config {self.name!r}: rec_batch must be >= 1")

    def key(self) -> str:
        """Everything that changes the output, as a stable string (the name is excluded)."""
        d = asdict(self)
        d.pop("name")
        d["engine"] = self.engine
        # Settings added after pages were cached enter the key only when set away from what
        # those pages were read with (rapidocr's defaults), so existing caches stay valid.
        for name, before in _KEY_DEFAULTS.items():
            if d[name] == before:
                d.pop(name)
        return json.dumps(d, sort_keys=True)


class MissingModel(RuntimeError):
    """A model file that should ship inside the rapidocr wheel is not there."""


def models_dir() -> Path:
    """Where the rapidocr wheel keeps its bundled ONNX models."""
    import rapidocr

    return Path(rapidocr.__file__).parent / "models"


def model_path(name: str) -> Path:
    p = models_dir() / name
    if not p.is_file():
        raise MissingModel(f"rapidocr model {name} is not in {models_dir()} (it must ship inside "
                           "the rapidocr wheel; kvloop never downloads models); reinstall "
                           "rapidocr")
    return p


@lru_cache(maxsize=1)
def rapidocr_version() -> str:
    from importlib.metadata import version

    return version("rapidocr")


def engine_params(config: RapidConfig) -> dict[str, Any]:
    """``RapidOCR(params=...)`` for ``config``: bundled models by path, one thread."""
    params: dict[str, Any] = {
        "Global.log_level": "error",
        "Global.use_cls": config.classify,
        "Global.text_score": config.text_score,
        "Global.max_side_len": config.max_side_len,
        "Det.limit_side_len": config.det_side_len,
        "Det.limit_type": config.det_limit,
        "Rec.rec_batch_num": config.rec_batch,
        "Det.model_path": str(model_path(config.det_model)),
        "Rec.model_path": str(model_path(config.rec_model)),
        "EngineConfig.onnxruntime.intra_op_num_threads": 1,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    }
    if config.classify:
        params["Cls.model_path"] = str(model_path(CLS_MODEL))
    return params


@lru_cache(maxsize=4)
def _engine(config: RapidConfig) -> Any:
    """One RapidOCR per process and config (its ONNX sessions load on first use)."""
    from rapidocr import RapidOCR

    engine = RapidOCR(params=engine_params(config))
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    return engine


def _box(points: Any, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A quadrilateral (4 x [x, y]) as an axis-aligned box clipped to the page."""
    a = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    w, h = size
    return (max(0, min(w, math.floor(a[:, 0].min()))), max(0, min(h, math.floor(a[:, 1].min()))),
            max(0, min(w, math.ceil(a[:, 0].max()))), max(0, min(h, math.ceil(a[:, 1].max()))))


def rapid_words(img: Image.Image, config: RapidConfig,
                deadline: Deadline | None = None) -> list[Word]:
    """PP-OCRv6 words of one page: text, box in the page's pixels, score 0-1, line index.

    rapidocr cannot be interrupted mid-page, so the deadline is checked before the call and
    after it (a page that ran over is a ``PageTimeout`` all the same); ``max_side_len`` bounds
    how long one call can take.
    """
    if deadline is not None:
        deadline.remaining()
    page = img if img.mode in ("L", "RGB") else img.convert("RGB")
    out = _engine(config)(page, return_word_box=True)
    if deadline is not None:
        deadline.remaining()
    words: list[Word] = []
    if not out.txts:  # nothing read: rapidocr then gives one empty placeholder, not lines
        return words
    for line, line_words in enumerate(out.word_results or ()):
        for text, score, points in line_words:
            if points is None:
                continue
            text = (text or "").strip()
            if text:
                words.append(Word(text, _box(points, img.size),
                                  round(max(0.0, min(1.0, float(score))), 4), line))
    return words
