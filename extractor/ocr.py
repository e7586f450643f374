"""Tesseract OCR into ``Word`` lists: preprocessing variants, an on-disk cache, a parallel runner.

One ``OcrConfig`` is one way of reading a page (page segmentation mode, grayscale, Otsu or
adaptive binarisation, deskew, upscaling). Several configs over the same page read different
words; the extractor merges them, which is why ``DEFAULT_VARIANTS`` holds a handful.

Boxes are always in the coordinates of the image as given (before upscaling or deskewing).
Tesseract runs single-threaded (``OMP_THREAD_LIMIT=1``): on a 2-core machine two single-threaded
processes are several times faster than one using OpenMP.

Hostile pages cost one failure each, never the batch: an image whose header claims more than
``MAX_PIXELS`` is refused before any pixel is decoded (a decompression bomb), bigger pages than
``OCR_MAX_PIXELS`` are read reduced by an integer factor, every page has a time limit
(``ReadOptions.page_timeout``), and a page whose first pass reads poorly is tried at 90, 180
and 270 degrees and read the way up tesseract reads best (``detect_rotation``).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import multiprocessing as mp
import os
import re
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pytesseract
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from extractor.document import Document, Word
from extractor.word_repair import repair_words

ImageInput = Image.Image | str | Path
ImageFile = str | Path | IO[bytes]  # a path, or an open binary file (an upload's io.BytesIO)
Binarize = Literal["none", "otsu", "adaptive"]
CACHE_VERSION = "1"  # bump when the Word extraction below changes what a cache entry means

# A 600 dpi A3 scan is 70 megapixels; PIL itself warns at 89 M and refuses at 179 M.
MAX_PIXELS = 80_000_000
# Pages above this are read reduced (SROIE's biggest, 4961 x 7016, stay as they are).
OCR_MAX_PIXELS = 40_000_000
# Upscaling variants stop growing here (a 40 MP page at x2), which bounds tesseract's memory.
PREPROCESS_MAX_PIXELS = 4 * OCR_MAX_PIXELS
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
# BENCHMARKS.md "OCR (issue 2)"): each pass after the first adds values the others miss.
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


def single_thread_env() -> None:
    """Make tesseract (a child process inheriting our environment) use one OpenMP thread."""
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")


@lru_cache(maxsize=1)
def tesseract_version() -> str:
    return str(pytesseract.get_tesseract_version())


# -- preprocessing ---------------------------------------------------------------------------

def megapixels(n: float) -> str:
    return f"{n / 1e6:,.1f} megapixels"


class TooManyPixels(ValueError):
    """An image whose header claims more pixels than allowed. ``reason`` says so without the
    file's name, for a caller that names the file its own way (the review UI's uploads)."""

    def __init__(self, image: str, reason: str) -> None:
        super().__init__(image, reason)  # both in args: it pickles across worker processes
        self.image, self.reason = image, reason

    def __str__(self) -> str:
        return f"{self.image}: {self.reason}"


def _file_label(image: ImageFile) -> str:
    if isinstance(image, str | Path):
        return str(image)
    return str(getattr(image, "name", "image data"))


def _file_head(image: ImageFile, n: int) -> bytes:
    """The first ``n`` bytes of the file (``b""`` when it cannot be read)."""
    try:
        if isinstance(image, str | Path):
            with open(image, "rb") as fh:
                return fh.read(n)
        image.seek(0)  # where PIL reads an open file from, too
        return image.read(n)
    except OSError:
        return b""


def _png_header_size(image: ImageFile) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk (PIL will not say once it calls it a bomb)."""
    head = _file_head(image, 24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _too_many_pixels(size: tuple[int, int], max_pixels: int) -> str:
    w, h = size
    return (f"image is {w:,} x {h:,} pixels ({megapixels(w * h)}), over the "
            f"{max_pixels / 1e6:g}-megapixel limit; not decoded (a decompression bomb?)")


def _bomb_reason(image: ImageFile, err: Exception, max_pixels: int) -> str:
    size = _png_header_size(image)
    if size is not None:
        return _too_many_pixels(size, max_pixels)
    claimed = re.search(r"\((\d+) pixels\)", str(err))
    n = f"{int(claimed.group(1)):,} pixels" if claimed else "too many pixels"
    return (f"image header claims {n}, over the {max_pixels / 1e6:g}-megapixel limit; not "
            "decoded (a decompression bomb?)")


def image_size(image: ImageFile, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) from the header alone; ``ValueError`` naming the file and the problem
    for a file that is not an image, ``TooManyPixels`` (a ``ValueError``) for one that claims
    more than ``max_pixels`` pixels. ``image``: a path, or an open binary file (named by its
    ``name`` attribute, else "image data")."""
    label = _file_label(image)
    try:
        with Image.open(image) as im:
            size = im.size
    except Image.DecompressionBombError as e:  # PIL refuses in open() past 2x its own limit
        raise TooManyPixels(label, _bomb_reason(image, e, max_pixels)) from None
    except UnidentifiedImageError:
        raise ValueError(f"{label}: cannot read image (not an image file, or a format PIL "
                         "does not know)") from None
    except (OSError, SyntaxError, ValueError) as e:  # unreadable file, malformed header
        raise ValueError(f"{label}: cannot read image ({e.__class__.__name__}: {e})") from None
    if size[0] * size[1] > max_pixels:
        raise TooManyPixels(label, _too_many_pixels(size, max_pixels))
    return size


def reduction_factor(size: tuple[int, int], max_pixels: int = OCR_MAX_PIXELS) -> int:
    """The smallest integer ``f`` such that the page divided by ``f`` fits ``max_pixels``."""
    return max(1, math.ceil(math.sqrt(size[0] * size[1] / max_pixels)))


def open_image(image: ImageInput, max_pixels: int = MAX_PIXELS,
               reduce_to: int = OCR_MAX_PIXELS) -> Image.Image:
    """A loaded PIL image (first frame; EXIF orientation applied), checked before decoding.

    A file that is not an image, is truncated, or whose header claims more than ``max_pixels``
    raises ``ValueError`` naming it; a page over ``reduce_to`` is decoded reduced by an integer
    factor (JPEGs at DCT scale, so the full size is never held in memory).
    """
    if isinstance(image, Image.Image):
        return image
    image_size(image, max_pixels)
    try:
        with Image.open(image) as im:
            factor = reduction_factor(im.size, reduce_to)
            if factor > 1:
                im.draft(im.mode, (im.width // factor, im.height // factor))
            im.load()
            out: Image.Image = ImageOps.exif_transpose(im) or im
            rest = reduction_factor(out.size, reduce_to)
            return out.reduce(rest) if rest > 1 else out
    except UnidentifiedImageError as e:
        raise ValueError(f"{image}: cannot read image (not an image file)") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # truncated or corrupt data
        raise ValueError(f"{image}: cannot read image ({e.__class__.__name__}: {e})") from e


def otsu_threshold(gray: np.ndarray) -> int:
    """Otsu's threshold: the grey level that maximises between-class variance."""
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    w0 = np.cumsum(hist)
    mu = np.cumsum(hist * np.arange(256))
    w1 = total - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * w0 - mu * total) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = 0
    return int(np.argmax(between))


