"""``kvloop eval`` end to end with engineer C's tiny random-config model (no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extractor.document import (
    RECEIPT_SCHEMA,
    Document,
    ExtractionResult,
    Word,
    read_jsonl,
    write_jsonl,
)
from extractor.normalize import strict_key
from kvloop.cli import main


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> list[str]:
    from extractor.model.zoo import build_model

    out = []
    for seed in (0, 1):
        d = tmp_path_factory.mktemp(f"tiny{seed}")
        build_model("tiny", seed=seed).save_pretrained(d)
        out.append(str(d))
    return out


def _strict_counts(results_path: Path, gold: dict[str, dict]) -> tuple[int, int, int]:
    """Task-3 counts recomputed straight from a results file (independent of eval.metrics)."""
    tp = fp = fn = 0
    for row in read_jsonl(str(results_path)):
        r = ExtractionResult.from_dict(row)
        for f in RECEIPT_SCHEMA.field_names:
            g = strict_key(gold[r.doc_id].get(f))
            p = strict_key(r.fields[f].value) if f in r.fields else ""
            tp += bool(g and p and g == p)
            fp += bool(p and (not g or g != p))
            fn += bool(g and g != p)
    return tp, fp, fn


def test_two_models_on_sroie(tiny_models, sroie_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "rep"
    rc = main(["eval", "--model", tiny_models[0], "--model", tiny_models[1], "--data",
               str(sroie_dir), "--split", "dev", "--limit", "4", "--out", str(out),
               "--n-boot", "100", "--gallery", "3"])
    assert rc == 0
    assert "report:" in capsys.readouterr().out
    data = json.loads((out / "report.json").read_text())
    assert len(data["runs"]) == 2 and len(data["comparisons"]) == 1
    assert data["meta"]["split"] == "dev" and data["runs"][0]["data"] == "sroie/dev"
    timing = data["meta"]["timing"]
    assert timing["inference"] > 0 and timing["total"] >= timing["report"] > 0
    results = sorted(out.glob("results-*-provided.jsonl"))
    assert len(results) == 2
    gold = {}
    for p in sorted((sroie_dir / "key").glob("*.json")):
        gold[p.stem] = json.loads(p.read_text())
    for run in data["runs"]:
        m = run["metrics"]
        assert m["n_docs"] == 4
        path = out / f"results-{run['model'].replace('@', '_')}-provided.jsonl"
        s = m["strict"]["overall"]
        assert (s["tp"], s["fp"], s["fn"]) == _strict_counts(path, gold)
        # BIO tags came from the model's word_tags: seqeval saw all four documents
        assert m["bio"]["docs"] == 4
        assert set(m["oracle_recall"]["overall"]) == {"@1", "@2", "@3", "@4", "@5"}
        assert len(run["problems"]) == 0
    html = (out / "report.html").read_text()
    assert "Differences between runs" in html and "sroie/dev" in html
    assert (out / "summary.md").read_text().startswith("# kvloop evaluation: sroie/dev")


def test_results_file_round_trip(tiny_models, tmp_path: Path) -> None:
    """Predictions saved by a model run and re-read with --results give the same numbers."""
    docs = [Document(f"x{i}", [Word(t, (10 * j, 5, 10 * j + 8, 15), 1.0, 0)
                               for j, t in enumerate(["SHOP", "TOTAL", f"{i}.50", "DATE",
                                                      "01/02/2019"])],
                     200, 40, gold={"company": "SHOP", "total": f"{i}.50", "date": "01/02/2019",
                                    "address": None})
            for i in range(3)]
    docs.append(Document("blank", [], 200, 40, gold={"total": "1.00"}))   # no words at all
    docs.append(Document("nogold", docs[0].words, 200, 40))
    data = tmp_path / "docs.jsonl"
    write_jsonl(str(data), docs)
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["eval", "--model", tiny_models[0], "--data", str(data), "--split", "all",
                 "--out", str(a), "--n-boot", "50"]) == 0
    res = next(a.glob("results-*.jsonl"))
    assert main(["eval", "--results", str(res), "--data", str(data), "--split", "all",
                 "--out", str(b), "--n-boot", "50"]) == 0
    ja, jb = (json.loads((d / "report.json").read_text()) for d in (a, b))
    for key in ("strict", "lenient", "edit_similarity", "oracle_recall", "calibration"):
        assert ja["runs"][0]["metrics"][key] == jb["runs"][0]["metrics"][key]
    assert ja["runs"][0]["model"] == jb["runs"][0]["model"]
    assert any("nogold: no gold values" in p for p in ja["meta"]["load_failures"])
    assert ja["runs"][0]["metrics"]["n_docs"] == 4
    assert ja["runs"][0]["metrics"]["strict"]["fields"]["total"]["fn"] >= 1   # the blank page


def test_bad_inputs_name_the_file(tmp_path: Path, capsys) -> None:
    docs = tmp_path / "docs.jsonl"
    write_jsonl(str(docs), [Document("d", [Word("A", (0, 0, 5, 5))], 10, 10,
                                     gold={"total": "1"})])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"doc_id": "d", "model_version": "m", "fields": {}}\n{not json\n')
    assert main(["eval", "--results", str(bad), "--data", str(docs), "--split", "all",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2" in err and "not valid JSON" in err
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"doc_id": "d"}\n')
    assert main(["eval", "--results", str(wrong), "--data", str(docs), "--split", "all",
                 "--out", str(tmp_path / "o")]) == 2
    assert "record 1 is not an extraction result" in capsys.readouterr().err
    assert main(["eval", "--results", str(wrong), "--data", str(docs), "--ocr", "both",
                 "--out", str(tmp_path / "o")]) == 2
    assert "--ocr both needs --model" in capsys.readouterr().err
    assert main(["eval", "--results", str(tmp_path / "missing.jsonl"), "--data", str(docs),
                 "--out", str(tmp_path / "o")]) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err
    good = tmp_path / "good.jsonl"
    good.write_text('{"doc_id": "d", "model_version": "m", "fields": {}}\n')
    assert main(["eval", "--results", str(good), "--data", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "nowhere" in capsys.readouterr().err


@pytest.mark.slow
def test_ocr_both_side_by_side(tiny_models, sroie_dir: Path, tmp_path: Path) -> None:
    """Provided OCR and the page images read by the OCR engines (the suite's: psm6), side by
    side, with the OCR effect and its CI."""
    out = tmp_path / "both"
    assert main(["eval", "--model", tiny_models[0], "--data", str(sroie_dir), "--ocr", "both",
                 "--limit", "2", "--out", str(out), "--n-boot", "50", "--gallery", "2"]) == 0
    data = json.loads((out / "report.json").read_text())
    assert [r["ocr"] for r in data["runs"]] == ["provided", "images"]
    assert all(r["metrics"]["n_docs"] == 2 for r in data["runs"])
    (cmp,) = data["comparisons"]
    assert (cmp["ocr_a"], cmp["ocr_b"], cmp["n_docs"]) == ("provided", "images", 2)
    assert "OCR effect: provided OCR vs page images" in (out / "report.html").read_text()
    assert (out / f"results-{data['runs'][0]['model'].replace('@', '_')}-images.jsonl"
            ).is_file()


def test_not_a_model_dir(tmp_path: Path, capsys) -> None:
    docs = tmp_path / "docs.jsonl"
    write_jsonl(str(docs), [Document("d", [Word("A", (0, 0, 5, 5))], 10, 10,
                                     gold={"total": "1"})])
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    assert main(["eval", "--model", str(empty), "--data", str(docs), "--split", "all",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "not-a-model" in err and "cannot load the model" in err
