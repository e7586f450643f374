"""String normalisation shared by alignment, decoding, the store and evaluation.

Two kinds live here:

* **comparison keys** (``strict_key``, ``lenient_key``): the SROIE task-3 rules used to decide
  whether two values are the same. Strict collapses runs of whitespace; lenient removes all
  whitespace and folds case.
* **value normalisers** (``normalize_value``): per field type, turn the words of a span into
  the value: text, amounts and dates as printed, whitespace tidied (the SROIE gold is a
  transcription of the receipt; see ``normalize_text`` for a rule that was measured and
  dropped). They never invent characters.
"""

from __future__ import annotations

import re
import warnings
from datetime import date, datetime

from dateutil import parser as date_parser

_WS = re.compile(r"\s+")


def collapse_ws(s: str) -> str:
    return _WS.sub(" ", s).strip()


def strict_key(s: str | None) -> str:
    """SROIE strict comparison: whitespace runs collapsed to one space, ends stripped."""
    return collapse_ws(s or "")


def lenient_key(s: str | None) -> str:
    """SROIE lenient comparison: every whitespace removed, case folded."""
    return _WS.sub("", s or "").casefold()


# -- amounts ---------------------------------------------------------------------------------

_CURRENCY = re.compile(r"^(?:RM|MYR|USD|EUR|GBP|SGD|IDR|Rp\.?|\$|€|£)\s*", re.IGNORECASE)
# Two notations: a comma between thousands and a point before the cents (``1,234.50``, SROIE),
# or a point between thousands and a comma before the cents (``60.000``, ``1.234,50``: CORD's
# Indonesian receipts). Cents have one or two digits, so three digits after a point are
# thousands (``60.000`` is sixty thousand), never a price with three decimals.
_AMOUNT_POINT = re.compile(r"^-?\d{1,3}(?:,\d{3})*(?:\.\d{1,2})?$|^-?\d+(?:\.\d{1,2})?$")
_AMOUNT_COMMA = re.compile(r"^-?\d{1,3}(?:\.\d{3})+(?:,\d{1,2})?$|^-?\d+,\d{1,2}$")


def normalize_amount(s: str) -> str:
    """Tidy whitespace only: an amount is kept as printed, currency included.

    SROIE gold totals are transcriptions: ``RM 3.90`` where the receipt prints the currency
    beside the number on the total line, ``60.30`` where the number stands alone. Which words
    belong to the value is the span's business (the aligner and the model), so stripping
    ``RM`` here would make 69 of the 500 gold totals unreachable.
    """
    return collapse_ws(s)


def parse_amount(s: str) -> float | None:
    """The number an amount string denotes (currency and spaces ignored), or ``None``.

    >>> parse_amount("RM 1,234.50"), parse_amount("60.000"), parse_amount("Rp 1.234,5")
    (1234.5, 60000.0, 1234.5)
    >>> parse_amount("60,000"), parse_amount("12.345.67"), parse_amount("TOTAL")
    (60000.0, None, None)
    """
    v = _CURRENCY.sub("", collapse_ws(s)).replace(" ", "")
    if _AMOUNT_POINT.match(v):
        return float(v.replace(",", ""))
    if _AMOUNT_COMMA.match(v):
        return float(v.replace(".", "").replace(",", "."))
    return None


# The amounts of the two notations inside a longer text (``TOTAL:60.30``, ``:9,000``), longest
# notation first: a point before three digits is a thousands point, so ``60.000`` is never
# read as ``60.00``.
AMOUNT_IN = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|-?\d{1,3}(?:\.\d{3})+(?:,\d{1,2})?"
                       r"|-?\d+,\d{1,2}(?!\d)|-?\d+(?:\.\d{1,2})?")


def amounts_in(text: str) -> list[str]:
    """The amounts printed inside ``text``, in order (each one ``parse_amount`` reads).

    >>> amounts_in("TOTAL:1,060.30 CASH 60.000 :9,000")
    ['1,060.30', '60.000', '9,000']
    """
    return [m.group() for m in AMOUNT_IN.finditer(text) if parse_amount(m.group()) is not None]


# -- dates -----------------------------------------------------------------------------------

_DATE_CHARS = re.compile(r"[^0-9A-Za-z/\-. ]")


_MONTH_NAME = re.compile(r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b",
                         re.IGNORECASE)


def _compact_date(digits: str) -> date | None:
    """``20180304`` (year first), ``04032018`` or ``040318`` (day first)."""
    fmts = ("%Y%m%d", "%d%m%Y") if len(digits) == 8 else ("%d%m%y",)
    for fmt in fmts:
        try:
            d = datetime.strptime(digits, fmt).date()
        except ValueError:
            continue
        if 1900 <= d.year <= 2100:
            return d
    return None


def parse_date(s: str) -> date | None:
    """The calendar date a string denotes (day first, as on SROIE receipts), or ``None``.

    A date needs a day, a month and a year: three number groups (``19/10/2018``), two and a
    month name (``04 JAN 2017``) or one compact group (``20180304``). The date parser alone
    would also read ``04`` or ``2017`` as dates of the current month.
    """
    v = collapse_ws(_DATE_CHARS.sub(" ", s or ""))
    groups = re.findall(r"\d+", v)
    if len(groups) == 1 and v == groups[0] and len(v) in (6, 8):
        return _compact_date(v)
    if not (len(groups) >= 3 or (len(groups) == 2 and _MONTH_NAME.search(v))):
        return None
    try:
        with warnings.catch_warnings():  # words such as "SHOT" read as unknown time zones
            warnings.simplefilter("ignore", date_parser.UnknownTimezoneWarning)
            d = date_parser.parse(v, dayfirst=True, fuzzy=False)
    except (ValueError, OverflowError):
        return None
    if not 1900 <= d.year <= 2100:
        return None
    return d.date()


def normalize_date(s: str) -> str:
    """Dates are kept as printed (the gold is a transcription), only whitespace is tidied."""
    return collapse_ws(s)


# -- text ------------------------------------------------------------------------------------

def normalize_text(s: str) -> str:
    """Text is kept as printed; only whitespace is tidied.

    No space is put after a comma before a letter (``27,JALAN``), although one SROIE gold says
    ``27, JALAN``: the OCR keeps the space where the receipt prints one, and where it prints
    none the gold mostly has none either (``7/4,KAWASAN``, ``BAHRU,JOHOR``). On the fit split's
    gold, exact strict address matches reachable from the aligned spans are 229 of 300 as
    printed, 193 with the space added (calibration split: 74 vs 58 of 99).
    """
    return collapse_ws(s)


def normalize_value(value: str, field_type: str) -> str:
    """Rewrite a raw value for its field type (``text``, ``date`` or ``amount``)."""
    if field_type == "amount":
        return normalize_amount(value)
    if field_type == "date":
        return normalize_date(value)
    return normalize_text(value)


def validate_value(value: str, field_type: str) -> str | None:
    """A message saying why ``value`` is not valid for its type, or ``None`` when it is."""
    if not value.strip():
        return None
    if field_type == "amount" and parse_amount(value) is None:
        return f"{value!r} is not an amount (expected digits such as 12.50)"
    if field_type == "date" and parse_date(value) is None:
        return f"{value!r} is not a date (expected something like 25/12/2018)"
    return None
