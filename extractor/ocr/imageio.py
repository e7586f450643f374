"""Image guards and decoding: a page is checked from its header before any pixel is decoded.

An image whose header claims more than ``MAX_PIXELS`` is refused (a decompression bomb); bigger
pages than ``OCR_MAX_PIXELS`` are decoded reduced by an integer factor.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

ImageInput = Image.Image | str | Path
ImageFile = str | Path | IO[bytes]  # a path, or an open binary file (an upload's io.BytesIO)

# A 600 dpi A3 scan is 70 megapixels; PIL itself warns at 89 M and refuses at 179 M.
MAX_PIXELS = 80_000_000
# Pages above this are read reduced (SROIE's biggest, 4961 x 7016, stay as they are).
OCR_MAX_PIXELS = 40_000_000


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
