"""The schemas kvloop knows by name, and which one a dataset's gold is written in.

``RECEIPT_SCHEMA`` (``extractor.document``: SROIE's company, date, address, total) and
``CORD_SCHEMA`` (below). A model card stores the full schema it was trained with
(``extractor.model.card``), so extraction and evaluation never need this table; training
needs it to pick a schema for a dataset (``schema_for_documents``) or by ``--schema``.
"""

from __future__ import annotations

from collections.abc import Iterable

from extractor.document import RECEIPT_SCHEMA, Document, FieldSpec, Schema

CORD_CATEGORIES: dict[str, str] = {
    "total": "total.total_price",
    "subtotal": "sub_total.subtotal_price",
    "tax": "sub_total.tax_price",
    "service": "sub_total.service_price",
    "discount": "sub_total.discount_price",
    "cash": "total.cashprice",
    "change": "total.changeprice",
    "card": "total.creditcardprice",
}
"""Single-valued CORD categories by the field name a schema may give them."""

CORD_SCHEMA = Schema(
    name="cord",
    fields=[
        FieldSpec("total", "amount", "Total price of the receipt", 0.97),
        FieldSpec("subtotal", "amount", "Subtotal before tax and service", 0.97),
        FieldSpec("tax", "amount", "Tax amount", 0.97),
        FieldSpec("cash", "amount", "Cash tendered", 0.97),
        FieldSpec("change", "amount", "Change given back", 0.97),
    ],
)
"""The single-valued amounts of CORD v2 that at least a third of the receipts print in
both of its splits, so that each field has over 40 gold values among the 100 dev receipts and
its per-field F1 means something. Receipts with a value, of the 800 train / 100 dev (the
``extractor.loaders.cord`` reading, keys excluded; ``kvloop data ../shared/data/cord --split
train``): total 781 / 98, subtotal 531 / 67, cash 517 / 64, change 500 / 64, tax 352 / 47.
Left out: card 121 / 14, service 98 / 13 and discount 62 / 6 (a dev F1 over 6 to 14 values
moves by several points with one receipt, and discount is mostly ``0``); the loader reads them
too when a schema names them (``CORD_CATEGORIES``). Line items (``menu.*``) are a repeated
group, not key-value fields. All five are amounts, printed with a point or a comma between
thousands (``60.000``, ``60,000``: ``extractor.normalize.parse_amount``), and they repeat one
another (total = cash when no change is due): the trap SROIE's total sets. Schema order is
alignment order (``extractor.align.align_document``): total first takes the TOTAL row's copy.
"""

SCHEMAS: dict[str, Schema] = {s.name: s for s in (RECEIPT_SCHEMA, CORD_SCHEMA)}


def get_schema(name: str) -> Schema:
    """The schema called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return SCHEMAS[name]
    except KeyError:
        raise ValueError(f"unknown schema {name!r}; choose one of {list(SCHEMAS)}") from None


def schema_for_fields(names: Iterable[str]) -> Schema | None:
    """The first known schema holding every field in ``names`` (None: none does)."""
    wanted = set(names)
    return next((s for s in SCHEMAS.values() if wanted <= set(s.field_names)), None)


def schema_for_documents(docs: Iterable[Document]) -> Schema:
    """The schema the documents' gold is written in: the first known schema holding every
    gold field; ``RECEIPT_SCHEMA`` when no document has gold. ``ValueError`` when no known
    schema holds them all."""
    names = {k for d in docs for k in (d.gold or {})}
    if not names:
        return RECEIPT_SCHEMA
    found = schema_for_fields(names)
    if found is None:
        raise ValueError(f"no known schema has the gold fields {sorted(names)} (known: "
                         + "; ".join(f"{s.name}: {', '.join(s.field_names)}"
                                     for s in SCHEMAS.values()) + ")")
    return found
