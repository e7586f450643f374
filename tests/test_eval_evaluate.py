"""evaluate_results, model comparison and the error gallery on hand-built documents."""

from __future__ import annotations

import base64
import doctest
import io

import pytest
from PIL import Image

import eval.evaluate as evaluate_mod
import eval.gallery as gallery_mod
from eval.compare import compare_all, compare_pair
from eval.evaluate import evaluate_results, tags_from_result
from eval.field_scores import score_results
from eval.gallery import build_gallery, error_crop, gold_word_indices, select_errors
from extractor.document import (
    RECEIPT_SCHEMA,
    Candidate,
    Document,
    ExtractionResult,
    FieldResult,
    Word,
)
from extractor.scoring import confidence_items, expected_calibration_error, pool_items

FIELDS = RECEIPT_SCHEMA.field_names


@pytest.mark.parametrize("mod", [evaluate_mod, gallery_mod])
def test_doctests(mod) -> None:
    res = doctest.testmod(mod)
    assert res.attempted > 0 and res.failed == 0


def _mock_doc(i: int, total: str = "9.00", source: str | None = None) -> Document:
    texts = ["SHOP", f"{i}", "SDN", "BHD", "01/02/2018", "1", "JALAN", "X", "TOTAL", total]
    words = [Word(t, (10 + 40 * (j % 4), 20 + 30 * (j // 4), 45 + 40 * (j % 4),
                      40 + 30 * (j // 4)), 1.0, j // 4) for j, t in enumerate(texts)]
    gold: dict[str, str | None] = {"company": f"SHOP {i} SDN BHD", "date": "01/02/2018",
                                   "address": "1 JALAN X", "total": total}
    return Document(id=f"d{i}", words=words, width=200, height=140, source=source, gold=gold)


def _gold_tags(doc: Document) -> list[str]:
    return ["B-COMPANY", "I-COMPANY", "I-COMPANY", "I-COMPANY", "B-DATE", "B-ADDRESS",
            "I-ADDRESS", "I-ADDRESS", "O", "B-TOTAL"]


def _fr(name: str, values: list[str], conf: float, idx: list[int] | None = None) -> FieldResult:
    return FieldResult(name, [Candidate(v, 0.5, (idx or []) if k == 0 else [])
                              for k, v in enumerate(values)], conf)


def _mock_result(doc: Document, wrong_total: bool = False, model: str = "m") -> ExtractionResult:
    gold = {k: v or "" for k, v in (doc.gold or {}).items()}
    total = ["8.00", gold["total"]] if wrong_total else [gold["total"]]
    return ExtractionResult(doc.id, model, {
        "company": _fr("company", [gold["company"]], 0.9, [0, 1, 2, 3]),
        "date": _fr("date", ["01/02/2018"], 0.95, [4]),
        "address": _fr("address", ["1 JALAN  X"], 0.8, [5, 6, 7]),
        "total": _fr("total", total, 0.6 if wrong_total else 0.99, [8 if wrong_total else 9]),
    })


def test_evaluate_results_hand_computed() -> None:
    docs = [_mock_doc(i) for i in range(4)]
    results = [_mock_result(d, wrong_total=(i == 0)) for i, d in enumerate(docs[:3])]
    results.append(_mock_result(_mock_doc(99)))          # a document not in the data
    run = evaluate_results(docs, results, RECEIPT_SCHEMA, model="m", data="t",
                           gold_tags={d.id: _gold_tags(d) for d in docs})
    m = run.metrics
    # d0: 3 tp + total fp/fn; d1, d2: 4 tp; d3: no result -> 4 fn
    assert (m["strict"]["overall"]["tp"], m["strict"]["overall"]["fp"],
            m["strict"]["overall"]["fn"]) == (11, 1, 5)
    assert m["strict"]["doc_accuracy"] == pytest.approx(2 / 4)
    assert m["oracle_recall"]["fields"]["total"] == pytest.approx(
        {"@1": 2 / 4, "@2": 3 / 4, "@3": 3 / 4, "@4": 3 / 4, "@5": 3 / 4})
    assert any("d3: no result" in p for p in run.problems)
    assert any("d99: result for a document not in the data" in p for p in run.problems)
    # BIO: derived from word_indices; d0's total points at "TOTAL" (word 8)
    assert m["bio"]["fields"]["DATE"]["f1"] == pytest.approx(2 * 3 / (3 + 4))
    assert m["bio"]["fields"]["TOTAL"]["precision"] == pytest.approx(2 / 3)
    # calibration items: every (doc, field), "no result" answers have confidence 0
    assert m["calibration"]["overall"]["n"] == 16
    assert m["savings"]["fields"]["total"]["targets"]["0.99"]["coverage"] == pytest.approx(0.5)
    assert run.doc_stats["fields"].shape == (4, 2, 4, 3)
    assert run.doc_stats["all_correct"][:, 0].tolist() == [0.0, 1.0, 1.0, 0.0]


def test_tags_from_result_first_field_wins() -> None:
    r = ExtractionResult("d", "m", {"company": _fr("company", ["A B"], .9, [1, 2]),
                                    "total": _fr("total", ["B"], .9, [2, 3, 9])})
    assert tags_from_result(r, 5, RECEIPT_SCHEMA) == ["O", "B-COMPANY", "I-COMPANY", "B-TOTAL",
                                                      "O"]


def test_compare_pair_paired_on_shared_docs() -> None:
    docs = [_mock_doc(i) for i in range(12)]
    bad = [_mock_result(d, wrong_total=True, model="a") for d in docs]
    good = [_mock_result(d, model="b") for d in docs]
    ra = evaluate_results(docs, bad, RECEIPT_SCHEMA, model="a", data="t")
    rb = evaluate_results(docs[::-1], good, RECEIPT_SCHEMA, model="b", data="t")  # other order
    c = compare_pair(ra, rb, FIELDS, n_boot=200)
    assert c["n_docs"] == 12
    tot = c["metrics"]["strict_f1/total"]
    assert (tot["diff"], tot["low"], tot["high"]) == (1.0, 1.0, 1.0)
    assert c["metrics"]["doc_accuracy"]["diff"] == pytest.approx(1.0)
    assert c["metrics"]["strict_f1"]["significant"]
    # pairs: models on one OCR pass, one model across OCR passes; never a run with itself
    rt = evaluate_results(docs, good, RECEIPT_SCHEMA, model="b", data="t", ocr="tesseract")
    pairs = compare_all([ra, rb, rb, rt], FIELDS, n_boot=50)
    assert [(c["a"], c["b"]) for c in pairs] == [
        ("a", "b"), ("a", "b"), ("b [provided]", "b [tesseract]"),
        ("b [provided]", "b [tesseract]")]


def test_gallery_crop_from_page_image(tmp_path) -> None:
    page = tmp_path / "page.png"
    Image.new("RGB", (200, 140), "white").save(page)
    doc = _mock_doc(0, source=str(page))
    uri, note = error_crop(doc, [8], [9])
    assert note == "" and uri is not None and uri.startswith("data:image/jpeg;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    pixels = img.convert("RGB").get_flattened_data()
    colours: set[tuple[int, int, int]] = set(pixels)  # type: ignore[arg-type]
    assert any(r > 150 and g < 100 for r, g, b in colours)      # red predicted box
    assert any(g > 120 and r < 100 for r, g, b in colours)      # green gold box
    # no page image: drawn from the words, and said so
    uri2, note2 = error_crop(_mock_doc(0), [8], [9])
    assert uri2 is not None and "drawn from the OCR words" in note2
    assert error_crop(doc, [], []) == (None, "no predicted or gold words on the page")


def test_gallery_picks_confident_errors_round_robin() -> None:
    docs = [_mock_doc(i) for i in range(3)]
    results = [_mock_result(d, wrong_total=True) for d in docs]
    run = evaluate_results(docs, results, RECEIPT_SCHEMA, model="m", data="t")
    picked = select_errors(run.outcomes, limit=2)
    assert [o.field for o in picked] == ["total", "total"]
    items = build_gallery(run.outcomes, {d.id: d for d in docs},
                          {d.id: _gold_tags(d) for d in docs}, limit=5)
    assert len(items) == 3 and items[0].pred == "8.00" and items[0].gold == "9.00"
    assert items[0].candidates == ["8.00", "9.00"]
    assert gold_word_indices(_gold_tags(docs[0]), "address") == [5, 6, 7]


def test_out_of_range_confidence_is_clipped_and_reported() -> None:
    doc = _mock_doc(0)
    res = _mock_result(doc)
    res.fields["total"].confidence = 1.5
    res.fields["date"].confidence = float("nan")
    run = evaluate_results([doc], [res], RECEIPT_SCHEMA, model="m", data="t")
    assert run.metrics["calibration"]["fields"]["total"]["mean_confidence"] == 1.0
    assert run.metrics["calibration"]["fields"]["date"]["mean_confidence"] == 0.0
    assert sum("outside [0, 1], clipped" in p for p in run.problems) == 2


def test_confidence_items_are_the_ones_training_and_benchmarks_use() -> None:
    docs = [_mock_doc(i) for i in range(3)]
    docs[2].gold["address"] = None                                  # type: ignore[index]
    results = [_mock_result(docs[0], wrong_total=True), _mock_result(docs[1])]
    blank = ExtractionResult("d2", "m", {**_mock_result(docs[2]).fields,
                                         "address": _fr("address", [], 0.7)})  # absent/absent
    lenient_only = _mock_result(docs[1])
    lenient_only.fields["company"] = _fr("company", ["shop 1 sdnbhd"], 0.9)
    results = [results[0], lenient_only, blank]
    run = evaluate_results(docs, results, RECEIPT_SCHEMA, model="m", data="t")
    items = confidence_items([d.gold or {} for d in docs], results, FIELDS)
    from_outcomes = {f: ([o.confidence for o in run.outcomes if o.field == f],
                         [o.strict_ok for o in run.outcomes if o.field == f]) for f in FIELDS}
    assert from_outcomes == items
    assert items["company"][1] == [True, False, True]               # strict: lenient-only is wrong
    assert items["address"] == ([0.8, 0.8, 0.7], [True, True, True])  # absent/absent counted
    ece = expected_calibration_error(*pool_items(items))
    assert run.metrics["calibration"]["overall"]["ece"] == pytest.approx(ece)
    # the benchmark's ECE (FieldScores) is the report's
    fs = score_results([d.gold or {} for d in docs], results)
    assert expected_calibration_error(fs.confidences, fs.correct) == pytest.approx(ece)
