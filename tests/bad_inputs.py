"""A hostile corpus, generated into a folder by the tests: what real document streams hold.

``write_scans(folder)`` writes images and PDFs (good pages beside zero-byte, truncated, fake,
decompression-bomb, huge, blank, rotated, CMYK, animated, encrypted and broken files, names
that are not UTF-8 or very long, stems shared by several files); ``write_sroie`` a SROIE
folder with bad box and key files; ``write_jsonl`` a JSONL file with a bad line;
``write_labelstudio_other`` a Label Studio export of another template. Each returns the
``Expect`` of every file: read (with its document ids) or one failure (with a phrase its reason
must hold), which is what ``tests/test_bad_input.py`` checks through the commands.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
LINES = ["ACME TRADING SDN BHD", "NO 12 JALAN MERAH", "DATE 12/03/2018", "ITEM PENCIL 2.00",
         "ITEM PAPER 40.50", "TOTAL 42.50"]
HUGE = (8944, 6708)  # 60.0 megapixels
BOMB = 100_000  # the bomb's header claims BOMB x BOMB pixels


@dataclass(frozen=True)
class Expect:
    """What one corpus file must get: documents (``ids``) or one failure (``reason`` phrase)."""

    name: str  # the file, as failure records print it (relative to the corpus folder)
    what: str  # what the file is, for the report's table
    ids: tuple[str, ...] = ()
    reason: str | None = None

    @property
    def fails(self) -> bool:
        return self.reason is not None


def text_page(lines: list[str] = LINES, size: tuple[int, int] = (720, 330),
              font_size: int = 30) -> Image.Image:
    """A white grayscale page with ``lines`` of black text."""
    font = ImageFont.truetype(FONT, font_size)
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((20, 15 + i * int(font_size * 1.7)), line, fill=0, font=font)
    return img


def _encoded(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` 1-bit pixels, with almost no pixel data
    (``png_header(BOMB, BOMB)``: 1.25 GB once decoded, ~100 bytes on disk)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + chunk(b"IEND", b""))


def pdf_bytes(pages: list[list[str]], user_pw: str | None = None) -> bytes:
    """A PDF with one page per entry (its lines of text), encrypted when ``user_pw`` is set."""
    from extractor.ocr import import_pymupdf

    pymupdf = import_pymupdf()
    pdf = pymupdf.open()
    for lines in pages:
        page = pdf.new_page(width=360, height=200)
        for i, line in enumerate(lines):
            page.insert_text((20, 40 + 30 * i), line, fontsize=18, fontname="cour")
    if user_pw is None:
        data = pdf.tobytes()
    else:
        data = pdf.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=user_pw,
                           owner_pw=user_pw + "-owner")
    pdf.close()
    return data


def write_scans(folder: Path) -> list[Expect]:
    """The image / PDF corpus under ``folder``; every file's expected outcome."""
    folder.mkdir(parents=True, exist_ok=True)
    page = text_page()
    png = _encoded(page, "PNG")
    jpg = _encoded(page.convert("RGB"), "JPEG", quality=90)
    files: dict[str, bytes] = {
        "good.png": png,
        "sub/good.png": _encoded(text_page(LINES[::-1]), "PNG"),
        "scan.jpg": jpg,
        "scan.png": _encoded(text_page(LINES[:3]), "PNG"),
        "scan.pdf": pdf_bytes([LINES[:3]]),
        "empty.jpg": b"",
        "empty.pdf": b"",
        "truncated.jpg": jpg[: len(jpg) // 2],
        "truncated.png": png[: len(png) // 2],
        "text.jpg": b"Dear customer,\nthis is a letter, not a photograph.\n",
        "bomb.png": png_header(BOMB, BOMB),
        "blank.png": _encoded(Image.new("L", (720, 330), 255), "PNG"),
        "rotated.png": _encoded(page.rotate(90, expand=True), "PNG"),
        "cmyk.jpg": _encoded(page.convert("CMYK"), "JPEG", quality=90),
        "multipage.pdf": pdf_bytes([LINES[:2], LINES[2:4], LINES[4:]]),
        "encrypted.pdf": pdf_bytes([LINES[:2]], user_pw="secret"),
        "broken.pdf": b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage, no xref, no trailer\n",
        "long-" + "x" * 230 + ".png": png,
    }
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    frames = [text_page(LINES[:3]), text_page(LINES[3:])]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:],
                   duration=500, loop=0)
    huge = Image.new("L", HUGE, 255)
    ImageDraw.Draw(huge).text((200, 200), "TOTAL 42.50", fill=0,
                              font=ImageFont.truetype(FONT, 160))
    huge.save(folder / "huge.jpg", quality=80)
    # Linux file names are bytes: this one is Latin-1, not UTF-8.
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.png"), "wb") as fh:
        fh.write(png)
    long_name = "long-" + "x" * 230 + ".png"
    return [
        Expect("good.png", "good receipt page", ("good.png",)),
        Expect("sub/good.png", "same stem, other folder", ("sub/good.png",)),
        Expect("scan.jpg", "stem shared with scan.png and scan.pdf", ("scan.jpg",)),
        Expect("scan.png", "stem shared with scan.jpg and scan.pdf", ("scan.png",)),
        Expect("scan.pdf", "stem shared, one-page PDF", ("scan-p1",)),
        Expect("empty.jpg", "zero bytes, .jpg", reason="cannot read image"),
        Expect("empty.pdf", "zero bytes, .pdf", reason="cannot open PDF"),
        Expect("truncated.jpg", "JPEG cut in half", reason="truncated"),
        Expect("truncated.png", "PNG cut in half", reason="cannot read image"),
        Expect("text.jpg", "a text file named .jpg", reason="cannot read image"),
        Expect("bomb.png", f"PNG header claiming {BOMB:,} x {BOMB:,} pixels",
               reason=f"{BOMB:,} x {BOMB:,} pixels"),
        Expect("huge.jpg", "60-megapixel page", ("huge",)),
        Expect("blank.png", "blank page", reason="empty page"),
        Expect("rotated.png", "page rotated 90 degrees", ("rotated",)),
        Expect("cmyk.jpg", "CMYK JPEG", ("cmyk",)),
        Expect("animated.gif", "animated GIF (2 frames)", ("animated",)),
        Expect("multipage.pdf", "3-page PDF", ("multipage-p1", "multipage-p2", "multipage-p3")),
        Expect("encrypted.pdf", "password-protected PDF", reason="encrypted"),
        Expect("broken.pdf", "PDF header, no objects", reason="no pages"),
        Expect("caf\\xe9.png", "file name not UTF-8 (Latin-1 byte)", ("caf\\xe9",)),
        Expect(long_name, f"file name of {len(long_name)} characters", (long_name[:-4],)),
    ]


