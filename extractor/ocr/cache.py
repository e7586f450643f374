"""The on-disk OCR cache: words per (image pixels, config, tesseract version)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from PIL import Image

from extractor.document import Word
from extractor.ocr.config import Deadline, OcrConfig
from extractor.ocr.tesseract import ocr_image, tesseract_version
from extractor.word_repair import repair_words

CACHE_VERSION = "1"  # bump when ``ocr_image`` changes what a cache entry means


def default_cache_dir() -> Path:
    return Path(os.environ.get("KVLOOP_CACHE") or Path.home() / ".cache" / "kvloop") / "ocr"


def image_digest(img: Image.Image) -> str:
    """Hash of the decoded pixels (so the same page rendered twice hits the same entry)."""
    h = hashlib.sha256(f"{img.mode}{img.size}".encode())
    h.update(img.tobytes())
    return h.hexdigest()


class OcrCache:
    """Words per (image pixels, config, tesseract version), one small JSON file each."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def _path(self, digest: str, config: OcrConfig) -> Path:
        key = hashlib.sha256(f"{CACHE_VERSION}|{tesseract_version()}|{digest}|{config.key()}"
                             .encode()).hexdigest()
        return self.root / key[:2] / f"{key}.json"

    def get(self, digest: str, config: OcrConfig) -> list[Word] | None:
        p = self._path(digest, config)
        try:
            return [Word.from_dict(w) for w in json.loads(p.read_text(encoding="utf-8"))]
        except (OSError, ValueError, KeyError):
            return None  # a missing or torn entry is just a miss

    def put(self, digest: str, config: OcrConfig, words: list[Word]) -> None:
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


def cached_ocr(img: Image.Image, config: OcrConfig, cache: OcrCache | None,
               digest: str | None = None, deadline: Deadline | None = None) -> list[Word]:
    """The page's words under ``config``, repaired (``extractor.word_repair``).

    The cache holds tesseract's raw words, so a change to the repairs needs no re-OCR.
    """
    if cache is None:
        return repair_words(ocr_image(img, config, deadline))
    digest = digest or image_digest(img)
    words = cache.get(digest, config)
    if words is None:
        words = ocr_image(img, config, deadline)
        cache.put(digest, config, words)
    return repair_words(words)
