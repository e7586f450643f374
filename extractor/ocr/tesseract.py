"""The tesseract engine: one pass over one image into ``Word`` lists.

Tesseract runs single-threaded (``OMP_THREAD_LIMIT=1``): on a 2-core machine two single-threaded
processes are several times faster than one using OpenMP.
"""

from __future__ import annotations

import os
from functools import lru_cache

import pytesseract

from extractor.document import Word
from extractor.ocr.config import Deadline, OcrConfig, PageTimeout
from extractor.ocr.imageio import ImageInput, open_image
from extractor.ocr.preprocessing import preprocess


def single_thread_env() -> None:
    """Make tesseract (a child process inheriting our environment) use one OpenMP thread."""
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")


@lru_cache(maxsize=1)
def tesseract_version() -> str:
    return str(pytesseract.get_tesseract_version())


def ocr_image(image: ImageInput, config: OcrConfig,
              deadline: Deadline | None = None) -> list[Word]:
    """Tesseract words of one image: text, box in original pixels, confidence 0-1, line index.

    ``Word.line`` is a running index over tesseract's (block, paragraph, line) triples in
    reading order. Empty strings and words under ``config.min_confidence`` are dropped.
    Tesseract is killed when ``deadline`` runs out (``PageTimeout``).
    """
    single_thread_env()
    img = open_image(image)
    pre = preprocess(img, config)
    timeout = deadline.remaining() if deadline is not None else None
    try:
        data = pytesseract.image_to_data(pre.image, lang=config.lang,
                                         config=config.tesseract_args(),
                                         output_type=pytesseract.Output.DICT,
                                         timeout=timeout or 0)
    except RuntimeError as e:
        if deadline is not None and "timeout" in str(e).lower():
            raise PageTimeout(float(deadline.seconds or 0)) from None
        raise
    words: list[Word] = []
    lines: dict[tuple[int, int, int, int], int] = {}
    for i, text in enumerate(data["text"]):
        text = (text or "").strip()
        conf = float(data["conf"][i])
        if not text or conf < 0:
            continue
        conf = max(0.0, min(1.0, conf / 100.0))
        if conf < config.min_confidence:
            continue
        key = (data["page_num"][i], data["block_num"][i], data["par_num"][i], data["line_num"][i])
        line = lines.setdefault(key, len(lines))
        left, top = int(data["left"][i]), int(data["top"][i])
        box = (left, top, left + int(data["width"][i]), top + int(data["height"][i]))
        words.append(Word(text, pre.to_original(box, img.size), round(conf, 4), line))
    return words
