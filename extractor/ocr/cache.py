"""The on-disk OCR cache: words per (image pixels, pass, engine version), for every engine."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from PIL import Image

from extractor.document import Word
from extractor.ocr.config import Deadline
from extractor.ocr.engines import OcrPass, engine_for
from extractor.ocr.tesseract import tesseract_version
from extractor.word_repair import repair_words

CACHE_VERSION = "1"  # bump when an engine's reading changes what a cache entry means


def default_cache_dir() -> Path:
    return Path(os.environ.get("KVLOOP_CACHE") or Path.home() / ".cache" / "kvloop") / "ocr"


def image_digest(img: Image.Image) -> str:
    """Hash of the decoded pixels (so the same page rendered twice hits the same entry)."""
    h = hashlib.sha256(f"{img.mode}{img.size}".encode())
    h.update(img.tobytes())
    return h.hexdigest()


class OcrCache:
    """Words per (image pixels, pass, engine version), one small JSON file each; a pass's
    ``key()`` names its engine and model, so two engines never share an entry."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def _path(self, digest: str, config: OcrPass) -> Path:
        version = engine_for(config).version()
        key = hashlib.sha256(f"{CACHE_VERSION}|{version}|{digest}|{config.key()}"
                             .encode()).hexdigest()
        return self.root / key[:2] / f"{key}.json"

    def get(self, digest: str, config: OcrPass) -> list[Word] | None:
        p = self._path(digest, config)
        try:
            return [Word.from_dict(w) for w in json.loads(p.read_text(encoding="utf-8"))]
        except (OSError, ValueError, KeyError):
            return None  # a missing or torn entry is just a miss

    def put(self, digest: str, config: OcrPass, words: list[Word]) -> None:
        self._write(self._path(digest, config), [w.export() for w in words])

    def _value_path(self, digest: str, name: str) -> Path:
        key = hashlib.sha256(f"{CACHE_VERSION}|{tesseract_version()}|{digest}|{name}"
                             .encode()).hexdigest()
        return self.root / key[:2] / f"{key}.json"

    def get_value(self, digest: str, name: str) -> Any:
        """A small JSON value cached per page (e.g. its ``rotation``), or ``None``."""
        try:
            return json.loads(self._value_path(digest, name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def put_value(self, digest: str, name: str, value: Any) -> None:
        self._write(self._value_path(digest, name), value)

    @staticmethod
    def _write(p: Path, data: Any) -> None:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")  # write-then-rename: workers never see halves
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, p)


def cached_ocr(img: Image.Image, config: OcrPass, cache: OcrCache | None,
               digest: str | None = None, deadline: Deadline | None = None) -> list[Word]:
    """The page's words under ``config`` (any engine), repaired (``extractor.word_repair``).

    The cache holds the engine's raw words, so a change to the repairs needs no re-OCR.
    """
    read = engine_for(config).read
    if cache is None:
        return repair_words(read(img, config, deadline))
    digest = digest or image_digest(img)
    words = cache.get(digest, config)
    if words is None:
        words = read(img, config, deadline)
        cache.put(digest, config, words)
    return repair_words(words)
