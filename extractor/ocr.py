"""Tesseract OCR into ``Word`` lists: preprocessing variants, an on-disk cache, a parallel runner.

One ``OcrConfig`` is one way of reading a page (page segmentation mode, grayscale, Otsu or
adaptive binarisation, deskew, upscaling). Several configs over the same page read different
words; the extractor merges them, which is why ``DEFAULT_VARIANTS`` holds a handful.

Boxes are always in the coordinates of the image as given (before upscaling or deskewing).
Tesseract runs single-threaded (``OMP_THREAD_LIMIT=1``): on a 2-core machine two single-threaded
processes are several times faster than one using OpenMP.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import multiprocessing as mp
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import pytesseract
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from extractor.document import Document, Word
from extractor.word_repair import repair_words

ImageInput = Image.Image | str | Path
Binarize = Literal["none", "otsu", "adaptive"]
CACHE_VERSION = "1"  # bump when the Word extraction below changes what a cache entry means


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

def open_image(image: ImageInput) -> Image.Image:
    """A loaded PIL image; a file that is not an image raises ``ValueError`` naming it."""
    if isinstance(image, Image.Image):
        return image
    try:
        with Image.open(image) as im:
            im.load()
            return ImageOps.exif_transpose(im) or im
    except (UnidentifiedImageError, OSError) as e:
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


def preprocess(img: Image.Image, config: OcrConfig) -> Preprocessed:
    """Apply a config's grayscale / upscale / deskew / binarise steps, in that order."""
    out = img.convert("L") if config.grayscale or config.binarize != "none" else img.convert("RGB")
    scale = 1.0
    if config.upscale != 1.0:
        size = (max(1, round(img.width * config.upscale)), max(1, round(img.height * config.upscale)))
        out = out.resize(size, Image.Resampling.LANCZOS)
        scale = config.upscale
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

def ocr_image(image: ImageInput, config: OcrConfig) -> list[Word]:
    """Tesseract words of one image: text, box in original pixels, confidence 0-1, line index.

    ``Word.line`` is a running index over tesseract's (block, paragraph, line) triples in
    reading order. Empty strings and words under ``config.min_confidence`` are dropped.
    """
    single_thread_env()
    img = open_image(image)
    pre = preprocess(img, config)
    data = pytesseract.image_to_data(pre.image, lang=config.lang, config=config.tesseract_args(),
                                     output_type=pytesseract.Output.DICT)
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
                        source: str | None = None, page: int = 0) -> Document:
    """Assemble a page's Document: the first config's words, the others as variants."""
    first = configs[0].name
    return Document(id=doc_id, words=by_name[first], width=size[0], height=size[1], source=source,
                    page=page, ocr=f"tesseract:{first}",
                    variants={c.name: by_name[c.name] for c in configs[1:]})


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
        p = self._path(digest, config)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")  # write-then-rename: workers never see halves
        tmp.write_text(json.dumps([w.export() for w in words]), encoding="utf-8")
        os.replace(tmp, p)


def cached_ocr(img: Image.Image, config: OcrConfig, cache: OcrCache | None,
               digest: str | None = None) -> list[Word]:
    """The page's words under ``config``, repaired (``extractor.word_repair``).

    The cache holds tesseract's raw words, so a change to the repairs needs no re-OCR.
    """
    if cache is None:
        return repair_words(ocr_image(img, config))
    digest = digest or image_digest(img)
    words = cache.get(digest, config)
    if words is None:
        words = ocr_image(img, config)
        cache.put(digest, config, words)
    return repair_words(words)


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
    """What a job produced: words per config name and the page size, or an error message."""

    job: OcrJob
    words: dict[str, list[Word]] = field(default_factory=dict)
    size: tuple[int, int] = (0, 0)
    error: str | None = None


def render_pdf_page(path: str | Path, page: int, dpi: int = 200) -> Image.Image:
    """Page ``page`` (1-based) of a PDF as a grayscale PIL image at ``dpi``."""
    import pymupdf

    try:
        with pymupdf.open(str(path)) as pdf:
            pix = pdf[page - 1].get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY, alpha=False)
            return Image.open(io.BytesIO(pix.tobytes("png"))).convert("L")
    except Exception as e:  # pymupdf raises its own and generic errors for broken files
        raise ValueError(f"{path}: cannot render PDF page {page} ({e})") from e


def load_job_image(job: OcrJob) -> Image.Image:
    if Path(job.path).suffix.lower() in PDF_SUFFIXES:
        return render_pdf_page(job.path, job.page, job.dpi)
    return open_image(job.path)


def run_job(job: OcrJob, configs: Sequence[OcrConfig], cache_dir: str | None) -> OcrOutcome:
    """Read one page with every config; any failure becomes the outcome's error, not a raise."""
    try:
        img = load_job_image(job)
        cache = OcrCache(cache_dir) if cache_dir is not None else None
        digest = image_digest(img) if cache is not None else None
        words = {c.name: cached_ocr(img, c, cache, digest) for c in configs}
        return OcrOutcome(job, words, img.size)
    except ValueError as e:
        return OcrOutcome(job, error=str(e).removeprefix(f"{job.path}: "))
    except (pytesseract.TesseractError, OSError, RuntimeError) as e:
        return OcrOutcome(job, error=f"OCR failed ({e.__class__.__name__}: {e})")


def _init_worker(omp_threads: int = 1) -> None:
    os.environ["OMP_THREAD_LIMIT"] = str(omp_threads)


def ocr_batch(jobs: Sequence[OcrJob], configs: Sequence[OcrConfig], workers: int | None = None,
              cache_dir: str | Path | None = "default", progress: bool = True,
              desc: str = "OCR", omp_threads: int = 1) -> list[OcrOutcome]:
    """Run jobs over a process pool of ``workers`` single-threaded tesseracts, in job order.

    ``cache_dir="default"`` uses ``default_cache_dir()``; ``None`` disables the cache. Per-job
    errors are returned in the outcomes, never raised, so one bad page does not stop a batch.
    ``omp_threads`` is tesseract's OpenMP thread cap per process (kept at 1 but for benchmarks).
    """
    if not configs:
        raise ValueError("ocr_batch needs at least one OcrConfig")
    cache = None if cache_dir is None else str(
        default_cache_dir() if cache_dir == "default" else Path(cache_dir))
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    bar = tqdm(total=len(jobs), desc=desc, unit="page", disable=not progress)
    results: list[OcrOutcome | None] = [None] * len(jobs)
    try:
        if workers == 1:
            saved = os.environ.get("OMP_THREAD_LIMIT")
            _init_worker(omp_threads)
            try:
                for i, job in enumerate(jobs):
                    results[i] = run_job(job, configs, cache)
                    bar.update()
            finally:  # the inline path must not leave our thread cap in the caller's env
                if saved is None:
                    os.environ.pop("OMP_THREAD_LIMIT", None)
                else:
                    os.environ["OMP_THREAD_LIMIT"] = saved
        else:
            # spawn, not fork: the parent may hold torch/streamlit threads that fork would copy.
            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                     initargs=(omp_threads,)) as pool:
                futs = {pool.submit(run_job, job, list(configs), cache): i
                        for i, job in enumerate(jobs)}
                for fut in as_completed(futs):
                    i = futs[fut]
                    try:
                        results[i] = fut.result()
                    except (RuntimeError, OSError) as e:  # a dead worker (BrokenProcessPool)
                        results[i] = OcrOutcome(jobs[i], error=f"OCR worker failed ({e!r})")
                    bar.update()
    finally:
        bar.close()
    return [r for r in results if r is not None]