def binarize(img: Image.Image, method: Binarize) -> Image.Image:
    """Black text on white: global Otsu, or a local-mean threshold for uneven lighting."""
    gray = img.convert("L")
    a = np.asarray(gray)
    if method == "otsu":
        out = a > otsu_threshold(a)
    else:
        # Local mean over a window about twice a text line high; 10 grey levels of margin
        # keeps flat paper white instead of amplifying its noise.
        radius = max(8, min(a.shape) // 60)
        mean = np.asarray(gray.filter(ImageFilter.BoxBlur(radius)), dtype=np.int16)
        out = a.astype(np.int16) > mean - 10
    return Image.fromarray((out * 255).astype(np.uint8), mode="L")


def estimate_skew(img: Image.Image, max_angle: float = 5.0) -> float:
    """The rotation (degrees, PIL's counter-clockwise sign) that best straightens text lines.

    Projection-profile search: when lines are horizontal the row sums of ink alternate most
    sharply between text and gaps, so the angle maximising the summed squared row-to-row
    difference wins. A coarse 0.5-degree grid, then a 0.1-degree refinement, on a small copy.
    """
    gray = img.convert("L")
    scale = min(1.0, 600.0 / max(gray.size))
    small = gray.resize((max(1, int(gray.width * scale)), max(1, int(gray.height * scale))))
    a = np.asarray(small)
    ink = Image.fromarray(((a < otsu_threshold(a)) * 255).astype(np.uint8), mode="L")

    def score(angle: float) -> float:
        rows = np.asarray(ink.rotate(angle, resample=Image.Resampling.NEAREST, fillcolor=0),
                          dtype=np.float64).sum(axis=1)
        return float(np.sum(np.diff(rows) ** 2))

    coarse = max(np.arange(-max_angle, max_angle + 1e-9, 0.5), key=score)
    fine = max(np.arange(coarse - 0.5, coarse + 0.5 + 1e-9, 0.1), key=score)
    return round(float(fine), 2)


@dataclass
class Preprocessed:
    """The image tesseract sees, and how to map its pixels back to the original."""

    image: Image.Image
    scale: float
    angle: float  # degrees the upscaled image was rotated by (PIL sign), about its centre

    def to_original(self, box: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[
            int, int, int, int]:
        """A box on the processed image as a box on the original, clipped to ``size``."""
        x0, y0, x1, y1 = box
        pts: list[tuple[float, float]] = [(x0, y0), (x1, y0), (x0, y1), (x1, y1)]
        if self.angle:
            # Undo PIL's rotate(angle): it turns content counter-clockwise on screen (y down).
            cx, cy = self.image.width / 2.0, self.image.height / 2.0
            t = math.radians(self.angle)
            c, s = math.cos(t), math.sin(t)
            pts = [(cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c)
                   for x, y in pts]
        xs = [p[0] / self.scale for p in pts]
        ys = [p[1] / self.scale for p in pts]
        w, h = size
        return (max(0, min(w, math.floor(min(xs)))), max(0, min(h, math.floor(min(ys)))),
                max(0, min(w, math.ceil(max(xs)))), max(0, min(h, math.ceil(max(ys)))))


def upscale_for(size: tuple[int, int], upscale: float,
                max_pixels: int = PREPROCESS_MAX_PIXELS) -> float:
    """``upscale``, lowered (not below 1) so that the upscaled page fits ``max_pixels``."""
    if upscale <= 1.0 or size[0] * size[1] * upscale ** 2 <= max_pixels:
        return upscale
    return max(1.0, math.sqrt(max_pixels / (size[0] * size[1])))


def preprocess(img: Image.Image, config: OcrConfig) -> Preprocessed:
    """Apply a config's grayscale / upscale / deskew / binarise steps, in that order."""
    out = img.convert("L") if config.grayscale or config.binarize != "none" else img.convert("RGB")
    scale = upscale_for(img.size, config.upscale)
    if scale != 1.0:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        out = out.resize(size, Image.Resampling.LANCZOS)
    angle = 0.0
    if config.deskew:
        angle = estimate_skew(out)
        if abs(angle) >= 0.2:  # below this, resampling blur costs more than the tilt
            white = 255 if out.mode == "L" else (255, 255, 255)
            out = out.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=white)
        else:
            angle = 0.0
    if config.binarize != "none":
        out = binarize(out, config.binarize)
    return Preprocessed(out, scale, angle)


# -- OCR -------------------------------------------------------------------------------------

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


def ocr_variants(image: ImageInput, configs: Sequence[OcrConfig]) -> dict[str, list[Word]]:
    """Words of each config over the same image, by config name."""
    img = open_image(image)
    return {c.name: cached_ocr(img, c, None) for c in configs}


def ocr_document(image: ImageInput, doc_id: str, configs: Sequence[OcrConfig],
                 cache_dir: str | Path | None = None) -> Document:
    """A ``Document`` whose words come from the first config, other configs as variants."""
    if not configs:
        raise ValueError("ocr_document needs at least one OcrConfig")
    img = open_image(image)
    cache = OcrCache(cache_dir) if cache_dir is not None else None
    by_name = {c.name: cached_ocr(img, c, cache) for c in configs}
    return document_from_words(doc_id, by_name, configs, img.size,
                               source=None if isinstance(image, Image.Image) else str(image))


def document_from_words(doc_id: str, by_name: dict[str, list[Word]],
                        configs: Sequence[OcrConfig], size: tuple[int, int],
                        source: str | None = None, page: int = 0,
                        settings: dict[str, Any] | None = None) -> Document:
    """Assemble a page's Document: the first config's words, the others as variants.

    ``settings`` (``OcrOutcome.settings``: engine, passes, rotation, ...) go to
    ``meta["ocr"]``, so a document says how it was read wherever it travels.
    """
    first = configs[0].name
    return Document(id=doc_id, words=by_name[first], width=size[0], height=size[1], source=source,
                    page=page, ocr=f"tesseract:{first}",
                    variants={c.name: by_name[c.name] for c in configs[1:]},
                    meta={"ocr": settings} if settings else {})


# -- cache -----------------------------------------------------------------------------------

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


# -- orientation -----------------------------------------------------------------------------

# Tesseract's own orientation detection (OSD) called an upright SROIE receipt upside down with
# confidence 4; reading the page each way up and counting confident words does not.
ORIENT_CONFIG = OcrConfig("orient", psm=6)
ORIENT_TRIGGER = 0.5  # mean confidence of the first pass under which the page is checked
ORIENT_PIXELS = 4_000_000  # the check reads a copy reduced to this
ROTATIONS = (90, 180, 270)  # degrees counter-clockwise (PIL's sign)
_TRANSPOSE = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
              270: Image.Transpose.ROTATE_270}


