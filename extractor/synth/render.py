"""Draw a ``Receipt`` as a scanned-looking grayscale image with PIL.

Layout is randomised per receipt (font, size, width, centred or left header, line spacing,
one-line or two-line item rows, total label wording), then the page is degraded like a
phone/scanner capture: paper tone, blur, a small rotation, sensor noise, JPEG artefacts.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from extractor.synth.content import Receipt

FONT_ROOT = Path("/usr/share/fonts")
# Receipt printers are mostly monospaced; a few shops print proportional fonts.
FONT_NAMES = ["DejaVuSansMono.ttf", "LiberationMono-Regular.ttf", "DejaVuSansMono-Bold.ttf",
              "DejaVuSans.ttf", "LiberationSans-Regular.ttf", "DejaVuSansCondensed.ttf",
              "LiberationSansNarrow-Regular.ttf"]
BOLD_OF = {"DejaVuSansMono.ttf": "DejaVuSansMono-Bold.ttf",
           "LiberationMono-Regular.ttf": "LiberationMono-Bold.ttf",
           "DejaVuSans.ttf": "DejaVuSans-Bold.ttf",
           "LiberationSans-Regular.ttf": "LiberationSans-Bold.ttf",
           "DejaVuSansCondensed.ttf": "DejaVuSansCondensed-Bold.ttf",
           "LiberationSansNarrow-Regular.ttf": "LiberationSansNarrow-Bold.ttf"}


@lru_cache(maxsize=1)
def available_fonts() -> dict[str, Path]:
    """Font file name -> path for the fonts we know, found under /usr/share/fonts."""
    found = {p.name: p for p in FONT_ROOT.rglob("*.ttf")} if FONT_ROOT.is_dir() else {}
    fonts = {n: found[n] for n in FONT_NAMES + list(BOLD_OF.values()) if n in found}
    if not any(n in fonts for n in FONT_NAMES):
        raise RuntimeError(
            f"no receipt fonts found under {FONT_ROOT}: install the Debian packages "
            "fonts-dejavu-core and fonts-liberation (apt-get install fonts-dejavu-core "
            "fonts-liberation)")
    return fonts


@lru_cache(maxsize=64)
def load_font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(available_fonts()[name]), size)


@dataclass
class Style:
    font: str
    bold: str
    size: int
    width: int
    margin: int
    spacing: float
    centred_header: bool
    two_line_items: bool
    total_label: str
    separator: str


def pick_style(rng: random.Random) -> Style:
    fonts = available_fonts()
    names = [n for n in FONT_NAMES if n in fonts]
    font = rng.choice(names)
    bold = BOLD_OF.get(font, font)
    return Style(
        font=font, bold=bold if bold in fonts else font, size=rng.randint(17, 23),
        width=rng.randint(420, 600), margin=rng.randint(14, 40),
        spacing=rng.uniform(1.15, 1.6), centred_header=rng.random() < 0.65,
        two_line_items=rng.random() < 0.35,
        total_label=rng.choice(["TOTAL", "TOTAL", "TOTAL (RM)", "TOTAL RM", "GRAND TOTAL",
                                "TOTAL AMOUNT", "NETT TOTAL", "TOTAL INCL. GST"]),
        separator=rng.choice(["-", "=", "*", " "]),
    )


class Canvas:
    """A tall white page we draw rows on top-down, cropped to the content at the end."""

    def __init__(self, style: Style) -> None:
        self.s = style
        self.img = Image.new("L", (style.width, 4000), 255)
        self.draw = ImageDraw.Draw(self.img)
        self.font = load_font(style.font, style.size)
        self.bold = load_font(style.bold, style.size)
        self.y = style.margin
        self.line_h = int(style.size * style.spacing)

    @property
    def inner(self) -> int:
        return self.s.width - 2 * self.s.margin

    def width_of(self, text: str, bold: bool = False) -> float:
        return self.draw.textlength(text, font=self.bold if bold else self.font)

    def wrap(self, text: str, bold: bool = False) -> list[str]:
        """Break at spaces so each piece fits; joining the pieces with spaces gives ``text``."""
        lines: list[str] = []
        cur = ""
        for word in text.split(" "):
            trial = f"{cur} {word}" if cur else word
            if cur and self.width_of(trial, bold) > self.inner:
                lines.append(cur)
                cur = word
            else:
                cur = trial
        return lines + [cur] if cur else lines

    def text(self, text: str, align: str = "left", bold: bool = False) -> None:
        for piece in self.wrap(text, bold):
            w = self.width_of(piece, bold)
            x = {"left": self.s.margin, "centre": self.s.margin + (self.inner - w) / 2,
                 "right": self.s.width - self.s.margin - w}[align]
            self.draw.text((x, self.y), piece, fill=0, font=self.bold if bold else self.font)
            self.y += self.line_h

    def columns(self, cells: list[tuple[str, float, str]], bold: bool = False) -> None:
        """One row of cells ``(text, x as a fraction of the inner width, left|right)``."""
        font = self.bold if bold else self.font
        for text, frac, align in cells:
            x = self.s.margin + frac * self.inner
            if align == "right":
                x -= self.width_of(text, bold)
            self.draw.text((x, self.y), text, fill=0, font=font)
        self.y += self.line_h

    def gap(self, lines: float = 0.5) -> None:
        self.y += int(self.line_h * lines)

    def rule(self) -> None:
        if self.s.separator == " ":
            self.gap()
            return
        n = max(1, int(self.inner / max(1.0, self.width_of(self.s.separator))))
        self.text(self.s.separator * n)

    def page(self) -> Image.Image:
        return self.img.crop((0, 0, self.s.width, self.y + self.s.margin))


def fit(canvas: Canvas, text: str, max_frac: float) -> str:
    """Truncate an item description so it does not run into the next column."""
    while text and canvas.width_of(text) > max_frac * canvas.inner:
        text = text[:-1]
    return text.rstrip()


def draw_receipt(r: Receipt, style: Style, rng: random.Random) -> Image.Image:
    """The clean (undegraded) receipt page."""
    c = Canvas(style)
    head = "centre" if style.centred_header else "left"
    c.text(r.company, head, bold=rng.random() < 0.6)
    if r.reg_no:
        c.text(f"CO. REG: {r.reg_no}" if rng.random() < 0.5 else r.reg_no, head)
    for line in r.address_lines:
        c.text(line, head)
    c.text(r.phone, head)
    if rng.random() < 0.5:
        c.text(f"GST ID: 00{rng.randint(1000000000, 9999999999)}", head)
    c.gap()
    c.text(rng.choice(["TAX INVOICE", "RECEIPT", "CASH SALES", "SIMPLIFIED TAX INVOICE"]), "centre",
           bold=True)
    c.rule()
    if rng.random() < 0.5:
        c.text(f"DATE: {r.date_str} {r.time_str}")
        c.text(f"INVOICE NO: {r.invoice}")
    else:
        c.text(f"{r.invoice}")
        c.columns([(f"Date: {r.date_str}", 0.0, "left"), (f"Time: {r.time_str}", 1.0, "right")])
    c.text(f"CASHIER: {r.cashier}")
    c.rule()
    if style.two_line_items:
        for it in r.items:
            c.text(fit(c, it.desc, 1.0))
            c.columns([(f"{it.qty} x {r.money(it.price)}", 0.05, "left"),
                       (r.money(it.amount), 1.0, "right")])
    else:
        c.columns([("ITEM", 0.0, "left"), ("QTY", 0.6, "right"), ("PRICE", 0.8, "right"),
                   ("AMT", 1.0, "right")])
        for it in r.items:
            c.columns([(fit(c, it.desc, 0.5), 0.0, "left"), (str(it.qty), 0.6, "right"),
                       (r.money(it.price), 0.8, "right"), (r.money(it.amount), 1.0, "right")])
    c.rule()
    c.columns([("SUB TOTAL" if rng.random() < 0.5 else "SUBTOTAL", 0.0, "left"),
               (r.money(r.subtotal), 1.0, "right")])
    if r.tax_label:
        c.columns([(r.tax_label, 0.0, "left"), (r.money(r.tax), 1.0, "right")])
    if r.rounding or rng.random() < 0.3:
        c.columns([("ROUNDING ADJ", 0.0, "left"), (f"{r.rounding:.2f}", 1.0, "right")])
    rm = rng.random() < 0.4 and "RM" not in style.total_label
    c.columns([(style.total_label, 0.0, "left")]
              + ([("RM", 0.7, "left")] if rm else []) + [(r.money(r.total), 1.0, "right")],
              bold=rng.random() < 0.6)
    c.columns([("CASH", 0.0, "left"), (r.money(r.cash), 1.0, "right")])
    c.columns([("CHANGE", 0.0, "left"), (r.money(r.change), 1.0, "right")])
    c.rule()
    c.text(r.footer, "centre")
    return c.page()


def degrade(img: Image.Image, rng: random.Random) -> Image.Image:
    """Paper tone, ink fade, blur, rotation, noise and JPEG artefacts, all seeded by ``rng``."""
    nrng = np.random.default_rng(rng.randrange(2**32))
    paper, ink = rng.randint(215, 250), rng.randint(0, 70)
    a = np.asarray(img, dtype=np.float32) / 255.0
    out = Image.fromarray((ink + a * (paper - ink)).astype(np.uint8), mode="L")
    out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 0.9)))
    angle = rng.uniform(-2.0, 2.0) if rng.random() < 0.7 else 0.0
    if angle:
        out = out.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=paper)
    noisy = np.asarray(out, dtype=np.float32) + nrng.normal(0, rng.uniform(2, 12), out.size[::-1])
    out = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), mode="L")
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=rng.randint(35, 90))
    return Image.open(io.BytesIO(buf.getvalue())).convert("L")


TEMPLATES = ("receipt", "invoice")


def render_receipt(r: Receipt, rng: random.Random, template: str = "receipt") -> Image.Image:
    """A receipt (till roll) or invoice (ruled form) page as a degraded grayscale image."""
    if template == "invoice":
        from extractor.synth.invoice import draw_invoice

        return degrade(draw_invoice(r, rng), rng)
    if template != "receipt":
        raise ValueError(f"unknown synthetic template {template!r}; known: {TEMPLATES}")
    return degrade(draw_receipt(r, pick_style(rng), rng), rng)
