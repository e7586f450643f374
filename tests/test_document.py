"""Round trips and validation of the shared document model."""

from __future__ import annotations

import json

import pytest

from extractor.document import (
    RECEIPT_SCHEMA,
    Candidate,
    Document,
    ExtractionResult,
    FieldResult,
    FieldSpec,
    Schema,
    Word,
    read_jsonl,
    write_jsonl,
)


def _mock_document() -> Document:
    words = [Word("TAN", (10, 10, 40, 20), 0.9, 0), Word("60.30", (50, 10, 90, 20), 0.8, 0)]
    return Document(id="001", words=words, width=200, height=100, source="img/001.jpg",
                    gold={"company": "TAN", "date": None, "address": None, "total": "60.30"},
                    variants={"psm6": [Word("TAN", (11, 10, 40, 20))]}, meta={"k": 1})


def _mock_result() -> ExtractionResult:
    return ExtractionResult(
        doc_id="001", model_version="kv.ensemble.v1@abc",
        fields={"total": FieldResult("total", [Candidate("60.30", 0.8, [1], "model", -0.22),
                                               Candidate("6.30", 0.1, [], "ocr:psm6")], 0.75)})


def test_document_round_trip_through_json():
    doc = _mock_document()
    again = Document.from_dict(json.loads(json.dumps(doc.export())))
    assert again == doc


def test_result_round_trip_and_top_value():
    res = _mock_result()
    again = ExtractionResult.from_dict(json.loads(json.dumps(res.export())))
    assert again == res
    assert again.values() == {"total": "60.30"}
    assert FieldResult("date").value is None


def test_schema_labels_and_round_trip():
    assert RECEIPT_SCHEMA.labels[:3] == ["O", "B-COMPANY", "I-COMPANY"]
    assert len(RECEIPT_SCHEMA.labels) == 1 + 2 * 4
    assert Schema.from_dict(RECEIPT_SCHEMA.export()) == RECEIPT_SCHEMA
    assert RECEIPT_SCHEMA["total"].type == "amount"
    with pytest.raises(KeyError):
        RECEIPT_SCHEMA["nope"]


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "bad name"}, "alphanumeric"),
    ({"name": "x", "type": "money"}, "type must be"),
    ({"name": "x", "auto_accept": 1.5}, "auto_accept"),
])
def test_field_spec_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FieldSpec(**kwargs)


def test_schema_rejects_duplicates():
    with pytest.raises(ValueError, match="duplicate"):
        Schema("s", [FieldSpec("a"), FieldSpec("a")])


def test_normalized_boxes_are_clipped_to_1000_grid():
    doc = Document(id="x", words=[Word("a", (0, 0, 250, 120))], width=200, height=100)
    assert doc.normalized_boxes() == [(0, 0, 1000, 1000)]


def test_content_hash_depends_on_words_only():
    a, b = _mock_document(), _mock_document()
    b.meta["other"] = True
    assert a.content_hash() == b.content_hash()
    b.words[0].text = "TAM"
    assert a.content_hash() != b.content_hash()


def test_jsonl_round_trip_and_bad_line(tmp_path):
    path = tmp_path / "docs.jsonl"
    assert write_jsonl(str(path), [_mock_document(), _mock_document()]) == 2
    assert Document.from_dict(next(read_jsonl(str(path)))) == _mock_document()
    path.write_text('{"id": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"docs.jsonl:2"):
        list(read_jsonl(str(path)))


def test_document_from_dict_names_missing_key():
    with pytest.raises(ValueError, match="'words'"):
        Document.from_dict({"id": "1", "width": 1, "height": 1})
