"""Image guards and decoding: a page is checked from its header before any pixel is decoded,
then normalised into the 8-bit form the OCR engines read.

An image whose header claims more than ``MAX_PIXELS`` is refused (a decompression bomb); bigger
pages than ``OCR_MAX_PIXELS`` are decoded reduced by an integer factor. Every pixel format PIL
opens becomes 8-bit grayscale or RGB (``to_8bit``): 16-bit and 32-bit grayscale stretched over
their real value range, 1-bit (fax) and palette expanded, alpha flattened on white, CMYK
converted. Every frame of a multi-frame still image (a scanner's or fax server's TIFF) is a
page of its own (``image_frames``); an animation (GIF, WebP, APNG) is read at its first frame.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageInput = Image.Image | str | Path
ImageFile = str | Path | IO[bytes]  # a path, or an open binary file (an upload's io.BytesIO)

# A 600 dpi A3 scan is 70 megapixels; PIL itself warns at 89 M and refuses at 179 M.
MAX_PIXELS = 80_000_000
# Pages above this are read reduced (SROIE's biggest, 4961 x 7016, stay as they are).
OCR_MAX_PIXELS = 40_000_000
# Multi-frame formats whose frames are an animation (or a camera's previews), not pages.
FIRST_FRAME_FORMATS = {"GIF": "animated GIF", "WEBP": "animated WebP", "PNG": "animated PNG",
                       "FLI": "FLI animation", "MPO": "multi-picture JPEG"}


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
        raise ValueError(f"{label}: {_unidentified_reason(image)}") from None
    except (OSError, SyntaxError, ValueError) as e:  # unreadable file, malformed header
        raise ValueError(f"{label}: cannot read image ({e.__class__.__name__}: {e})") from None
    if size[0] * size[1] > max_pixels:
        raise TooManyPixels(label, _too_many_pixels(size, max_pixels))
    return size


def reduction_factor(size: tuple[int, int], max_pixels: int = OCR_MAX_PIXELS) -> int:
    """The smallest integer ``f`` such that the page divided by ``f`` fits ``max_pixels``."""
    return max(1, math.ceil(math.sqrt(size[0] * size[1] / max_pixels)))


def open_image(image: ImageInput, max_pixels: int = MAX_PIXELS,
               reduce_to: int = OCR_MAX_PIXELS, frame: int = 0) -> Image.Image:
    """Frame ``frame`` (0-based) of an image, loaded as 8-bit grayscale or RGB (``to_8bit``),
    EXIF orientation applied, checked before decoding.

    A file that is not an image, is truncated, or whose header (or frame) claims more than
    ``max_pixels`` raises ``ValueError`` naming it; a page over ``reduce_to`` is decoded reduced
    by an integer factor (JPEGs at DCT scale, so the full size is never held in memory).
    """
    if isinstance(image, Image.Image):
        return to_8bit(image)
    label = _file_label(image)
    image_size(image, max_pixels)
    fmt = "image"
    try:
        with Image.open(image) as im:
            fmt = im.format or fmt
            if frame:
                im.seek(frame)
                if im.width * im.height > max_pixels:
                    raise TooManyPixels(label, _too_many_pixels(im.size, max_pixels))
            factor = reduction_factor(im.size, reduce_to)
            if factor > 1:
                im.draft(im.mode, (im.width // factor, im.height // factor))
            im.load()
            out = to_8bit(ImageOps.exif_transpose(im) or im)
            rest = reduction_factor(out.size, reduce_to)
            return out.reduce(rest) if rest > 1 else out
    except TooManyPixels:
        raise
    except UnidentifiedImageError as e:
        raise ValueError(f"{label}: {_unidentified_reason(image)}") from e
    except EOFError as e:  # seek past the last frame
        if frame:
            raise ValueError(f"{label}: cannot read image ({fmt} has no frame {frame + 1})") from e
        raise ValueError(f"{label}: cannot read image ({fmt} data truncated)") from e
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data, unknown codec
        raise ValueError(f"{label}: cannot read image ({fmt}: {e.__class__.__name__}: {e})"
                         ) from e


def to_8bit(img: Image.Image) -> Image.Image:
    """``img`` as 8-bit grayscale ("L") or RGB, the forms the OCR engines read.

    16-bit and 32-bit grayscale (integer or float) are stretched from their darkest to their
    lightest value, not clipped: a 16-bit scan's paper at 60000 would otherwise clip to white
    with its ink. Alpha is flattened on white (transparent means paper, whatever colour the
    transparent pixels hold); 1-bit, palette, CMYK and other colour spaces are converted.
    """
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _stretch(img)
    if mode == "1":
        return img.convert("L")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("PA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        flat = Image.alpha_composite(white, img).convert("RGB")
        return flat.convert("L") if mode in ("LA", "La") else flat
    return img.convert("RGB")


def _stretch(img: Image.Image) -> Image.Image:
    """A one-channel image of any depth as 8-bit, its value range mapped onto 0-255."""
    a = np.asarray(img).astype(np.float32)
    finite = np.isfinite(a)
    if not finite.any():
        return Image.new("L", img.size, 255)
    lo, hi = float(a[finite].min()), float(a[finite].max())
    if hi <= lo:  # one value everywhere: a blank page
        return Image.new("L", img.size, 255)
    out = np.where(finite, (a - lo) * (255.0 / (hi - lo)), 255.0)
    return Image.fromarray(np.rint(out).astype(np.uint8), mode="L")


@dataclass(frozen=True)
class ImageFrames:
    """How many pages an image file holds: ``pages`` 0 for a single page (read as page 0, as
    any image), ``n`` > 1 when each of its ``n`` frames is a page; ``note`` says when frames are
    left unread (an animation: its first frame is the page)."""

    pages: int = 0
    note: str | None = None


def image_frames(image: ImageFile) -> ImageFrames:
    """The pages of an image file, from its header (and frame index); a file PIL cannot open
    is one page here, and its read says why it fails."""
    try:
        with Image.open(image) as im:
            fmt = im.format or ""
            if fmt in FIRST_FRAME_FORMATS:
                if not getattr(im, "is_animated", False):
                    return ImageFrames()
                n = int(getattr(im, "n_frames", 1))
                return ImageFrames(0, f"{FIRST_FRAME_FORMATS[fmt]} of {n} frames: only the "
                                      "first frame is read")
            n = int(getattr(im, "n_frames", 1))
    except Exception:  # noqa: BLE001 - bombs, truncation, non-images: the page read names it
        return ImageFrames()
    return ImageFrames(n if n > 1 else 0)


# Formats scanners, phones and office software write that kvloop cannot decode, told by their
# first bytes, so that a refusal names the format instead of saying "not an image".
_MAGIC: list[tuple[int, bytes, str]] = [
    (0, b"AT&TFORM", "DjVu"),
    (0, b"\x97JB2\r\n\x1a\n", "JBIG2"),
    (0, b"%PDF-", "PDF (give the file a .pdf name)"),
    (0, b"%!PS", "PostScript"),
    (0, b"\xc5\xd0\xd3\xc6", "PostScript (EPS)"),
    (0, b"PK\x03\x04", "a ZIP archive (an Office document?)"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an OLE2 file (a legacy Office document?)"),
    (0, b"\xff\x0a", "JPEG XL"),
    (4, b"JXL ", "JPEG XL"),
]
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}


def sniff_format(head: bytes) -> str | None:
    """The name of a format PIL does not decode, from a file's first bytes, or ``None``."""
    for offset, magic, name in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return name
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "HEIC/HEIF (a phone camera's format)"
        if brand in (b"avif", b"avis"):
            return "AVIF"
    text = head[:512].lstrip().lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "SVG (vector graphics)"
    return None


def _unidentified_reason(image: ImageFile) -> str:
    """Why PIL could not open a file: the format when it is one we know by name."""
    fmt = sniff_format(_file_head(image, 512))
    if fmt is not None:
        return (f"cannot read image: the file is {fmt}, a format kvloop cannot decode; "
                "convert it to PNG, TIFF or JPEG")
    return "cannot read image (not an image file, or a format kvloop cannot decode)"
