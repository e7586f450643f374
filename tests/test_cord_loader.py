"""CORD v2 annotations -> documents: ids, words, keys, gold values, bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from extractor.document import FieldSpec, Schema
from extractor.loaders import detect_format, load_documents
from extractor.loaders.cord import load_cord, parse_cord
from extractor.schemas import CORD_SCHEMA, RECEIPT_SCHEMA, get_schema, schema_for_documents


def _word(text: str, x: int, y: int, row: int, key: int = 0) -> dict[str, Any]:
    quad = {"x1": x, "y1": y, "x2": x + 10 * len(text), "y2": y, "x3": x + 10 * len(text),
            "y3": y + 20, "x4": x, "y4": y + 20}
    return {"text": text, "quad": quad, "is_key": key, "row_id": row}


def _mock_cord(lines: list[tuple[str, int, list[dict[str, Any]]]], **extra: Any
               ) -> dict[str, Any]:
    return {"valid_line": [{"category": c, "group_id": g, "words": ws} for c, g, ws in lines],
            "meta": {"image_size": {"width": 400, "height": 600}, "split": "train"},
            "dontcare": [], "roi": {}, "repeating_symbol": [], **extra}


def test_real_files_ids_name_the_split(cord_dir: Path) -> None:
    assert detect_format(cord_dir) == "cord"
    dev = load_documents(cord_dir, split="dev", progress=False)
    assert not dev.failures and len(dev.documents) == 100
    assert all(d.id.startswith("dev/receipt_") for d in dev.documents)
    # file names restart per split: the same stem in train is another document
    train = load_cord(cord_dir, ["train/receipt_00000"], progress=False).documents[0]
    assert train.id == "train/receipt_00000" and train.text != dev.documents[0].text
    assert schema_for_documents(dev.documents) is CORD_SCHEMA


def test_real_file_keys_are_words_not_values(cord_dir: Path) -> None:
    doc = load_cord(cord_dir, ["train/receipt_00012"], progress=False).documents[0]
    texts = [w.text for w in doc.words]
    assert {"VAT", "10%", "Total."} <= set(texts)  # keys are page words
    assert doc.gold == {"total": "96,000", "subtotal": "87,275", "tax": "8,728", "cash": None,
                        "change": None}
    assert "DEBIT BCA:" not in texts and ["DEBIT", "BCA:"] == texts[-2:]  # a spaced word is cut
    assert all(0 <= w.box[0] <= w.box[2] <= doc.width and 0 <= w.box[1] <= w.box[3] <= doc.height
               for w in doc.words)
    assert [w.line for w in doc.words] == sorted(w.line for w in doc.words)


def test_real_files_values_in_both_thousands_notations(cord_dir: Path) -> None:
    docs = {d.id: d for d in load_cord(cord_dir, ["dev/receipt_00004", "dev/receipt_00015"],
                                       progress=False).documents}
    # "Rp" is a key word; ":9,000" is the amount 9,000; points and commas between thousands
    assert docs["dev/receipt_00015"].gold == {"total": "59.400", "subtotal": "54.000",
                                              "tax": "5.400", "cash": "100.000",
                                              "change": "40.600"}
    assert docs["dev/receipt_00004"].gold == {"total": "41,000", "subtotal": "41,000",
                                             "tax": None, "cash": "50.000", "change": "9,000"}


def test_value_over_lines_first_group_and_dontcare() -> None:
    data = _mock_cord([
        ("total.total_price", 3, [_word("TOTAL", 10, 300, 7, key=1)]),
        ("total.total_price", 3, [_word("Rp", 10, 330, 8, key=1), _word("60.000", 200, 330, 8)]),
        ("sub_total.subtotal_price", 1, [_word("50.000", 200, 100, 2)]),
        ("sub_total.subtotal_price", 2, [_word("55.000", 200, 200, 4)]),
        ("menu.nm", 5, [_word("NASI GORENG", 10, 50, 1)]),
    ], dontcare=[{"x1": 0, "y1": 0, "x2": 5, "y2": 0, "x3": 5, "y3": 5, "x4": 0, "y4": 5}])
    doc = parse_cord(data, "train/x")
    assert doc.gold == {"total": "60.000", "subtotal": "50.000", "tax": None, "cash": None,
                        "change": None}
    assert [w.text for w in doc.words] == ["NASI", "GORENG", "50.000", "55.000", "TOTAL", "Rp",
                                           "60.000"]
    assert doc.meta["cord"] == {"dontcare": 1, "extra_groups": 1}
    assert doc.source is None and (doc.width, doc.height) == (400, 600)


def test_other_cord_categories_by_schema() -> None:
    data = _mock_cord([("total.creditcardprice", 1, [_word("CARD", 0, 0, 1, 1),
                                                     _word("12,500", 90, 0, 1)])])
    schema = Schema("card", [FieldSpec("card", "amount")])
    assert parse_cord(data, "dev/y", schema).gold == {"card": "12,500"}


@pytest.mark.parametrize("data, problem", [
    ({"form": []}, "valid_line"),
    (_mock_cord([("total", 1, [_word("1", 0, 0, 1)])]), "category"),
    (_mock_cord([("total.total_price", 1, [{"text": "1", "quad": {"x1": 0}}])]), "quad"),
    ({**_mock_cord([]), "meta": {}}, "image_size"),
])
def test_bad_annotation_names_file_and_problem(tmp_path: Path, data: Any, problem: str) -> None:
    (tmp_path / "dev" / "json").mkdir(parents=True)
    (tmp_path / "dev" / "json" / "receipt_00000.json").write_text(json.dumps(data))
    good = _mock_cord([("total.total_price", 1, [_word("5,000", 0, 0, 1)])])
    (tmp_path / "dev" / "json" / "receipt_00001.json").write_text(json.dumps(good))
    report = load_documents(tmp_path, progress=False)
    assert [d.id for d in report.documents] == ["dev/receipt_00001"]  # the batch goes on
    (failure,) = report.failures
    assert failure.path.endswith("receipt_00000.json") and problem in failure.reason


def test_images_refused_and_schemas_by_name(cord_dir: Path) -> None:
    with pytest.raises(ValueError, match="without page images"):
        load_documents(cord_dir, split="dev", ocr="images", progress=False)
    assert get_schema("cord") is CORD_SCHEMA and get_schema("receipt") is RECEIPT_SCHEMA
    with pytest.raises(ValueError, match="unknown schema"):
        get_schema("invoice")
    with pytest.raises(ValueError, match="CORD has no field"):
        load_cord(cord_dir, ["dev/receipt_00000"], schema=RECEIPT_SCHEMA)


def test_gold_in_no_known_schema_is_refused() -> None:
    doc = parse_cord(_mock_cord([("total.total_price", 1, [_word("1", 0, 0, 1)])]), "dev/z")
    doc.gold = {"total": "1", "vendor": "ACME"}
    with pytest.raises(ValueError, match="no known schema"):
        schema_for_documents([doc])


def test_a_value_that_is_no_amount_is_absent() -> None:
    """CORD prints ``-`` for no tax on 3 receipts: not an amount, so nothing to extract."""
    data = _mock_cord([("sub_total.tax_price", 1, [_word("TAX", 0, 0, 1, 1),
                                                   _word("-", 90, 0, 1)])])
    assert parse_cord(data, "train/t").gold["tax"] is None


def test_a_jsonl_export_keeps_cords_split(cord_dir: Path, tmp_path: Path) -> None:
    from extractor.loaders.jsonl import write_documents

    docs = load_documents(cord_dir, progress=False).documents
    write_documents(str(tmp_path / "cord.jsonl"), docs)
    for split in ("fit", "calibration", "dev"):
        ids = [d.id for d in load_documents(tmp_path / "cord.jsonl", split=split,
                                            progress=False).documents]
        assert ids == [d.id for d in load_documents(cord_dir, split=split,
                                                    progress=False).documents]
