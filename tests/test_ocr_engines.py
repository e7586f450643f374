"""The OCR engine interface (extractor/ocr/engines.py) and PP-OCRv6 (extractor/ocr/rapid.py).

Real rapidocr with the models inside its wheel, the network blocked: constructing and running
the engine must never try a download. A pass that fails is recorded and the page is read by the
other engine; the cache keeps engines apart.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from bad_inputs import FONT, text_page
from PIL import Image

from extractor.document import Word
from extractor.ocr import (
    DEFAULT_ENGINES,
    ENGINES_ENV,
    OcrCache,
    OcrConfig,
    OcrJob,
    RapidConfig,
    ReadOptions,
    cached_ocr,
    document_from_words,
    needs_orientation_check,
    passes_by_name,
    rapid,
    read_page,
    run_job,
)
from extractor.ocr import engines as ocr_engines

LINES = ["KVLOOP RECEIPT 2024", "INVOICE 12345", "TOTAL 60.30"]
PSM6 = OcrConfig("psm6", psm=6)
RAPID = RapidConfig()


@pytest.fixture(scope="module")
def page() -> Image.Image:
    if not Path(FONT).is_file():
        pytest.skip(f"{FONT} missing (Debian fonts-dejavu-core)")
    return text_page(LINES, (560, 222))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network, and rapidocr's downloader raising: a download attempt fails the test."""
    from rapidocr.utils import download_file

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("rapidocr tried to download a model")

    def no_connect(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(download_file.DownloadFile, "run", refuse)
    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rapid._engine.cache_clear()  # build the sessions under the block


def test_rapid_reads_with_the_bundled_models_offline(page: Image.Image, offline: None) -> None:
    params = rapid.engine_params(RAPID)
    models = rapid.models_dir()
    paths = [Path(v) for k, v in params.items() if k.endswith("model_path")]
    assert paths and all(p.parent == models and p.is_file() for p in paths)
    assert params["EngineConfig.onnxruntime.intra_op_num_threads"] == 1
    words = rapid.rapid_words(page, RAPID)
    texts = [w.text for w in words]
    # (DejaVu Sans Mono's dotted zero makes its O read as 0: words without an O are checked)
    for expected in ("RECEIPT", "2024", "12345", "TOTAL", "60.30"):
        assert expected in texts
    for w in words:
        x0, y0, x1, y1 = w.box
        assert 0 <= x0 < x1 <= page.width and 0 <= y0 < y1 <= page.height
        assert 0.0 <= w.confidence <= 1.0
    assert len({w.line for w in words}) == len(LINES)


def test_a_missing_model_is_an_error_not_a_download(offline: None) -> None:
    with pytest.raises(rapid.MissingModel, match="never downloads"):
        rapid.engine_params(RapidConfig(det_model="PP-OCRv6_det_medium.onnx"))


def test_the_fast_pass_reads_the_page_with_the_same_models(page: Image.Image,
                                                            offline: None) -> None:
    fast = passes_by_name("rapidocr-fast")[0]
    assert isinstance(fast, RapidConfig) and fast.name == "ppocrv6_fast"
    params = rapid.engine_params(fast)
    assert (params["Det.limit_type"], params["Det.limit_side_len"], params["Rec.rec_batch_num"]
            ) == ("max", 960, 1)
    assert params["Det.model_path"] == rapid.engine_params(RAPID)["Det.model_path"]
    texts = [w.text for w in rapid.rapid_words(page, fast)]
    for expected in ("RECEIPT", "2024", "12345", "TOTAL", "60.30"):
        assert expected in texts


def test_rapid_settings_are_checked_and_keyed() -> None:
    with pytest.raises(ValueError, match="det_limit must be 'min' or 'max'"):
        RapidConfig(det_limit="mid")
    with pytest.raises(ValueError, match="rec_batch must be >= 1"):
        RapidConfig(rec_batch=0)
    # pages cached before these settings existed keep their key; a change gets its own
    assert "det_limit" not in RAPID.key() and "rec_batch" not in RAPID.key()
    assert len({RAPID.key(), RapidConfig(det_limit="max").key(),
                RapidConfig(rec_batch=1).key()}) == 3


def test_pass_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [p.name for p in passes_by_name("rapidocr+psm6")] == ["ppocrv6", "psm6"]
    assert [p.name for p in passes_by_name("tesseract")] == [
        "psm6", "psm4_x2", "psm4", "psm6_adaptive", "psm6_x2"]
    assert len(passes_by_name("rapidocr,tesseract,psm6")) == 6  # a pass named twice is read once
    with pytest.raises(ValueError, match="unknown OCR engine or pass easyocr"):
        passes_by_name("rapidocr+easyocr")
    monkeypatch.delenv(ENGINES_ENV, raising=False)
    assert passes_by_name() == passes_by_name(DEFAULT_ENGINES)
    monkeypatch.setenv(ENGINES_ENV, "psm4")
    assert [p.name for p in passes_by_name("default")] == ["psm4"]


def test_cache_keeps_engines_apart(page: Image.Image, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cache = OcrCache(tmp_path)
    first = cached_ocr(page, RAPID, cache)
    tess = cached_ocr(page, PSM6, cache)
    assert len(list(tmp_path.rglob("*.json"))) == 2 and first != tess

    def no_engine(*args: object, **kwargs: object) -> None:
        raise AssertionError("the engine ran although the result was cached")

    monkeypatch.setattr(ocr_engines.RapidEngine, "read", no_engine)
    assert cached_ocr(page, RAPID, cache) == first
    with pytest.raises(AssertionError, match="engine ran"):  # other settings: another entry
        cached_ocr(page, RapidConfig(text_score=0.6), cache)


def test_a_failing_engine_costs_its_pass_only(page: Image.Image, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "page.png"
    page.save(path)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("onnxruntime: bad allocation")

    monkeypatch.setattr(ocr_engines.RapidEngine, "read", broken)
    passes = [RAPID, PSM6]
    out = run_job(OcrJob("p", str(path)), passes, None)
    assert out.error is None and list(out.words) == ["psm6"]
    assert "bad allocation" in out.failed["ppocrv6"]
    settings = out.settings(passes)
    assert settings["failed"] == out.failed and settings["engines"]["ppocrv6"] == "rapidocr"
    doc = document_from_words("p", out.words, passes, out.size, settings=settings)
    assert doc.ocr == "tesseract:psm6" and "60.30" in doc.text and not doc.variants
    assert doc.meta["ocr"]["failed"]["ppocrv6"].startswith("rapidocr failed (RuntimeError")

    monkeypatch.setattr(ocr_engines.TesseractEngine, "read", broken)
    out = run_job(OcrJob("p", str(path)), passes, None)
    assert out.error is not None and out.error.startswith("every OCR pass failed")
    assert "ppocrv6: rapidocr failed" in out.error and "psm6: tesseract failed" in out.error


def test_both_engines_read_a_page(page: Image.Image, tmp_path: Path) -> None:
    path = tmp_path / "page.png"
    page.save(path)
    passes = passes_by_name("rapidocr+psm6")
    out = read_page(OcrJob("p", str(path)), passes, None, ReadOptions())
    doc = document_from_words("p", out.words, passes, out.size, settings=out.settings(passes))
    assert doc.ocr == "rapidocr:ppocrv6" and list(doc.variants) == ["psm6"]
    assert doc.meta["ocr"]["engine"].startswith("rapidocr ") and "+ tesseract " in (
        doc.meta["ocr"]["engine"])
    assert "60.30" in doc.text and "60.30" in " ".join(w.text for w in doc.variants["psm6"])


def _word(text: str, box: tuple[int, int, int, int], conf: float = 0.99) -> Word:
    return Word(text, box, conf, 0)


def test_orientation_check_for_rapidocr_words() -> None:
    upright = [_word("TOTAL", (10, 10, 90, 30)), _word("60.30", (100, 10, 180, 30))]
    sideways = [_word("TOTAL", (10, 10, 30, 90)), _word("60.30", (10, 100, 30, 180))]
    assert not needs_orientation_check(upright, "rapidocr")
    assert needs_orientation_check(sideways, "rapidocr")
    assert needs_orientation_check([_word("T0TAI", (10, 10, 90, 30), 0.6)], "rapidocr")
    assert needs_orientation_check([], "rapidocr")


def test_one_option_chooses_the_engines(page: Image.Image, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from extractor.document import read_jsonl
    from kvloop.cli import main

    monkeypatch.setenv(ENGINES_ENV, "psm6")  # restored after --ocr-engines sets it
    monkeypatch.setenv("KVLOOP_CACHE", str(tmp_path / "cache"))
    page.save(tmp_path / "page.png")
    out = tmp_path / "docs.jsonl"
    assert main(["data", str(tmp_path / "page.png"), "--ocr-engines", "easyocr"]) == 2
    assert "--ocr-engines: unknown OCR engine or pass easyocr" in capsys.readouterr().err
    assert main(["ocr", str(tmp_path / "page.png"), "--out", str(out),
                 "--ocr-engines", "psm4+psm6"]) == 0
    (doc,) = read_jsonl(str(out))
    assert doc["ocr"] == "tesseract:psm4" and list(doc["variants"]) == ["psm6"]
    assert passes_by_name() == passes_by_name("psm4+psm6")  # and for what this process reads
