"""Loaders: SROIE (real receipts and broken copies), JSONL, FUNSD, Label Studio, dispatch."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from extractor.document import Document, Word
from extractor.loaders import detect_format, load_documents
from extractor.loaders.funsd import load_funsd, parse_funsd
from extractor.loaders.jsonl import load_jsonl, write_documents
from extractor.loaders.labelstudio import load_labelstudio
from extractor.loaders.report import DocumentLoadError
from extractor.loaders.sroie import (
    load_sroie,
    load_sroie_document,
    parse_box_line,
    read_box_file,
    reading_order,
    split_line,
)

# -- SROIE -----------------------------------------------------------------------------------


def test_parse_box_line_keeps_commas_in_transcript():
    box, text = parse_box_line("126,191,297,191,297,214,126,214,27,JALAN DEDAP 13,")
    assert box == (126, 191, 297, 214)
    assert text == "27,JALAN DEDAP 13,"


def test_parse_box_line_quad_becomes_bounding_box():
    box, _ = parse_box_line("10,20,110,25,108,45,8,40,TILTED")
    assert box == (8, 20, 110, 45)


def test_split_line_gives_proportional_sub_boxes():
    words = split_line((100, 10, 300, 30), "AB CDEFGH", line=7)
    assert [w.text for w in words] == ["AB", "CDEFGH"]
    # 9 characters over 200 px: "AB" covers chars 0-2, "CDEFGH" chars 3-9.
    assert words[0].box == (100, 10, 100 + round(200 * 2 / 9), 30)
    assert words[1].box == (100 + round(200 * 3 / 9), 10, 300, 30)
    assert all(w.line == 7 for w in words)


def test_reading_order_sorts_rows_then_left_to_right():
    lines = [((200, 52, 300, 70), "right"), ((10, 100, 90, 120), "below"),
             ((10, 50, 100, 68), "left")]
    assert [t for _, t in reading_order(lines)] == ["left", "right", "below"]


def test_real_receipt_words_lines_and_gold(sroie_dir):
    doc = load_sroie_document(sroie_dir, "001")
    assert (doc.width, doc.height) == (439, 1004)
    assert doc.gold == json.loads((sroie_dir / "key" / "001.json").read_text())
    texts = [w.text for w in doc.words]
    i = texts.index("27,JALAN")
    assert texts[i:i + 3] == ["27,JALAN", "DEDAP", "13,"]
    # The words of one line share its top/bottom and tile it left to right.
    line = [w for w in doc.words if w.line == doc.words[i].line]
    assert [w.text for w in line] == ["27,JALAN", "DEDAP", "13,"]
    assert line[0].box[0] == 126 and line[-1].box[2] == 297
    assert all(a.box[2] <= b.box[0] for a, b in itertools.pairwise(line))
    assert {(w.box[1], w.box[3]) for w in line} == {(191, 214)}
    # Lines come top to bottom.
    tops = [min(w.box[1] for w in doc.words if w.line == k)
            for k in range(max(w.line for w in doc.words) + 1)]
    assert all(a <= b + 10 for a, b in itertools.pairwise(tops))


def test_receipt_without_address_has_none_gold(sroie_dir):
    ids = [p.stem for p in sorted((sroie_dir / "key").glob("*.json"))
           if "address" not in json.loads(p.read_text())]
    assert ids, "the sample has one receipt without an address"
    doc = load_sroie_document(sroie_dir, ids[0])
    assert doc.gold is not None and doc.gold["address"] is None


@pytest.fixture
def broken_sroie(sroie_dir, tmp_path) -> Path:
    """A tmp SROIE folder: 001 good, then one receipt broken in each possible way."""
    root = tmp_path / "sroie"
    for sub in ("img", "box", "key"):
        (root / sub).mkdir(parents=True)
    for i in ("001", "002", "003", "004", "006", "007"):
        shutil.copy(sroie_dir / "img" / f"{i}.jpg", root / "img")
        shutil.copy(sroie_dir / "box" / f"{i}.csv", root / "box")
        shutil.copy(sroie_dir / "key" / f"{i}.json", root / "key")
    (root / "box" / "002.csv").write_text("1,2,3,oops,5,6,7,8,TEXT\n")
    (root / "key" / "003.json").write_text('{"company": "X", ')
    (root / "img" / "004.jpg").write_bytes(b"not a jpeg at all")
    (root / "box" / "006.csv").write_text("\n\n")
    (root / "key" / "007.json").unlink()
    return root


def test_broken_files_are_reported_and_the_batch_goes_on(broken_sroie):
    report = load_sroie(broken_sroie, progress=False)
    assert [d.id for d in report.documents] == ["001"]
    failures = {Path(f.path.split(":")[0]).name: f.reason for f in report.failures}
    assert "non-numeric coordinate" in failures["002.csv"]
    assert "not valid JSON" in failures["003.json"]
    assert "cannot read image" in failures["004.jpg"]
    assert "no text lines" in failures["006.csv"]
    assert "missing" in failures["007.json"]
    assert "FAILED" in report.summary()


def test_malformed_box_error_names_file_and_line(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("1,2,3,4,5,6,7,8,OK\n1,2,3\n")
    with pytest.raises(DocumentLoadError, match=r"x\.csv:2"):
        read_box_file(p)


def test_tesseract_option_replaces_words_and_keeps_gold(sroie_dir, tmp_path):
    from extractor.loaders.sroie import tesseract_documents
    from extractor.ocr import OcrConfig

    provided = load_sroie(sroie_dir, ["001"], progress=False)
    configs = [OcrConfig("psm6", psm=6), OcrConfig("psm4", psm=4)]
    out = tesseract_documents(provided, workers=1, cache_dir=tmp_path, configs=configs,
                              progress=False)
    doc = out.documents[0]
    assert doc.ocr == "tesseract:psm6" and list(doc.variants) == ["psm4"]
    assert doc.gold == provided.documents[0].gold
    assert doc.words and [w.text for w in doc.words] != [w.text for w in
                                                          provided.documents[0].words]
    assert len(list(tmp_path.rglob("*.json"))) == 2  # one cache entry per pass
    again = tesseract_documents(provided, workers=1, cache_dir=tmp_path, configs=configs,
                                progress=False)
    assert [w.export() for w in again.documents[0].words] == [w.export() for w in doc.words]


# -- JSONL -----------------------------------------------------------------------------------

def _doc(doc_id: str = "d1") -> Document:
    return Document(id=doc_id, words=[Word("TOTAL", (1, 2, 30, 12), 0.9, 0),
                                      Word("5.00", (40, 2, 60, 12), 0.8, 0)],
                    width=100, height=50, gold={"total": "5.00"},
                    variants={"psm4": [Word("T0TAL", (1, 2, 30, 12))]}, meta={"k": 1})


def test_jsonl_round_trip(tmp_path):
    docs = [_doc("a"), _doc("b")]
    path = tmp_path / "sub" / "docs.jsonl"
    assert write_documents(path, docs) == 2
    report = load_jsonl(path)
    assert not report.failures
    assert [d.export() for d in report.documents] == [d.export() for d in docs]


def test_jsonl_bad_lines_named_by_file_and_line(tmp_path):
    path = tmp_path / "docs.jsonl"
    good = json.dumps(_doc().export())
    path.write_text(f"{good}\n{{broken\n\n[1, 2]\n{json.dumps({'id': 'x'})}\n{good}\n")
    report = load_jsonl(path)
    assert len(report.documents) == 2
    assert [f.path for f in report.failures] == [f"{path}:2", f"{path}:4", f"{path}:5"]
    assert "not valid JSON" in report.failures[0].reason
    assert "missing required key" in report.failures[2].reason


# -- FUNSD -----------------------------------------------------------------------------------

FUNSD_FORM = {"form": [
    {"id": 0, "label": "question", "text": "Date:", "box": [10, 50, 60, 70],
     "words": [{"text": "Date:", "box": [10, 50, 60, 70]}], "linking": [[0, 1]]},
    {"id": 1, "label": "answer", "text": "12/01/2019", "box": [70, 50, 160, 70],
     "words": [{"text": "12/01/2019", "box": [70, 50, 160, 70]}], "linking": [[0, 1]]},
    {"id": 2, "label": "header", "text": "ACME SUPPLY CO", "box": [10, 10, 200, 30],
     "words": [{"text": "ACME", "box": [10, 10, 60, 30]},
               {"text": "SUPPLY", "box": [65, 10, 130, 30]},
               {"text": "CO", "box": [135, 10, 200, 30]}], "linking": []},
]}


def test_funsd_words_in_reading_order_and_gold_from_links():
    doc = parse_funsd(FUNSD_FORM, "f1", key_map={"Date": "date"})
    assert [w.text for w in doc.words] == ["ACME", "SUPPLY", "CO", "Date:", "12/01/2019"]
    assert [w.line for w in doc.words] == [0, 0, 0, 1, 2]
    assert doc.words[4].box == (70, 50, 160, 70)
    assert doc.gold == {"date": "12/01/2019"}
    assert parse_funsd(FUNSD_FORM, "f1").gold is None


def test_funsd_folder_with_a_bad_file(tmp_path):
    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "good.json").write_text(json.dumps(FUNSD_FORM))
    (ann / "bad.json").write_text(json.dumps({"form": [{"id": 0, "box": [1, 2]}]}))
    report = load_funsd(tmp_path, progress=False)
    assert [d.id for d in report.documents] == ["good"]
    assert report.failures[0].path.endswith("bad.json")
    assert "box must be 4 numbers" in report.failures[0].reason
    assert detect_format(tmp_path) == "funsd"
    assert detect_format(ann / "good.json") == "funsd"


# -- Label Studio ----------------------------------------------------------------------------

def _region(rid: str, x: float, y: float, w: float, h: float, text: str, label: str) -> list:
    geo = {"original_width": 400, "original_height": 800, "image_rotation": 0,
           "to_name": "image"}
    val = {"x": x, "y": y, "width": w, "height": h, "rotation": 0}
    return [dict(geo, id=rid, type="rectangle", from_name="bbox", value=dict(val)),
            dict(geo, id=rid, type="labels", from_name="label", value=dict(val, labels=[label])),
            dict(geo, id=rid, type="textarea", from_name="transcription",
                 value=dict(val, text=[text]))]


LS_EXPORT = [
    {"id": 7, "data": {"ocr": "/data/upload/1/receipt.png"}, "annotations": [{"result": [
        *_region("r3", 60, 50, 20, 5, "12.50", "Total"),
        *_region("r2", 10, 50, 30, 5, "TOTAL", "Text"),
        *_region("r1", 10, 5, 80, 5, "ACME SDN BHD", "Company"),
    ]}]},
    {"id": 8, "data": {"ocr": "x.png"}, "annotations": []},
]


def test_labelstudio_regions_become_words_with_gold(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(LS_EXPORT))
    assert detect_format(path) == "labelstudio"
    report = load_labelstudio(path)
    doc = report.documents[0]
    assert doc.id == "7" and (doc.width, doc.height) == (400, 800)
    assert [w.text for w in doc.words] == ["ACME", "SDN", "BHD", "TOTAL", "12.50"]
    assert doc.words[0].box[:2] == (40, 40)  # 10% of 400, 5% of 800
    assert doc.words[-1].box == (240, 400, 320, 440)
    assert doc.gold == {"company": "ACME SDN BHD", "date": None, "address": None,
                        "total": "12.50"}
    assert [f.path for f in report.failures] == [f"{path}#8"]


# -- dispatch --------------------------------------------------------------------------------

def test_load_documents_dispatch(sroie_dir, tmp_path):
    assert detect_format("demo") == "demo"
    assert detect_format(sroie_dir) == "sroie"
    report = load_documents(sroie_dir, split="dev", progress=False)
    assert len(report.documents) == 100
    path = tmp_path / "dev.jsonl"
    write_documents(path, report.documents[:3])
    assert [d.id for d in load_documents(path).documents] == [d.id for d in
                                                              report.documents[:3]]


def test_image_files_and_folders_go_to_the_ocr_loader(tmp_path):
    from PIL import Image

    Image.new("L", (20, 10), 255).save(tmp_path / "page.png")
    assert detect_format(tmp_path / "page.png") == "images"
    assert detect_format(tmp_path) == "images"


def test_unknown_spec_names_path_and_expectation(tmp_path):
    odd = tmp_path / "notes.txt"
    odd.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt.*expected 'demo', a SROIE folder"):
        load_documents(odd)
    with pytest.raises(ValueError, match="no such file"):
        load_documents(tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown split"):
        load_documents(odd, split="test")


# -- the `kvloop data` command ---------------------------------------------------------------

def test_data_command_writes_jsonl_and_summarises(sroie_dir, tmp_path, capsys):
    from kvloop.cli import main

    out = tmp_path / "dev.jsonl"
    assert main(["data", str(sroie_dir), "--split", "dev", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "loaded 100 document(s), 0 failure(s)" in captured.err
    assert "gold address" in captured.out and "100/100" in captured.out
    assert len(load_jsonl(out).documents) == 100


def test_data_command_reports_bad_spec(tmp_path, capsys):
    from kvloop.cli import main

    assert main(["data", str(tmp_path / "nope")]) == 2
    assert "nope: no such file or folder" in capsys.readouterr().err