def confident_words(words: Sequence[Word], min_conf: float = 0.6) -> int:
    """Words tesseract is sure of with at least two letters or digits: what a page read the
    right way up has many of (SROIE receipts: 58-166 upright, 3-42 sideways or upside down)."""
    return sum(1 for w in words
               if w.confidence >= min_conf and sum(c.isalnum() for c in w.text) >= 2)


def needs_orientation_check(words: Sequence[Word]) -> bool:
    """Upright SROIE receipts read with mean confidence >= 0.55, sideways ones <= 0.46."""
    return not words or sum(w.confidence for w in words) / len(words) < ORIENT_TRIGGER


def rotate_upright(img: Image.Image, rotation: int) -> Image.Image:
    return img.transpose(_TRANSPOSE[rotation]) if rotation else img


def detect_rotation(img: Image.Image, deadline: Deadline | None = None,
                    upright: Sequence[Word] | None = None) -> int:
    """0, 90, 180 or 270: how far to turn the page (counter-clockwise) to read it upright.

    A reduced copy is read each way up; another way wins only with at least twice the
    confident words of the page as given (and at least 3), so upright pages stay as they are.
    ``upright``: the page's words as given under ``ORIENT_CONFIG``'s settings, when known,
    saves one reading. All three other ways are read: stopping at the first that clears the
    bar turned an upside-down receipt sideways (its 90-degree reading had 10+ sure words).
    """
    small = img.convert("L")
    factor = reduction_factor(small.size, ORIENT_PIXELS)
    if factor > 1 or upright is None:
        small = small.reduce(factor) if factor > 1 else small
        upright = ocr_image(small, ORIENT_CONFIG, deadline)
    base = confident_words(upright)
    score = {r: confident_words(ocr_image(rotate_upright(small, r), ORIENT_CONFIG, deadline))
             for r in ROTATIONS}
    best = max(ROTATIONS, key=lambda r: score[r])
    return best if score[best] >= max(2 * base, 3) else 0


