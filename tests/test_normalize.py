"""SROIE comparison keys and per-type value normalisers, checked by hand."""

from __future__ import annotations

from datetime import date

import pytest

from extractor.normalize import (
    lenient_key,
    normalize_amount,
    normalize_text,
    normalize_value,
    parse_amount,
    parse_date,
    strict_key,
    validate_value,
)


def test_strict_and_lenient_keys():
    assert strict_key("  27,  JALAN\nDEDAP ") == "27, JALAN DEDAP"
    assert lenient_key("27, Jalan  DEDAP") == "27,jalandedap"
    assert strict_key(None) == "" == lenient_key(None)


@pytest.mark.parametrize("raw, expected", [
    ("27,JALAN  DEDAP 13,", "27,JALAN DEDAP 13,"),   # kept as printed (see the docstring)
    (" 81100 JOHOR\nBAHRU,JOHOR. ", "81100 JOHOR BAHRU,JOHOR."),
    ("TOTAL 1,060.30", "TOTAL 1,060.30"),
])
def test_normalize_text_keeps_text_as_printed(raw, expected):
    assert normalize_text(raw) == expected


@pytest.mark.parametrize("raw, expected, number", [
    ("RM60.30", "RM60.30", 60.30), ("RM  1,060.30", "RM 1,060.30", 1060.30),
    ("60.30", "60.30", 60.3), ("$ 5", "$ 5", 5.0), ("TOTAL", "TOTAL", None),
    ("6O.30", "6O.30", None),
    # a point between thousands and a comma before the cents (CORD's Indonesian receipts)
    ("60.000", "60.000", 60000.0), ("60,000", "60,000", 60000.0),
    ("Rp 1.234.500", "Rp 1.234.500", 1234500.0), ("Rp. 9,736", "Rp. 9,736", 9736.0),
    ("1.234,50", "1.234,50", 1234.5), ("12,5", "12,5", 12.5), ("-9,545", "-9,545", -9545.0),
    ("60.0000", "60.0000", None), ("1,234,5", "1,234,5", None), ("12.345.67", "12.345.67", None),
])
def test_amounts(raw, expected, number):
    assert normalize_amount(raw) == expected
    assert parse_amount(raw) == number


@pytest.mark.parametrize("raw, expected", [
    ("19/10/2018", date(2018, 10, 19)), ("12-01-19", date(2019, 1, 12)),
    ("25 DEC 2018", date(2018, 12, 25)), ("hello", None), ("99/99/2018", None),
    ("20180304", date(2018, 3, 4)), ("01-NOV-2017", date(2017, 11, 1)),
    # a day, a month or a year alone is not a date (the parser would fill in today's)
    ("04", None), ("2017", None), ("JAN 2017", None), ("3.20", None),
])
def test_parse_date_day_first(raw, expected):
    assert parse_date(raw) == expected


def test_normalize_value_by_type_and_validation():
    assert normalize_value("RM  9.90", "amount") == "RM 9.90"
    assert normalize_value(" 19/10/2018 ", "date") == "19/10/2018"
    assert validate_value("12.x", "amount") and "not an amount" in validate_value("12.x", "amount")
    assert validate_value("32/13/2018", "date") is not None
    assert validate_value("19/10/2018", "date") is None
    assert validate_value("", "amount") is None