# -- SROIE, JSONL, Label Studio --------------------------------------------------------------

GOLD = {"company": "ACME TRADING SDN BHD", "date": "12/03/2018", "address": "NO 12 JALAN MERAH",
        "total": "42.50"}


def box_rows(lines: list[str] = LINES) -> str:
    """SROIE box rows (quad, transcript) for ``text_page(lines)``."""
    rows = []
    for i, line in enumerate(lines):
        y0, y1 = 15 + i * 51, 15 + i * 51 + 30
        x1 = 20 + 18 * len(line)
        rows.append(f"20,{y0},{x1},{y0},{x1},{y1},20,{y1},{line}")
    return "\n".join(rows) + "\n"


def write_sroie(root: Path) -> list[Expect]:
    """A SROIE folder: good receipts, and one broken in each way a real folder is."""
    for sub in ("img", "box", "key"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in ("001", "002", "003", "004", "005", "006"):
        text_page().save(root / "img" / f"{i}.png")
        (root / "box" / f"{i}.csv").write_text(box_rows(), encoding="utf-8")
        (root / "key" / f"{i}.json").write_text(json.dumps(GOLD), encoding="utf-8")
    rows = box_rows().splitlines()
    rows[1] = "20,66,oops,66,380,96,20,96,NO 12 JALAN MERAH"  # a non-numeric coordinate
    rows[3] = "20,168,380"  # too few fields
    (root / "box" / "002.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "key" / "003.json").write_text(json.dumps({**GOLD, "totl": "42.50"}),
                                           encoding="utf-8")
    (root / "key" / "004.json").write_text(json.dumps({k: v for k, v in GOLD.items()
                                                       if k != "address"}), encoding="utf-8")
    (root / "img" / "005.png").write_bytes(png_header(BOMB, BOMB))
    (root / "box" / "006.csv").write_bytes(b"")
    return [
        Expect("img/001.png", "good receipt", ("001",)),
        Expect("box/002.csv", "box file with 2 bad rows", reason="2 malformed row(s)"),
        Expect("key/003.json", "key file with an unknown field", reason="'totl'"),
        Expect("key/004.json", "key file without 'address' (absent)", ("004",)),
        Expect("img/005.png", "decompression-bomb image", reason=f"{BOMB:,} x {BOMB:,}"),
        Expect("box/006.csv", "zero-byte box file", reason="no text lines"),
    ]


def write_jsonl(path: Path) -> list[Expect]:
    """kvloop JSONL: two documents, a torn line between them, and an object that is not one."""
    from extractor.document import Document, Word

    def doc(doc_id: str) -> str:
        words = [Word(t, (20 + 60 * k, 10, 70 + 60 * k, 30), 0.9, 0)
                 for k, t in enumerate(["TOTAL", "42.50"])]
        return json.dumps(Document(doc_id, words, 400, 100).export())

    path.write_text(f"{doc('a')}\n{doc('b')[:40]}\n{doc('c')}\n{json.dumps({'id': 'x'})}\n",
                    encoding="utf-8")
    return [Expect(f"{path.name}:1", "good document line", ("a",)),
            Expect(f"{path.name}:2", "a line cut short", reason="not valid JSON"),
            Expect(f"{path.name}:3", "good document line", ("c",)),
            Expect(f"{path.name}:4", "an object that is no document",
                   reason="missing required key")]


def write_labelstudio_other(path: Path) -> list[Expect]:
    """A Label Studio export of the image-classification template, not the OCR one."""
    tasks = [{"id": n, "data": {"image": f"/data/upload/{n}.jpg"},
              "annotations": [{"id": 10 + n, "result": [
                  {"id": f"r{n}", "type": "choices", "from_name": "choice", "to_name": "image",
                   "value": {"choices": ["Receipt" if n % 2 else "Invoice"]}}]}]}
             for n in range(1, 4)]
    path.write_text(json.dumps(tasks), encoding="utf-8")
    return [Expect(path.name, "Label Studio export, image-classification template",
                   reason="not a Label Studio export of the OCR template")]