def cached_rotation(img: Image.Image, cache: OcrCache | None, digest: str | None,
                    deadline: Deadline | None = None,
                    upright: Sequence[Word] | None = None) -> int:
    if cache is None:
        return detect_rotation(img, deadline, upright)
    digest = digest or image_digest(img)
    known = cache.get_value(digest, "rotation")
    if isinstance(known, int) and known in (0, *ROTATIONS):
        return known
    rotation = detect_rotation(img, deadline, upright)
    cache.put_value(digest, "rotation", rotation)
    return rotation


# -- batch runner ----------------------------------------------------------------------------

PDF_SUFFIXES = {".pdf"}


@dataclass(frozen=True)
class OcrJob:
    """One page to read: an image file, or page ``page`` (1-based) of a PDF rendered at ``dpi``."""

    doc_id: str
    path: str
    page: int = 0
    dpi: int = 200


@dataclass
class OcrOutcome:
    """What a job produced: words per config name and the page size, or an error message.

    ``rotation`` is how far the page was turned (degrees counter-clockwise) to be read
    upright; ``scale`` the document's pixels per pixel of the file (< 1 for a reduced page);
    ``dpi`` the resolution a PDF page was rendered at.
    """

    job: OcrJob
    words: dict[str, list[Word]] = field(default_factory=dict)
    size: tuple[int, int] = (0, 0)
    error: str | None = None
    rotation: int = 0
    scale: float = 1.0
    dpi: int | None = None

    def settings(self, configs: Sequence[OcrConfig]) -> dict[str, Any]:
        """How the page was read, for ``Document.meta["ocr"]`` and every result line."""
        out: dict[str, Any] = {"engine": f"tesseract {tesseract_version()}",
                               "passes": {c.name: json.loads(c.key()) for c in configs}}
        if self.dpi is not None:
            out["dpi"] = self.dpi
        if self.rotation:
            out["rotation"] = self.rotation
        if self.scale != 1.0:
            out["scale"] = round(self.scale, 6)
        return out


