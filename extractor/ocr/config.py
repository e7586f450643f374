"""How a page is read: one ``OcrConfig`` per tesseract pass, the default passes, and the
per-page limits (``ReadOptions``, ``Deadline``).

One ``OcrConfig`` is one way of reading a page (page segmentation mode, grayscale, Otsu or
adaptive binarisation, deskew, upscaling). Several configs over the same page read different
words; the extractor merges them, which is why ``DEFAULT_VARIANTS`` holds a handful.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import ClassVar, Literal

Binarize = Literal["none", "otsu", "adaptive"]
PAGE_TIMEOUT = 120.0  # seconds for all passes over one page; a receipt takes 1-5 s


@dataclass(frozen=True)
class ReadOptions:
    """How each page is read besides its passes: a time limit and orientation detection.

    ``page_timeout`` (seconds, ``None`` = no limit) bounds all tesseract calls of one page; a
    page over it becomes a failure. ``orient`` turns sideways / upside-down pages upright.
    """

    page_timeout: float | None = PAGE_TIMEOUT
    orient: bool = True

    def __post_init__(self) -> None:
        if self.page_timeout is not None and self.page_timeout <= 0:
            raise ValueError(f"page_timeout must be positive seconds, got {self.page_timeout}")


class PageTimeout(RuntimeError):
    """A page took longer than its time limit."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"OCR stopped: the page took longer than the {seconds:g} s page time "
                         "limit (--page-timeout)")


@dataclass
class Deadline:
    """The time left for one page; ``remaining()`` raises ``PageTimeout`` once it is spent."""

    seconds: float | None
    start: float = field(default_factory=time.monotonic)

    def remaining(self) -> float | None:
        if self.seconds is None:
            return None
        left = self.seconds - (time.monotonic() - self.start)
        if left <= 0:
            raise PageTimeout(self.seconds)
        return left


@dataclass(frozen=True)
class OcrConfig:
    """One OCR pass: tesseract settings plus the preprocessing applied before it.

    ``upscale`` > 1 helps small receipt text; ``min_confidence`` (0-1) drops words tesseract
    itself doubts. ``name`` identifies the pass in ``Document.variants`` and in the cache.
    """

    engine: ClassVar[str] = "tesseract"

    name: str = "default"
    psm: int = 3
    oem: int = 3
    lang: str = "eng"
    grayscale: bool = True
    binarize: Binarize = "none"
    deskew: bool = False
    upscale: float = 1.0
    min_confidence: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.psm <= 13:
            raise ValueError(f"OCR config {self.name!r}: psm must be 0-13, got {self.psm}")
        if self.binarize not in ("none", "otsu", "adaptive"):
            raise ValueError(f"OCR config {self.name!r}: binarize must be none/otsu/adaptive, "
                             f"got {self.binarize!r}")
        if not 0.25 <= self.upscale <= 4.0:
            raise ValueError(f"OCR config {self.name!r}: upscale must be in [0.25, 4]")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"OCR config {self.name!r}: min_confidence must be in [0, 1]")

    def tesseract_args(self) -> str:
        return f"--psm {self.psm} --oem {self.oem}"

    def key(self) -> str:
        """Everything that changes the output, as a stable string (the name is excluded)."""
        d = asdict(self)
        d.pop("name")
        return json.dumps(d, sort_keys=True)


# Chosen by measured coverage of SROIE gold values (scripts/bench_ocr.py coverage, see
# BENCHMARKS.md, OCR): each pass after the first adds values the others miss.
# In greedy order on 100 SROIE receipts: 64.8% of gold values alone, 77.9% all five.
DEFAULT_VARIANTS: list[OcrConfig] = [
    OcrConfig("psm6", psm=6),
    OcrConfig("psm4_x2", psm=4, upscale=2.0),
    OcrConfig("psm4", psm=4),
    OcrConfig("psm6_adaptive", psm=6, binarize="adaptive"),
    OcrConfig("psm6_x2", psm=6, upscale=2.0),
]

# Further passes worth trying; ``--variants all`` runs these too.
EXTRA_VARIANTS: list[OcrConfig] = [
    OcrConfig("psm3", psm=3),
    OcrConfig("psm3_x2", psm=3, upscale=2.0),
    OcrConfig("psm6_x1.5", psm=6, upscale=1.5),
    OcrConfig("psm6_otsu", psm=6, binarize="otsu"),
    OcrConfig("psm4_adaptive", psm=4, binarize="adaptive"),
    OcrConfig("psm6_deskew", psm=6, deskew=True),
    OcrConfig("psm11", psm=11),
]

ALL_VARIANTS: list[OcrConfig] = DEFAULT_VARIANTS + EXTRA_VARIANTS


def variants_by_name(spec: str) -> list[OcrConfig]:
    """``default`` / ``all`` / a comma list of variant names (e.g. ``psm6,psm4_x2``)."""
    if spec == "default":
        return list(DEFAULT_VARIANTS)
    if spec == "all":
        return list(ALL_VARIANTS)
    known = {c.name: c for c in ALL_VARIANTS}
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"unknown OCR variant(s) {unknown or spec!r}; known: "
                         f"default, all, {', '.join(known)}")
    return [known[n] for n in names]
