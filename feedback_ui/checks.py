"""Validation rules a field value must pass before it is auto-accepted or saved.

Typed values must parse (``extractor.normalize.validate_value``), and an amount must be printed
on the page: a total the model assembled from words that do not read as that amount, or that an
operator typed but cannot be found, is flagged for a second look.
"""

from __future__ import annotations

from extractor.document import Document, FieldSpec
from extractor.normalize import parse_amount, validate_value


def amounts_on_page(doc: Document) -> set[float]:
    """Every amount a word (or two adjacent words, such as ``RM 9.00``) reads as."""
    out: set[float] = set()
    texts = [w.text for w in doc.words]
    for i, t in enumerate(texts):
        for s in (t, f"{t} {texts[i + 1]}" if i + 1 < len(texts) else t):
            v = parse_amount(s)
            if v is not None:
                out.add(round(v, 2))
    return out


def field_problem(value: str | None, spec: FieldSpec, doc: Document | None) -> str | None:
    """Why ``value`` fails ``spec``'s rules, or ``None``. An absent value has no problem."""
    if value is None or not value.strip():
        return None
    msg = validate_value(value, spec.type)
    if msg:
        return msg
    if spec.type == "amount" and doc is not None and doc.words:
        v = parse_amount(value)
        if v is not None and round(v, 2) not in amounts_on_page(doc):
            return f"{value!r} is not printed on the page"
    return None