def pdf_render_dpi(width_pt: float, height_pt: float, dpi: int,
                   max_pixels: int = OCR_MAX_PIXELS) -> int:
    """``dpi``, lowered so that a page of that many points renders within ``max_pixels``."""
    pixels = width_pt * height_pt * (dpi / 72.0) ** 2
    if pixels <= max_pixels:
        return dpi
    return max(1, math.floor(dpi * math.sqrt(max_pixels / pixels)))


def import_pymupdf() -> Any:
    """PyMuPDF without its layout analyser: pymupdf 2 imports ``pymupdf.layout`` (an ONNX
    model, about a second of CPU per process) whenever that package is installed, and kvloop
    only renders pages. Blocking the submodule makes pymupdf skip it (its import is optional).
    """
    if "pymupdf" not in sys.modules:
        sys.modules.setdefault("pymupdf.layout", None)  # type: ignore[arg-type]
    import pymupdf

    return pymupdf


def render_pdf_page(path: str | Path, page: int, dpi: int = 200) -> tuple[Image.Image, int]:
    """Page ``page`` (1-based) of a PDF as a grayscale PIL image, and the dpi it was rendered
    at (``dpi``, or less for a page too big for ``OCR_MAX_PIXELS``)."""
    pymupdf = import_pymupdf()
    try:
        with pymupdf.open(str(path)) as pdf:
            if pdf.needs_pass:
                raise ValueError(f"{path}: PDF is encrypted (password-protected); decrypt it "
                                 "first")
            p = pdf[page - 1]
            dpi = pdf_render_dpi(p.rect.width, p.rect.height, dpi)
            pix = p.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY, alpha=False)
            return Image.open(io.BytesIO(pix.tobytes("png"))).convert("L"), dpi
    except ValueError:
        raise
    except Exception as e:  # pymupdf raises its own and generic errors for broken files
        raise ValueError(f"{path}: cannot render PDF page {page} ({e})") from e


