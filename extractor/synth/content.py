"""What a synthetic receipt says: shop, address, date, items and amounts, plus its gold values.

Everything is drawn from a ``random.Random`` so one seed gives one receipt. Gold values are
the strings as printed, like SROIE's key files: the company line, the address lines joined
with spaces, the date as printed (without the time) and the TOTAL amount (without "RM").
The TOTAL line is followed by cash and change amounts, so "the last amount" is never right.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

_NAME_WORDS = ["MAJU", "JAYA", "INDAH", "SENTOSA", "BERKAT", "SINAR", "HARMONI", "MUTIARA",
               "CAHAYA", "SRI", "GOLDEN", "LUCKY", "NEW", "GRAND", "UNITED", "TEO HENG",
               "SOON HUAT", "KIM SENG", "AIK HUAT", "HUP LEE", "YONG FATT", "WAH", "CHOP",
               "TAN", "LIM", "KHOO", "FAMILY", "CITY", "PERMAI", "BESTARI", "MEGA"]
_TRADES = ["HARDWARE", "STATIONERY & BOOKS", "MINI MARKET", "RESTAURANT", "TRADING",
           "MACHINERY", "ELECTRICAL", "BAKERY", "PHARMACY", "AUTO PARTS", "FURNITURE",
           "GIFT & HOME DECO", "MOTOR", "FOOD COURT", "BOOKSTORE", "TEXTILE", "PETRO"]
_PREFIXES = ["", "", "", "KEDAI ", "PERNIAGAAN ", "RESTORAN ", "SYARIKAT "]
_SUFFIXES = ["SDN BHD", "SDN. BHD.", "(M) SDN BHD", "ENTERPRISE", "TRADING", "S/B", "BHD", ""]
_STREETS = ["JALAN BESAR", "JALAN DEDAP", "JALAN PUTRA", "JALAN KURAU", "JALAN SS", "JLN PERMAS",
            "JALAN SETIA INDAH", "JALAN ASTANA", "JALAN KAPAR", "JALAN ANGSA", "JALAN TUN RAZAK",
            "JALAN PBS", "JALAN BUKIT BINTANG", "PERSIARAN MEWAH"]
_AREAS = ["TAMAN JOHOR JAYA", "TAMAN SRI PUTRA", "BANDAR BARU PERMAS JAYA", "TAMAN SENTOSA",
          "KAWASAN PERINDUSTRIAN BALAKONG", "BANDAR BUKIT RAJA", "TAMAN MALURI", "SETIA ALAM",
          "TAMAN BERKELEY", "BANDAR SUNWAY", "TAMAN DESA", "SEKSYEN 13"]
_CITIES = [("81100", "JOHOR BAHRU", "JOHOR"), ("43300", "SERI KEMBANGAN", "SELANGOR"),
           ("47400", "PETALING JAYA", "SELANGOR"), ("41050", "KLANG", "SELANGOR"),
           ("40170", "SHAH ALAM", "SELANGOR"), ("55100", "KUALA LUMPUR", "W.P. KUALA LUMPUR"),
           ("45600", "BATANG BERJUNTAI", "SELANGOR DARUL EHSAN"), ("10200", "GEORGETOWN", "PENANG"),
           ("30000", "IPOH", "PERAK"), ("81200", "JOHOR BAHRU", "JOHOR"),
           ("53300", "SETAPAK", "KUALA LUMPUR"), ("75000", "MELAKA", "MELAKA")]
_ITEMS = ["PAPER A4 80G", "BALL PEN BLUE", "NASI LEMAK", "TEH TARIK", "KOPI O", "MEE GORENG",
          "ROTI CANAI", "SCREW 2IN", "PVC PIPE 1/2", "LED BULB 9W", "TAPE MEASURE 5M",
          "MINERAL WATER 1.5L", "MILO PKT", "BREAD WHITE", "EGG GRADE A", "RICE 5KG",
          "SUGAR 1KG", "COOKING OIL 2KG", "TOILET ROLL", "DETERGENT", "NOTEBOOK A5",
          "GLUE STICK", "CABLE TIE", "PAINT BRUSH 2IN", "SPANNER SET", "CHICKEN RICE",
          "ICE LEMON TEA", "FRIED CHICKEN", "CURRY PUFF", "BATTERY AA 4S", "EXTENSION WIRE"]
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_FOOTERS = ["THANK YOU. PLEASE COME AGAIN.", "GOODS SOLD ARE NOT RETURNABLE",
            "THANK YOU FOR SHOPPING WITH US", "*** THANK YOU ***", "PLEASE KEEP THIS RECEIPT"]


@dataclass
class Item:
    desc: str
    qty: int
    price: float

    @property
    def amount(self) -> float:
        return round(self.qty * self.price, 2)


@dataclass
class Receipt:
    """The content of one receipt; ``gold`` holds the SROIE-style key values."""

    company: str
    reg_no: str | None
    address_lines: list[str]
    phone: str
    date_str: str
    time_str: str
    invoice: str
    cashier: str
    items: list[Item]
    subtotal: float
    tax_label: str | None
    tax: float
    rounding: float
    total: float
    cash: float
    change: float
    footer: str
    thousands: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def money(self, v: float) -> str:
        return f"{v:,.2f}" if self.thousands else f"{v:.2f}"

    @property
    def gold(self) -> dict[str, str | None]:
        return {"company": self.company, "date": self.date_str,
                "address": " ".join(self.address_lines), "total": self.money(self.total)}


def make_company(rng: random.Random) -> str:
    name = " ".join(rng.sample(_NAME_WORDS, rng.choice([1, 1, 2])))
    trade = rng.choice(_TRADES) if rng.random() < 0.8 else ""
    parts = [rng.choice(_PREFIXES) + name, trade, rng.choice(_SUFFIXES)]
    return " ".join(p for p in parts if p).strip()


def make_address(rng: random.Random) -> list[str]:
    """Two to four printed lines; commas end lines the way receipts print them."""
    no = rng.choice(["NO. {n}", "NO.{n}", "NO {n}", "LOT {n}", "{n}"]).format(
        n=f"{rng.randint(1, 299)}{rng.choice(['', '', '-G', 'A', '-1'])}")
    street = rng.choice(_STREETS)
    if rng.random() < 0.5:
        street += f" {rng.randint(1, 30)}" + (f"/{rng.randint(1, 99)}" if rng.random() < 0.3 else "")
    postcode, city, state = rng.choice(_CITIES)
    area = rng.choice(_AREAS)
    comma = rng.random() < 0.7
    sep = "," if comma else ""
    end = "." if rng.random() < 0.4 else ""
    layouts = [
        [f"{no}{sep} {street}{sep}", f"{area}{sep}", f"{postcode} {city}{sep}", f"{state}{end}"],
        [f"{no}{sep} {street}{sep} {area}{sep}", f"{postcode} {city}{sep} {state}{end}"],
        [f"{no}{sep} {street}{sep}", f"{area}{sep} {postcode} {city}{sep} {state}{end}"],
        [f"{no}{sep} {street}{sep}", f"{postcode} {city}{sep}", f"{state}{end}"],
    ]
    return rng.choice(layouts)


def make_date(rng: random.Random) -> str:
    d, m, y = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2016, 2019)
    fmt = rng.choice(["{d:02d}/{m:02d}/{y}", "{d:02d}-{m:02d}-{y}", "{d:02d}-{m:02d}-{yy:02d}",
                      "{d:02d}/{m:02d}/{yy:02d}", "{d:02d} {mon} {y}", "{d:02d}.{m:02d}.{y}",
                      "{y}-{m:02d}-{d:02d}"])
    return fmt.format(d=d, m=m, y=y, yy=y % 100, mon=_MONTHS[m - 1])


def round_to_5sen(v: float) -> float:
    """Malaysian cash rounding to the nearest 0.05."""
    return round(round(v * 20) / 20, 2)


def make_receipt(rng: random.Random) -> Receipt:
    items = [Item(rng.choice(_ITEMS), rng.choice([1, 1, 1, 2, 3, 5]),
                  round(rng.choice([rng.uniform(0.8, 15), rng.uniform(5, 120)]), 2))
             for _ in range(rng.randint(1, 7))]
    if rng.random() < 0.08:  # the odd big purchase, printed with thousands separators
        items.append(Item(rng.choice(_ITEMS), 1, round(rng.uniform(900, 2500), 2)))
    subtotal = round(sum(i.amount for i in items), 2)
    tax_label = rng.choice([None, "GST 6%", "SST 6%", "SERVICE TAX 6%"])
    tax = round(subtotal * 0.06, 2) if tax_label else 0.0
    total = round_to_5sen(subtotal + tax)
    rounding = round(total - subtotal - tax, 2)
    cash = total if rng.random() < 0.15 else float(
        next(c for c in (5, 10, 20, 50, 100, 200, 500, 1000, 5000) if c >= total))
    if rng.random() < 0.3 and cash > total:
        cash = round(total + rng.choice([0.05, 0.5, 1.0, 5.0]), 2)  # exact-ish cash payers
    return Receipt(
        company=make_company(rng),
        reg_no=(f"({rng.randint(100000, 999999)}-{rng.choice('AKPTVWX')})"
                if rng.random() < 0.6 else None),
        address_lines=make_address(rng),
        phone=f"TEL: 0{rng.randint(3, 9)}-{rng.randint(1000000, 9999999)}",
        date_str=make_date(rng),
        time_str=f"{rng.randint(8, 22):02d}:{rng.randint(0, 59):02d}"
                 + (f":{rng.randint(0, 59):02d}" if rng.random() < 0.5 else ""),
        invoice=f"{rng.choice(['INV', 'CS', 'OR', 'RCP'])}{rng.randint(10000, 999999)}",
        cashier=rng.choice(["ADMIN", "SITI", "AH KOW", "MEI LING", "RAJ", "01", "CASHIER 2"]),
        items=items, subtotal=subtotal, tax_label=tax_label, tax=tax, rounding=rounding,
        total=total, cash=cash, change=round(cash - total, 2), footer=rng.choice(_FOOTERS),
        thousands=total >= 1000 and rng.random() < 0.7,
    )
