"""What is done to a page before tesseract reads it: grayscale, upscaling, deskew, binarisation.

Boxes are mapped back to the coordinates of the image as given (``Preprocessed.to_original``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from extractor.ocr.config import Binarize, OcrConfig
from extractor.ocr.imageio import OCR_MAX_PIXELS

# Upscaling variants stop growing here (a 40 MP page at x2), which bounds tesseract's memory.
PREPROCESS_MAX_PIXELS = 4 * OCR_MAX_PIXELS


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