def load_job_image(job: OcrJob) -> tuple[Image.Image, float, int | None]:
    """The page image, its scale relative to the file (reduced pages) and the PDF dpi."""
    if Path(job.path).suffix.lower() in PDF_SUFFIXES:
        img, dpi = render_pdf_page(job.path, job.page, job.dpi)
        return img, 1.0, dpi
    full = image_size(job.path)
    img = open_image(job.path)
    # exif_transpose may swap the sides: compare the longer ones.
    return img, max(img.size) / max(full), None


def read_page(job: OcrJob, configs: Sequence[OcrConfig], cache: OcrCache | None,
              options: ReadOptions) -> OcrOutcome:
    """Read one page with every config, turned upright first when the first pass reads
    poorly (``options.orient``); raises on any failure (``run_job`` catches)."""
    deadline = Deadline(options.page_timeout)
    img, scale, dpi = load_job_image(job)
    digest = image_digest(img) if cache is not None else None
    first = cached_ocr(img, configs[0], cache, digest, deadline)
    rotation = 0
    if options.orient and needs_orientation_check(first):
        same = configs[0].key() == ORIENT_CONFIG.key()  # its first pass is the upright probe
        rotation = cached_rotation(img, cache, digest, deadline, first if same else None)
        if rotation:
            img = rotate_upright(img, rotation)
            digest = image_digest(img) if cache is not None else None
            first = cached_ocr(img, configs[0], cache, digest, deadline)
    words = {configs[0].name: first}
    words.update({c.name: cached_ocr(img, c, cache, digest, deadline) for c in configs[1:]})
    return OcrOutcome(job, words, img.size, rotation=rotation, scale=scale, dpi=dpi)


def run_job(job: OcrJob, configs: Sequence[OcrConfig], cache_dir: str | None,
            options: ReadOptions | None = None) -> OcrOutcome:
    """``read_page``, with any failure turned into the outcome's error, never a raise."""
    cache = OcrCache(cache_dir) if cache_dir is not None else None
    try:
        return read_page(job, configs, cache, options or ReadOptions())
    except PageTimeout as e:
        return OcrOutcome(job, error=str(e))
    except ValueError as e:
        return OcrOutcome(job, error=str(e).removeprefix(f"{job.path}: "))
    except (pytesseract.TesseractError, OSError, RuntimeError) as e:
        return OcrOutcome(job, error=f"OCR failed ({e.__class__.__name__}: {e})")
    except Exception as e:  # noqa: BLE001 - MemoryError, a decoder bug: the batch goes on
        return OcrOutcome(job, error=f"unexpected error reading the page "
                                     f"({e.__class__.__name__}: {e})")


def _init_worker(omp_threads: int = 1) -> None:
    os.environ["OMP_THREAD_LIMIT"] = str(omp_threads)


@contextmanager
def _thread_cap(omp_threads: int) -> Iterator[None]:
    """Tesseract's OpenMP cap for pages read in this process, restored afterwards."""
    saved = os.environ.get("OMP_THREAD_LIMIT")
    _init_worker(omp_threads)
    try:
        yield
    finally:  # the inline path must not leave our thread cap in the caller's env
        if saved is None:
            os.environ.pop("OMP_THREAD_LIMIT", None)
        else:
            os.environ["OMP_THREAD_LIMIT"] = saved


WORKER_DIED = ("the OCR worker process died reading this page (killed, or out of memory); "
               "the page was retried alone and it died again")


