"""The OCR engine interface: every engine turns a page image into ``Word`` lists under a pass.

A pass is one frozen config of one engine: ``OcrConfig`` (tesseract) or ``RapidConfig``
(PP-OCRv6 through rapidocr). Each has a ``name`` (its key in ``Document.variants``), an
``engine`` and a ``key()`` of everything that changes its output; the engine says its version
(part of the cache key) and reads one image under a deadline. Everything around the engines is
shared: the image guards, the cache, orientation, the process pool and the word repairs.

A pass spec names the passes a page is read with, first pass first (its words become
``Document.words``, the others variants): engine groups (``rapidocr``: the PP-OCRv6 pass;
``rapidocr-fast``: the same models, detecting on a reduced page;
``tesseract``: the five default tesseract passes; ``tesseract-all``: every tesseract pass) and
single pass names (``psm6``, ``psm4_x2``, ...), joined by ``+`` or ``,``. ``default`` (or no
spec) is ``$KVLOOP_OCR_ENGINES`` when set, else ``DEFAULT_ENGINES``: the CLI's
``--ocr-engines`` sets that variable, so one option reaches every place that reads images,
worker processes included.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from extractor.document import Word
from extractor.ocr.config import ALL_VARIANTS, DEFAULT_VARIANTS, Deadline, OcrConfig
from extractor.ocr.rapid import RapidConfig, rapid_words, rapidocr_version
from extractor.ocr.tesseract import ocr_image, tesseract_version

OcrPass = OcrConfig | RapidConfig

RAPID_PASS = RapidConfig()
# The same models with detection on the page reduced to 960 pixels on its longer side and
# lines recognised one by one: on 25 SROIE receipts (one thread) detection took 0.64 s instead
# of 2.2 s and recognition 1.45 s instead of 1.64 s, reading the same gold values (86-87 of 100).
RAPID_FAST_PASS = RapidConfig(name="ppocrv6_fast", det_side_len=960, det_limit="max",
                              rec_batch=1)

# Measured on the 100 SROIE dev receipts (scripts/bench_ocr_engines.py, BENCHMARKS.md, "OCR
# engines"): PP-OCRv6 on the reduced page with one tesseract pass beside it covers 88.2% of gold
# values (lenient; 76.5% for the five tesseract passes) and gives the same images-in F1 as the
# full-size detection (76.5 vs 76.9 lenient, CI [-3.2, +2.4]) at 0.52 images/s end to end on 2
# cores instead of 0.36. PP-OCRv6 alone is faster still (0.79/s, same F1) but a second engine
# is kept: two engines reading the same value is evidence for its confidence.
DEFAULT_ENGINES = "rapidocr-fast+psm6"
ENGINES_ENV = "KVLOOP_OCR_ENGINES"

ENGINE_GROUPS: dict[str, list[OcrPass]] = {
    "rapidocr": [RAPID_PASS],
    "rapidocr-fast": [RAPID_FAST_PASS],
    "tesseract": list(DEFAULT_VARIANTS),
    "tesseract-all": list(ALL_VARIANTS),
}


class Engine(Protocol):
    """What every OCR engine gives: its version, and one image read under one pass."""

    @property
    def name(self) -> str: ...

    def version(self) -> str: ...

    def read(self, img: Image.Image, config: OcrPass,
             deadline: Deadline | None = None) -> list[Word]: ...


@dataclass(frozen=True)
class TesseractEngine:
    name: str = "tesseract"

    def version(self) -> str:
        return tesseract_version()

    def read(self, img: Image.Image, config: OcrPass,
             deadline: Deadline | None = None) -> list[Word]:
        if not isinstance(config, OcrConfig):
            raise TypeError(f"tesseract cannot read a {type(config).__name__} pass")
        return ocr_image(img, config, deadline)


@dataclass(frozen=True)
class RapidEngine:
    name: str = "rapidocr"

    def version(self) -> str:
        return rapidocr_version()

    def read(self, img: Image.Image, config: OcrPass,
             deadline: Deadline | None = None) -> list[Word]:
        if not isinstance(config, RapidConfig):
            raise TypeError(f"rapidocr cannot read a {type(config).__name__} pass")
        return rapid_words(img, config, deadline)


ENGINES: dict[str, Engine] = {"tesseract": TesseractEngine(), "rapidocr": RapidEngine()}


def engine_for(config: OcrPass) -> Engine:
    return ENGINES[config.engine]


def engine_label(engine: str) -> str:
    """``tesseract 5.3.0``, ``rapidocr 3.10.0``: an engine and its version."""
    return f"{engine} {ENGINES[engine].version()}"


def engine_names(configs: Sequence[OcrPass]) -> list[str]:
    """The distinct engines of ``configs``, in order of first use."""
    return list(dict.fromkeys(c.engine for c in configs))


def pass_engines(configs: Sequence[OcrPass]) -> dict[str, str]:
    """Each pass's engine by pass name (how the predictor tells independent readings apart)."""
    return {c.name: c.engine for c in configs}


def default_engines() -> str:
    """The pass spec pages are read with when none is given."""
    return os.environ.get(ENGINES_ENV) or DEFAULT_ENGINES


def passes_by_name(spec: str | None = None) -> list[OcrPass]:
    """The passes of a spec (see the module docstring); ``ValueError`` naming what is unknown.

    >>> [p.name for p in passes_by_name("rapidocr+psm6")]
    ['ppocrv6', 'psm6']
    """
    if not spec or spec == "default":
        spec = default_engines()
    every: list[OcrPass] = [*ALL_VARIANTS, RAPID_PASS, RAPID_FAST_PASS]
    known = {c.name: c for c in every}
    out: list[OcrPass] = []
    unknown: list[str] = []
    for token in (t.strip() for t in spec.replace(",", "+").split("+")):
        if not token:
            continue
        group = ENGINE_GROUPS.get(token) or ([known[token]] if token in known else None)
        if group is None:
            unknown.append(token)
            continue
        out += [c for c in group if c.name not in {o.name for o in out}]
    if unknown or not out:
        raise ValueError(f"unknown OCR engine or pass {', '.join(unknown) or repr(spec)}; known: "
                         f"default ({DEFAULT_ENGINES}), {', '.join(ENGINE_GROUPS)}, "
                         f"{', '.join(known)}")
    return out
