"""OCR into ``Word`` lists, one module per concern.

- ``config``: how a page is read (``OcrConfig`` passes, ``ReadOptions``, page deadline);
- ``imageio``: image guards (pixel limits from the header) and decoding;
- ``preprocessing``: grayscale, upscaling, deskew, binarisation before tesseract;
- ``tesseract``: the engine, one pass over one image;
- ``rapid``: PP-OCRv6 through rapidocr (the models bundled in its wheel), the second engine;
- ``engines``: the engine interface, the pass specs (``passes_by_name``) and the default;
- ``cache``: words on disk by image hash, config and engine version;
- ``orientation``: sideways and upside-down pages turned upright;
- ``pdf``: PDF pages rendered for OCR;
- ``textlayer``: a PDF page's own words, and the rule for when they replace OCR;
- ``page``: one job (an image file or a PDF page) read under every pass, failures as outcomes;
- ``pool``: the batch runner over a process pool that survives a dead worker.

The names below are the package's public interface; import them from ``extractor.ocr``.
"""

from __future__ import annotations

from extractor.ocr.cache import (
    CACHE_VERSION,
    OcrCache,
    cached_ocr,
    default_cache_dir,
    image_digest,
)
from extractor.ocr.config import (
    ALL_VARIANTS,
    DEFAULT_VARIANTS,
    EXTRA_VARIANTS,
    PAGE_TIMEOUT,
    Binarize,
    Deadline,
    OcrConfig,
    PageTimeout,
    ReadOptions,
    variants_by_name,
)
from extractor.ocr.engines import (
    DEFAULT_ENGINES,
    ENGINES,
    ENGINES_ENV,
    OcrPass,
    default_engines,
    engine_label,
    passes_by_name,
)
from extractor.ocr.imageio import (
    FIRST_FRAME_FORMATS,
    MAX_PIXELS,
    OCR_MAX_PIXELS,
    ImageFile,
    ImageFrames,
    ImageInput,
    TooManyPixels,
    image_frames,
    image_size,
    megapixels,
    open_image,
    reduction_factor,
    sniff_format,
    to_8bit,
)
from extractor.ocr.orientation import (
    ORIENT_CONFIG,
    ORIENT_PIXELS,
    ORIENT_TRIGGER,
    ROTATIONS,
    cached_rotation,
    confident_words,
    detect_rotation,
    needs_orientation_check,
    rotate_upright,
)
from extractor.ocr.page import (
    TEXT_LAYER_PASS,
    OcrJob,
    OcrOutcome,
    document_from_words,
    load_job_image,
    ocr_document,
    ocr_variants,
    read_page,
    run_job,
)
from extractor.ocr.pdf import (
    PDF_SUFFIXES,
    import_pymupdf,
    pdf_render_dpi,
    render_pdf_page,
)
from extractor.ocr.pool import (
    WORKER_DIED,
    iter_ocr,
    ocr_batch,
)
from extractor.ocr.preprocessing import (
    PREPROCESS_MAX_PIXELS,
    Preprocessed,
    binarize,
    estimate_skew,
    otsu_threshold,
    preprocess,
    upscale_for,
)
from extractor.ocr.rapid import RapidConfig, rapidocr_version
from extractor.ocr.tesseract import (
    ocr_image,
    single_thread_env,
    tesseract_version,
)
from extractor.ocr.textlayer import TextLayer, read_text_layer, readable_share

__all__ = [
    "ALL_VARIANTS",
    "CACHE_VERSION",
    "DEFAULT_ENGINES",
    "DEFAULT_VARIANTS",
    "ENGINES",
    "ENGINES_ENV",
    "EXTRA_VARIANTS",
    "FIRST_FRAME_FORMATS",
    "MAX_PIXELS",
    "OCR_MAX_PIXELS",
    "ORIENT_CONFIG",
    "ORIENT_PIXELS",
    "ORIENT_TRIGGER",
    "PAGE_TIMEOUT",
    "PDF_SUFFIXES",
    "PREPROCESS_MAX_PIXELS",
    "ROTATIONS",
    "TEXT_LAYER_PASS",
    "WORKER_DIED",
    "Binarize",
    "Deadline",
    "ImageFile",
    "ImageFrames",
    "ImageInput",
    "OcrCache",
    "OcrConfig",
    "OcrJob",
    "OcrOutcome",
    "OcrPass",
    "PageTimeout",
    "Preprocessed",
    "RapidConfig",
    "ReadOptions",
    "TextLayer",
    "TooManyPixels",
    "binarize",
    "cached_ocr",
    "cached_rotation",
    "confident_words",
    "default_cache_dir",
    "default_engines",
    "detect_rotation",
    "document_from_words",
    "engine_label",
    "estimate_skew",
    "image_digest",
    "image_frames",
    "image_size",
    "import_pymupdf",
    "iter_ocr",
    "load_job_image",
    "megapixels",
    "needs_orientation_check",
    "ocr_batch",
    "ocr_document",
    "ocr_image",
    "ocr_variants",
    "open_image",
    "otsu_threshold",
    "passes_by_name",
    "pdf_render_dpi",
    "preprocess",
    "rapidocr_version",
    "read_page",
    "read_text_layer",
    "readable_share",
    "reduction_factor",
    "render_pdf_page",
    "rotate_upright",
    "run_job",
    "single_thread_env",
    "sniff_format",
    "tesseract_version",
    "to_8bit",
    "upscale_for",
    "variants_by_name",
]
