"""Synthetic demo receipts: seeded determinism, consistent amounts, gold readable by OCR."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from extractor.document import Document, read_jsonl
from extractor.normalize import lenient_key, parse_amount
from extractor.ocr import OcrConfig, ocr_image
from extractor.synth import demo as demo_mod
from extractor.synth import generate_demo, load_demo, make_receipt, render
from extractor.synth.demo import synth_receipt
from kvloop.cli import main as cli_main


def test_same_seed_same_image_and_gold() -> None:
    a_receipt, a_img = synth_receipt(7, 3)
    b_receipt, b_img = synth_receipt(7, 3)
    assert a_receipt.gold == b_receipt.gold
    assert a_img.tobytes() == b_img.tobytes() and a_img.size == b_img.size
    c_receipt, c_img = synth_receipt(8, 3)
    assert c_receipt.gold != a_receipt.gold or c_img.tobytes() != a_img.tobytes()


@pytest.mark.parametrize("seed", range(20))
def test_amounts_add_up_and_total_is_not_last(seed: int) -> None:
    r = make_receipt(random.Random(seed))
    assert set(r.gold) == {"company", "date", "address", "total"} and all(r.gold.values())
    assert r.total == pytest.approx(r.subtotal + r.tax + r.rounding, abs=1e-6)
    assert round(r.total * 20, 6) == round(r.total * 20)  # cash rounding to 0.05
    assert r.cash >= r.total and r.change == pytest.approx(r.cash - r.total, abs=1e-6)
    assert parse_amount(r.gold["total"]) == pytest.approx(r.total)
    assert r.gold["address"] == " ".join(r.address_lines)


@pytest.fixture(scope="module")
def demo_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    cache = tmp_path_factory.mktemp("ocr-cache")
    a, b = tmp_path_factory.mktemp("demo-a"), tmp_path_factory.mktemp("demo-b")
    report = generate_demo(a, n=3, seed=1, workers=1, cache_dir=cache, progress=False)
    generate_demo(b, n=3, seed=1, workers=1, cache_dir=cache, progress=False)
    return a, b, report


def test_generate_demo_is_byte_identical(demo_dirs) -> None:
    a, b, _ = demo_dirs
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".png"]) == 3
    assert {str(f) for f in files} >= {"documents.jsonl", "key/synth-0000.json",
                                       "img/synth-0002.png"}
    for f in files:
        if f.suffix != ".jsonl":
            assert (a / f).read_bytes() == (b / f).read_bytes(), f
    # documents.jsonl differs only in the absolute image paths it points to
    docs_a, docs_b = (list(read_jsonl(str(d / "documents.jsonl"))) for d in (a, b))
    assert [d.pop("source") for d in docs_a] == [str(a / "img" / f"synth-000{i}.png")
                                                 for i in range(3)]
    assert [d.pop("source") for d in docs_b] != []
    assert docs_a == docs_b


def test_demo_documents_carry_gold_readable_by_ocr(demo_dirs) -> None:
    a, _, report = demo_dirs
    assert not report.failures
    docs = [Document.from_dict(d) for d in read_jsonl(str(a / "documents.jsonl"))]
    assert [d.id for d in docs] == ["synth-0000", "synth-0001", "synth-0002"]
    found = total = 0
    for d in docs:
        assert d.gold == json.loads((a / "key" / f"{d.id}.json").read_text())
        assert d.meta["synthetic"] and d.width > 300 and d.height > 300
        text = lenient_key(d.text)
        for value in d.gold.values():
            total += 1
            found += lenient_key(value) in text
    assert found / total >= 0.75, f"only {found}/{total} gold values readable"


def test_load_demo_generates_once_then_reads(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVLOOP_CACHE", str(tmp_path / "kv"))
    first = load_demo(n=1, seed=2, cache_dir=tmp_path / "demo", progress=False)
    assert len(first.documents) == 1 and first.documents[0].gold

    def no_regeneration(*args: object, **kwargs: object) -> None:
        raise AssertionError("demo regenerated although documents.jsonl exists")

    monkeypatch.setattr(demo_mod, "generate_demo", no_regeneration)
    again = load_demo(n=1, seed=2, cache_dir=tmp_path / "demo", progress=False)
    assert [d.export() for d in again.documents] == [d.export() for d in first.documents]


def test_missing_fonts_fail_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "FONT_ROOT", tmp_path)
    render.available_fonts.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="fonts-dejavu-core"):
            render.available_fonts()
    finally:
        render.available_fonts.cache_clear()


def test_cli_demo_data_rejects_bad_n(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli_main(["demo-data", "--out", str(tmp_path), "--n", "0"]) == 2
    assert "--n" in capsys.readouterr().err


def test_invoice_template_is_readable_and_unknown_template_fails() -> None:
    receipt, img = next(r for r in (synth_receipt(0, i) for i in range(40))
                        if r[0].extra["template"] == "invoice")
    text = lenient_key(" ".join(w.text for w in ocr_image(img, OcrConfig("psm6", psm=6))))
    found = sum(lenient_key(v) in text for v in receipt.gold.values() if v)
    assert found >= 3, (receipt.gold, text)
    with pytest.raises(ValueError, match="unknown synthetic template"):
        render.render_receipt(receipt, random.Random(0), "letter")


def test_cli_demo_data_writes_the_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KVLOOP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert cli_main(["demo-data", "--out", str(out), "--n", "1", "--seed", "4",
                     "--workers", "1"]) == 0
    doc = Document.from_dict(next(read_jsonl(str(out / "documents.jsonl"))))
    assert doc.id == "synth-0000" and doc.words and doc.meta["seed"] == 4
    assert doc.gold == json.loads((out / "key" / "synth-0000.json").read_text())
    assert (out / "img" / "synth-0000.png").is_file()