def iter_ocr(jobs: Sequence[OcrJob], configs: Sequence[OcrConfig], workers: int | None = None,
             cache_dir: str | Path | None = "default", options: ReadOptions | None = None,
             omp_threads: int = 1) -> Iterator[OcrOutcome]:
    """Outcomes of ``jobs`` in job order, read by ``workers`` single-threaded tesseracts.

    ``cache_dir="default"`` uses ``default_cache_dir()``; ``None`` disables the cache. Per-job
    errors are returned in the outcomes, never raised, so one bad page does not stop a batch;
    a worker process that dies takes only its page (see ``_pooled``). At most a few pages per
    worker are in flight, so memory stays bounded however long ``jobs`` is.
    """
    if not configs:
        raise ValueError("OCR needs at least one OcrConfig")
    cache = None if cache_dir is None else str(
        default_cache_dir() if cache_dir == "default" else Path(cache_dir))
    options = options or ReadOptions()
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    if workers == 1:
        with _thread_cap(omp_threads):
            for job in jobs:
                yield run_job(job, configs, cache, options)
        return
    yield from _pooled(jobs, list(configs), cache, options, workers, omp_threads)


def _pooled(jobs: Sequence[OcrJob], configs: list[OcrConfig], cache: str | None,
            options: ReadOptions, workers: int, omp_threads: int) -> Iterator[OcrOutcome]:
    """``iter_ocr`` over a process pool that survives the death of a worker.

    When a worker dies (SIGKILL, the kernel's out-of-memory killer) the pool breaks and every
    page in flight fails with it. Those pages are retried one at a time in a fresh pool: a
    page that breaks the pool when alone is the culprit and fails with ``WORKER_DIED``; the
    others are read normally.
    """
    # spawn, not fork: the parent may hold torch/streamlit threads that fork would copy.
    ctx = mp.get_context("spawn")
    queue: deque[int] = deque(range(len(jobs)))
    suspects: deque[int] = deque()
    done: dict[int, OcrOutcome] = {}
    nxt, ahead, in_flight = 0, 4 * workers, 2 * workers
    while nxt < len(jobs):
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(omp_threads,))
        running: dict[Future[OcrOutcome], int] = {}
        alone: int | None = None
        broken: list[int] = []
        try:
            while nxt < len(jobs) and not broken:
                if suspects:
                    if not running:
                        alone = suspects.popleft()
                        running[pool.submit(run_job, jobs[alone], configs, cache, options)] = alone
                else:  # bounded look-ahead: results are yielded in order from ``done``
                    while queue and len(running) < in_flight and queue[0] < nxt + ahead:
                        i = queue.popleft()
                        running[pool.submit(run_job, jobs[i], configs, cache, options)] = i
                if not running:  # cannot happen (``nxt`` is queued, suspect or done)
                    raise AssertionError(f"OCR scheduler stalled at job {nxt}")
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    i = running.pop(fut)
                    try:
                        done[i] = fut.result()
                    except BrokenProcessPool:
                        broken.append(i)
                    except Exception as e:  # noqa: BLE001 - e.g. an unpicklable result
                        done[i] = OcrOutcome(jobs[i], error=f"OCR worker failed ({e!r})")
                while nxt in done:
                    yield done.pop(nxt)
                    nxt += 1
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        broken += running.values()
        for i in sorted(broken):
            if i == alone:
                done[i] = OcrOutcome(jobs[i], error=WORKER_DIED)
            else:
                suspects.append(i)
        while nxt in done:
            yield done.pop(nxt)
            nxt += 1


def ocr_batch(jobs: Sequence[OcrJob], configs: Sequence[OcrConfig], workers: int | None = None,
              cache_dir: str | Path | None = "default", progress: bool = True,
              desc: str = "OCR", omp_threads: int = 1,
              options: ReadOptions | None = None) -> list[OcrOutcome]:
    """``iter_ocr`` collected into a list (in job order), with a progress bar.

    ``omp_threads`` is tesseract's OpenMP thread cap per process (kept at 1 but for benchmarks).
    """
    if not configs:
        raise ValueError("ocr_batch needs at least one OcrConfig")
    with tqdm(total=len(jobs), desc=desc, unit="page", disable=not progress) as bar:
        out = []
        for outcome in iter_ocr(jobs, configs, workers, cache_dir, options, omp_threads):
            out.append(outcome)
            bar.update()
    return out
