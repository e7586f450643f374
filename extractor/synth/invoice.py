"""A second synthetic template: an A5-ish tax invoice form with ruled boxes and a table.

Unlike the till receipt it has two columns at the top (seller left, invoice details right), a
"BILL TO" block whose customer address is a distractor for the seller's address, a ruled item
table, and a totals box followed by deposit / balance amounts (so the total is not last).
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw, ImageFont

from extractor.synth.content import _CITIES, _NAME_WORDS, Receipt, make_address
from extractor.synth.render import BOLD_OF, available_fonts, load_font

FORM_FONTS = ["DejaVuSans.ttf", "LiberationSans-Regular.ttf", "DejaVuSansCondensed.ttf",
              "LiberationSansNarrow-Regular.ttf"]


def make_customer(rng: random.Random) -> tuple[str, list[str]]:
    name = " ".join(rng.sample(_NAME_WORDS, 2)) + rng.choice([" SDN BHD", " ENTERPRISE", ""])
    lines = make_address(rng)
    if rng.random() < 0.5:
        postcode, city, _ = rng.choice(_CITIES)
        lines = lines[:1] + [f"{postcode} {city}"]
    return name, lines


def wrap(d: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, max_w: float
         ) -> list[str]:
    """Break at spaces to fit ``max_w``; the pieces joined with spaces give back ``text``."""
    lines: list[str] = []
    cur = ""
    for word in text.split(" "):
        trial = f"{cur} {word}" if cur else word
        if cur and d.textlength(trial, font=font) > max_w:
            lines.append(cur)
            cur = word
        else:
            cur = trial
    return [*lines, cur] if cur else lines


def draw_invoice(r: Receipt, rng: random.Random) -> Image.Image:
    """The clean invoice page (degradation is applied by the caller)."""
    fonts = available_fonts()
    name = rng.choice([f for f in FORM_FONTS if f in fonts] or list(fonts))
    bold_name = BOLD_OF.get(name, name) if BOLD_OF.get(name, name) in fonts else name
    size = rng.randint(16, 20)
    font, bold = load_font(name, size), load_font(bold_name, size)
    big = load_font(bold_name, size + 8)
    width, margin = rng.randint(760, 900), rng.randint(30, 50)
    line_h = int(size * rng.uniform(1.3, 1.6))
    img = Image.new("L", (width, 2400), 255)
    d = ImageDraw.Draw(img)
    right_x = int(width * 0.58)

    # Seller block, left column; wrapped company lines keep the gold joinable with spaces.
    y = margin
    col_w = right_x - margin - 24
    for piece in wrap(d, r.company, big, col_w):
        d.text((margin, y), piece, fill=0, font=big)
        y += int(line_h * 1.4)
    if r.reg_no:
        d.text((margin, y), f"Company No. {r.reg_no}", fill=0, font=font)
        y += line_h
    for line in r.address_lines:
        for piece in wrap(d, line, font, col_w):
            d.text((margin, y), piece, fill=0, font=font)
            y += line_h
    d.text((margin, y), r.phone, fill=0, font=font)
    left_end = y + line_h

    # Invoice details, right column, in a ruled box.
    title = rng.choice(["TAX INVOICE", "INVOICE", "CASH BILL"])
    ty = margin + int(line_h * 1.7)
    d.text((right_x, margin), title, fill=0, font=big)
    rows = [("Invoice No", r.invoice), ("Date", r.date_str),
            ("Terms", rng.choice(["CASH", "30 DAYS", "C.O.D."])), ("Salesman", r.cashier)]
    box_h = len(rows) * line_h + 12
    d.rectangle((right_x - 8, ty - 6, width - margin, ty + box_h), outline=0, width=2)
    for i, (k, v) in enumerate(rows):
        d.text((right_x, ty + i * line_h), f"{k}", fill=0, font=font)
        d.text((right_x + int((width - margin - right_x) * 0.42), ty + i * line_h),
               f": {v}", fill=0, font=font)
    y = max(left_end, ty + box_h) + line_h

    # Bill-to block: a second company and address that are NOT the gold ones.
    cust, cust_lines = make_customer(rng)
    d.text((margin, y), "BILL TO:", fill=0, font=bold)
    y += line_h
    for line in [cust, *cust_lines]:
        d.text((margin + 20, y), line, fill=0, font=font)
        y += line_h
    y += line_h // 2

    # Ruled item table.
    cols = [margin, margin + 50, int(width * 0.58), int(width * 0.68), int(width * 0.83),
            width - margin]
    heads = ["No", "Description", "Qty", "U/Price", "Amount"]
    d.rectangle((cols[0], y, cols[-1], y + line_h + 8), outline=0, width=2)
    for i, h in enumerate(heads):
        d.text((cols[i] + 6, y + 4), h, fill=0, font=bold)
    top = y
    y += line_h + 8
    for n, it in enumerate(r.items, 1):
        cells = [str(n), it.desc, str(it.qty), r.money(it.price), r.money(it.amount)]
        for i, text in enumerate(cells):
            if i >= 2:  # numbers right-aligned inside their column
                x = cols[i + 1] - 6 - d.textlength(text, font=font)
            else:
                x = cols[i] + 6
            d.text((x, y + 4), text, fill=0, font=font)
        y += line_h + 4
    d.rectangle((cols[0], top, cols[-1], y + 4), outline=0, width=2)
    for x in cols[1:-1]:
        d.line((x, top, x, y + 4), fill=0, width=1)
    y += line_h

    # Totals box; deposit and balance follow the total.
    lines = [("Sub Total", r.money(r.subtotal))]
    if r.tax_label:
        lines.append((r.tax_label, r.money(r.tax)))
    if r.rounding:
        lines.append(("Rounding", f"{r.rounding:.2f}"))
    lines.append((rng.choice(["TOTAL", "TOTAL (RM)", "GRAND TOTAL", "TOTAL PAYABLE"]),
                  r.money(r.total)))
    lines += [("Deposit Paid", r.money(r.cash)), ("Balance", r.money(r.change))]
    bx = int(width * 0.55)
    for label, value in lines:
        f = bold if "TOTAL" in label.upper() and "SUB" not in label.upper() else font
        d.text((bx, y), label, fill=0, font=f)
        d.text((width - margin - 6 - d.textlength(value, font=f), y), value, fill=0, font=f)
        y += line_h
    y += line_h
    d.text((margin, y), rng.choice([("This is a computer generated invoice. No signature "
                                    "is required."), "Goods sold are not returnable.",
                                    "Thank you for your business."]), fill=0, font=font)
    y += line_h + margin
    return img.crop((0, 0, width, y))
