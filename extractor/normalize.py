"""String normalisation shared by alignment, decoding, the store and evaluation.

Two kinds live here:

* **comparison keys** (``strict_key``, ``lenient_key``): the SROIE task-3 rules used to decide
  whether two values are the same. Strict collapses runs of whitespace; lenient removes all
  whitespace and folds case.
* **value normalisers** (``normalize_value``): per field type, rewrite a value read off OCR words
  into the form a person writes it (``27,JALAN`` -> ``27, JALAN``; amounts and dates as
  printed, whitespace tidied).
  They never invent characters that are not implied by the type.
"""

from __future__ import annotations

import re
from datetime import date

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

_CURRENCY = re.compile(r"^(?:RM|MYR|USD|EUR|GBP|SGD|\$|€|£)\s*", re.IGNORECASE)
_AMOUNT = re.compile(r"^-?\d{1,3}(?:[,]\d{3})*(?:\.\d{1,2})?$|^-?\d+(?:\.\d{1,2})?$")


def normalize_amount(s: str) -> str:
    """Tidy whitespace only: an amount is kept as printed, currency included.

    SROIE gold totals are transcriptions: ``RM 3.90`` where the receipt prints the currency
    beside the number on the total line, ``60.30`` where the number stands alone. Which words
    belong to the value is the span's business (the aligner and the model), so stripping
    ``RM`` here would make 69 of the 500 gold totals unreachable.
    """
    return collapse_ws(s)


def parse_amount(s: str) -> float | None:
    """The number an amount string denotes (currency and spaces ignored), or ``None``."""
    v = _CURRENCY.sub("", collapse_ws(s)).replace(" ", "")
    if not _AMOUNT.match(v):
        return None
    return float(v.replace(",", ""))


# -- dates -----------------------------------------------------------------------------------

_DATE_CHARS = re.compile(r"[^0-9A-Za-z/\-. ]")


def parse_date(s: str) -> date | None:
    """The calendar date a string denotes (day first, as on SROIE receipts), or ``None``."""
    v = collapse_ws(_DATE_CHARS.sub(" ", s or ""))
    if not v or not re.search(r"\d", v):
        return None
    try:
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

_COMMA_NO_SPACE = re.compile(r",(?=[A-Za-z(])")


def normalize_text(s: str) -> str:
    """Collapse whitespace and put the space a writer puts after a comma before a letter.

    OCR lines such as ``27,JALAN DEDAP 13,`` are transcribed as ``27, JALAN DEDAP 13,``. Commas
    between digits (``1,060``) are left alone.
    """
    return _COMMA_NO_SPACE.sub(", ", collapse_ws(s))


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
