"""Every page of every format: decoding to 8 bits, frames as pages, PDF text layers.

Unit tests on small arrays and PDFs made here, then the corpus of ``tests/format_corpus.py``
through ``kvloop data``, ``kvloop extract`` (a tiny random model), the review UI's uploads and
``kvloop extract --engine ray``: every page of every file gives a document or a record naming
the file and the real reason, never neither; text-layer pages say so and take the provided-OCR
decision profile.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import test_bad_input
from bad_inputs import FONT, LINES, Expect, text_page
from format_corpus import KINDS, NOTES, TESSERACT, garbage_words, write_formats
from PIL import Image
from test_bad_input import check_records, read_ids, records

from extractor.document import TEXT_LAYER_OCR, Document, Word, read_jsonl, write_jsonl
from extractor.ocr import (
    ImageFrames,
    TextLayer,
    image_frames,
    open_image,
    read_text_layer,
    readable_share,
    sniff_format,
    to_8bit,
)
from extractor.ocr.textlayer import judge
from kvloop.cli import main

# -- decoding to 8 bits --------------------------------------------------------------------------


def _ink_and_paper(img: Image.Image) -> tuple[int, int]:
    a = np.asarray(img.convert("L"))
    return int(a[5:15, 5:15].mean()), int(a[:4, :4].mean())


def _page(dtype: str, paper: float, ink: float) -> Image.Image:
    a = np.full((20, 30), paper, dtype=dtype)
    a[5:15, 5:15] = ink
    return Image.fromarray(a)


@pytest.mark.parametrize(("dtype", "paper", "ink"), [
    ("uint16", 52000, 9000),  # a 16-bit scan: clipping at 255 would make all of it white
    ("uint16", 900, 300),  # a 12-bit sensor's range used in part
    ("float32", 0.92, 0.08),
    ("int32", 3_000_000, 100_000),
])
def test_deep_grayscale_is_stretched_over_its_real_range(dtype: str, paper: float,
                                                         ink: float) -> None:
    out = to_8bit(_page(dtype, paper, ink))
    assert out.mode == "L" and _ink_and_paper(out) == (0, 255)


def test_a_flat_or_non_finite_deep_page_is_blank_paper() -> None:
    assert _ink_and_paper(to_8bit(_page("uint16", 7, 7))) == (255, 255)
    nan = _page("float32", 0.9, 0.1)
    nan.putpixel((0, 0), float("nan"))
    assert np.asarray(to_8bit(nan))[0, 0] == 255


def test_alpha_is_paper_whatever_colour_the_transparent_pixels_hold() -> None:
    rgba = Image.new("RGBA", (30, 20), (0, 0, 0, 0))  # transparent black
    rgba.paste((10, 10, 10, 255), (5, 5, 15, 15))
    out = to_8bit(rgba)
    assert out.mode == "RGB" and _ink_and_paper(out) == (10, 255)
    la = rgba.convert("LA")
    assert to_8bit(la).mode == "L" and _ink_and_paper(to_8bit(la)) == (10, 255)
    pal = rgba.convert("P")
    pal.info["transparency"] = pal.getpixel((0, 0))
    assert _ink_and_paper(to_8bit(pal)) == (10, 255)


@pytest.mark.parametrize("mode", ["1", "P", "CMYK", "YCbCr", "L", "RGB"])
def test_other_modes_become_gray_or_rgb(mode: str) -> None:
    img = _page("uint8", 255, 0).convert(mode)
    out = to_8bit(img)
    assert out.mode in ("L", "RGB") and _ink_and_paper(out) == (0, 255)


def test_frames_of_a_tiff_are_pages_and_an_animation_is_its_first_frame(tmp_path: Path) -> None:
    pages = [_page("uint8", 255, v) for v in (0, 60, 120)]
    pages[0].save(tmp_path / "p.tif", save_all=True, append_images=pages[1:])
    assert image_frames(tmp_path / "p.tif") == ImageFrames(3)
    for frame, ink in enumerate((0, 60, 120)):
        assert _ink_and_paper(open_image(tmp_path / "p.tif", frame=frame)) == (ink, 255)
    with pytest.raises(ValueError, match="has no frame 4"):
        open_image(tmp_path / "p.tif", frame=3)
    pages[0].save(tmp_path / "a.gif", save_all=True, append_images=pages[1:], duration=100)
    assert image_frames(tmp_path / "a.gif") == ImageFrames(
        0, "animated GIF of 3 frames: only the first frame is read")
    pages[0].convert("RGB").save(tmp_path / "a.webp", save_all=True,
                                 append_images=[p.convert("RGB") for p in pages[1:]],
                                 duration=100, lossless=True)
    assert image_frames(tmp_path / "a.webp").note == (
        "animated WebP of 3 frames: only the first frame is read")
    assert _ink_and_paper(open_image(tmp_path / "a.webp")) == (0, 255)
    pages[0].save(tmp_path / "one.tif")
    assert image_frames(tmp_path / "one.tif") == ImageFrames(0)
    (tmp_path / "junk.tif").write_bytes(b"junk")
    assert image_frames(tmp_path / "junk.tif") == ImageFrames(0)  # its read names the problem


def test_exif_orientation_is_applied_before_anything_else(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    _page("uint16", 52000, 9000).transpose(Image.Transpose.ROTATE_90).save(
        tmp_path / "r.png", exif=exif)
    out = open_image(tmp_path / "r.png")
    assert out.size == (30, 20) and _ink_and_paper(out) == (0, 255)


@pytest.mark.parametrize(("head", "name"), [
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC/HEIF"),
    (b"\x00\x00\x00\x18ftypavif", "AVIF"),
    (b"AT&TFORM\x00\x00", "DjVu"),
    (b"%PDF-1.7\n", "PDF"),
    (b"PK\x03\x04rest", "ZIP"),
    (b'<?xml version="1.0"?>\n<svg xmlns="x">', "SVG"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
])
def test_formats_pil_cannot_decode_are_named(head: bytes, name: str) -> None:
    assert name in (sniff_format(head) or "")


def test_an_image_pil_knows_is_not_sniffed() -> None:
    buf = io.BytesIO()
    _page("uint8", 255, 0).save(buf, "PNG")
    assert sniff_format(buf.getvalue()) is None and sniff_format(b"hello") is None


# -- PDF text layers ---------------------------------------------------------------------------

def _layer(texts: list[str], invisible: float = 0.0) -> TextLayer:
    words = [Word(t, (0, 0, 1, 1)) for t in texts]
    return judge(TextLayer(words, (10, 10), 72, sum(map(len, texts)), invisible,
                           readable_share(texts)))


def test_readable_words_are_dictionary_words_and_numbers() -> None:
    assert readable_share(["TOTAL", "42.50", "RM12.00", "12/03/2018", "(1.00)", "Tax:"]) == 1
    assert readable_share(["|", "~~", "xq7Zr", "l1I;"]) == 0
    assert readable_share([]) == 0


def test_the_text_layer_rule() -> None:
    receipt = LINES[0].split() + LINES[2].split() + LINES[5].split()
    assert _layer(receipt).usable  # visible words of a receipt
    assert _layer(receipt, invisible=1.0).usable  # a good OCR layer is kept
    garbage = " ".join(garbage_words(6)).split()
    assert not _layer(garbage).usable  # a broken encoding or garbage
    assert "invisible" in _layer(garbage, invisible=1.0).reason
    assert not _layer(garbage, invisible=1.0).usable
    mediocre = ["TOTAL", "42.50", "DATE", "xq7Zr", "l1I;", "Sa"]  # half readable
    assert _layer(mediocre).usable and not _layer(mediocre, invisible=1.0).usable
    assert _layer([]).reason == "no text layer" and not _layer([]).usable


def test_text_layer_boxes_are_pixels_of_the_rendered_page_turned_as_shown(tmp_path: Path
                                                                         ) -> None:
    from extractor.ocr import import_pymupdf, render_pdf_page

    pymupdf = import_pymupdf()
    pdf = pymupdf.open()
    page = pdf.new_page(width=360, height=200)
    page.insert_text((20, 40), "TOTAL 42.50", fontsize=18, fontname="cour")
    page.set_rotation(90)
    pdf.save(tmp_path / "r.pdf")
    layer = read_text_layer(tmp_path / "r.pdf", 1, dpi=144)
    img, dpi = render_pdf_page(tmp_path / "r.pdf", 1, 144)
    assert layer.usable and dpi == layer.dpi == 144 and layer.size == img.size == (400, 720)
    assert [w.text for w in layer.words] == ["TOTAL", "42.50"]
    ink = np.asarray(img) < 128
    for w in layer.words:  # each box holds ink of the rendered page, turned 90 degrees
        x0, y0, x1, y1 = w.box
        assert x1 - x0 < y1 - y0 and ink[y0:y1, x0:x1].mean() > 0.05


# -- decisions and eval: text-layer pages are their own input kind ------------------------------

def test_text_layer_pages_take_the_provided_words_profile() -> None:
    from extractor.model.calibrate import DecisionProfile
    from extractor.model.predictor import KVPredictor
    from extractor.model.zoo import build_model

    default, tess, provided = (DecisionProfile(absent_threshold=t) for t in (0.5, 0.3, 0.7))
    page = Document("p", [], 10, 10, ocr=TEXT_LAYER_OCR)
    model = build_model("tiny", seed=0)
    assert KVPredictor(model, default, ocr_profiles={"tesseract": tess}).profile(page) is default
    both = KVPredictor(model, default, ocr_profiles={"tesseract": tess, "provided": provided})
    assert both.profile(page) is provided
    assert both.profile(Document("t", [], 10, 10, ocr="tesseract:psm6")) is tess


def test_eval_scores_each_input_kind_apart() -> None:
    from eval.run import Dataset, split_input_kinds

    docs = [Document(f"d{i}", [], 10, 10, ocr=o)
            for i, o in enumerate([TEXT_LAYER_OCR, "tesseract:psm6", TEXT_LAYER_OCR])]
    ds = Dataset("provided", docs, {d.id: [] for d in docs}, ["a problem"])
    split = split_input_kinds({"provided": ds})
    assert {k: [d.id for d in v.docs] for k, v in split.items()} == {
        "pdf-text": ["d0", "d2"], "tesseract": ["d1"]}
    assert sum(len(v.problems) for v in split.values()) == 1
    both = split_input_kinds({"provided": ds, "tesseract": Dataset("tesseract", docs[1:2], {}, [])})
    assert set(both) == {"provided/pdf-text", "provided/tesseract", "tesseract"}
    plain = Dataset("provided", [Document("x", [], 1, 1)], {}, [])
    assert split_input_kinds({"provided": plain}) == {"provided": plain}


def test_kvloop_eval_reports_text_layer_pages_as_their_own_input_kind(model_dir, tmp_path
                                                                      ) -> None:
    docs = [Document(f"d{i}", [Word(t, (10 * j, 5, 10 * j + 8, 15), 1.0, 0)
                               for j, t in enumerate(["SHOP", "TOTAL", f"{i}.50"])], 200, 40,
                     ocr=TEXT_LAYER_OCR if i % 2 else TESSERACT,
                     gold={"company": "SHOP", "total": f"{i}.50"}) for i in range(4)]
    data = tmp_path / "docs.jsonl"
    write_jsonl(str(data), docs)
    for how in (["--model", str(model_dir)], ["--results", "RESULTS"]):
        out = tmp_path / how[0].strip("-")
        if how[0] == "--results":  # the model run's predictions of both kinds, in one file
            rows = [r for f in sorted((tmp_path / "model").glob("results-*.jsonl"))
                    for r in read_jsonl(str(f))]
            write_jsonl(str(tmp_path / "all.jsonl"), rows)
            how = ["--results", str(tmp_path / "all.jsonl")]
        assert main(["eval", *how, "--data", str(data), "--split", "all", "--out", str(out),
                     "--n-boot", "20"]) == 0
        report = json.loads((out / "report.json").read_text())
        runs = {r["ocr"]: r["metrics"]["n_docs"] for r in report["runs"]}
        assert runs == {"pdf-text": 2, "tesseract": 2}, how
        assert not report["meta"]["load_failures"]


# -- the corpus through the commands ------------------------------------------------------------

# test_bad_input's fixtures: a tiny random model, and one OCR cache for the module
model_dir = test_bad_input.model_dir
ocr_cache = test_bad_input.ocr_cache


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Expect]]:
    if not Path(FONT).is_file():
        pytest.skip(f"{FONT} missing (Debian fonts-dejavu-core)")
    folder = tmp_path_factory.mktemp("formats")
    return folder, write_formats(folder)


def _text(words: list[dict]) -> str:
    return " ".join(w["text"] for w in words)


@pytest.mark.slow
def test_data_reads_every_page_of_every_format(corpus, tmp_path, capsys) -> None:
    folder, expects = corpus
    out = tmp_path / "docs.jsonl"
    assert main(["data", str(folder), "--out", str(out)]) == 1
    check_records(records(capsys.readouterr().err, folder), expects)
    docs = {d["id"]: d for d in read_jsonl(str(out))}
    assert set(docs) == read_ids(expects)
    assert {i: d["ocr"] for i, d in docs.items()} == KINDS
    for i in ("gray16", "float32", "int32", "scanner-p3"):  # the last lines, read as text
        assert "TOTAL 42.50" in _text(docs[i]["words"]), i
    for i in ("bilevel", "palette", "rgba", "cmyk", "exif-rotated", "good-ocr-layer-p1"):
        assert "DATE 12/03/2018" in _text(docs[i]["words"]), i
    assert "rotation" not in docs["exif-rotated"]["meta"]["ocr"]  # EXIF turned it upright
    assert _text(docs["fax-p2"]["words"]) == " ".join(LINES[2:4])
    assert _text(docs["born-digital-p2"]["words"]) == " ".join(LINES[2:4])  # exact
    for i, note in NOTES.items():
        assert docs[i]["meta"]["ocr"]["note"] == note
    layer = docs["garbage-ocr-layer-p1"]["meta"]["ocr"]["text_layer"]
    assert not layer["used"] and layer["invisible"] == 1.0 and "invisible" in layer["reason"]
    assert docs["scanned-p1"]["meta"]["ocr"]["text_layer"]["reason"] == "no text layer"
    text_page_ = docs["born-digital-p1"]
    assert text_page_["meta"]["ocr"]["engine"] == TEXT_LAYER_OCR and not text_page_["variants"]
    assert (text_page_["width"], text_page_["height"]) == (1000, 556)  # 360 x 200 pt, 200 dpi


@pytest.mark.slow
def test_asking_for_tesseract_ocrs_text_pages_too(corpus, tmp_path, capsys) -> None:
    folder, _ = corpus
    out = tmp_path / "docs.jsonl"
    assert main(["data", str(folder / "born-digital.pdf"), "--ocr", "tesseract",
                 "--out", str(out)]) == 0
    docs = list(read_jsonl(str(out)))
    assert [d["ocr"] for d in docs] == [TESSERACT] * 2 and all(d["variants"] for d in docs)
    for extra, kind in (([], TEXT_LAYER_OCR), (["--no-text-layer"], TESSERACT)):
        assert main(["ocr", str(folder / "mixed.pdf"), "--out", str(out), *extra]) == 0
        assert [d["ocr"] for d in read_jsonl(str(out))] == [kind, TESSERACT]


@pytest.mark.slow
def test_extract_gives_every_page_a_line_or_a_record(corpus, model_dir, tmp_path,
                                                     capsys) -> None:
    folder, expects = corpus
    out = tmp_path / "results.jsonl"
    assert main(["extract", str(model_dir), str(folder), "--out", str(out), "--device", "cpu",
                 "--threads", "1"]) == 1
    check_records(records(capsys.readouterr().err, folder), expects)
    lines = {r["doc_id"]: r for r in read_jsonl(str(out))}
    assert set(lines) == read_ids(expects)
    assert {i: r["ocr"]["words"] for i, r in lines.items()} == KINDS
    assert lines["animated"]["ocr"]["note"] == NOTES["animated"]
    assert lines["born-digital-p1"]["ocr"]["text_layer"]["used"]


def test_an_upload_of_more_frames_than_pages_allowed_is_refused() -> None:
    from feedback_ui.imaging import MAX_PDF_PAGES, pixel_problem

    def tiff(n: int) -> bytes:
        buf = io.BytesIO()
        page = _page("uint8", 255, 0)
        page.save(buf, "TIFF", save_all=True, append_images=[page] * (n - 1))
        return buf.getvalue()

    assert pixel_problem(tiff(MAX_PDF_PAGES), ".tif") is None
    assert pixel_problem(tiff(MAX_PDF_PAGES + 1), ".tif") == (
        f"the TIFF file has {MAX_PDF_PAGES + 1} pages; at most {MAX_PDF_PAGES} per upload")


@pytest.mark.slow
def test_uploads_read_every_page_or_name_the_reason(corpus, tmp_path) -> None:
    from extractor.model.predictor import load_predictor
    from extractor.model.zoo import build_model
    from feedback_ui.ingest import Uploader
    from feedback_ui.routing import RoutingConfig
    from feedback_ui.service import ReviewService
    from feedback_ui.store import FeedbackStore

    folder, expects = corpus
    build_model("tiny", seed=0).save_pretrained(tmp_path / "model")
    uploader = Uploader(load_predictor(tmp_path / "model"), tmp_path / "uploads",
                        ocr_cache=None)
    svc = ReviewService(FeedbackStore(tmp_path / "f.db"), routing=RoutingConfig(0.0))
    report = uploader.ingest(svc, [(e.name, (folder / e.name).read_bytes()) for e in expects])
    failures = dict(report.failures)
    assert set(failures) == {e.name for e in expects if e.fails}
    assert "unsupported file type .heic" in failures["iphone.heic"]
    assert "unsupported file type .svg" in failures["drawing.svg"]
    assert "the file is SVG" in failures["drawing-named.png"]
    # ids are <stem>-<content hash>[-p<page>]: each page of each good file is in the store,
    # or named as the same page (same words and boxes) as one stored before it
    pages = report.added + [s.split(" (the same page as ")[0] for s in report.skipped]
    assert all(" (the same page as " in s for s in report.skipped)
    added = [i.rsplit("-p", 1)[0] if i.count("-") > 1 and "-p" in i[-4:] else i
             for i in pages]
    assert len(pages) == len(read_ids(expects))
    for e in expects:
        if not e.fails:
            stem = Path(e.name).stem
            mine = [a for a in added if a.startswith(f"{stem}-")]
            assert len(mine) == len(e.ids), e.name
    text_doc = next(svc.store.get_document(i) for i in report.added
                    if i.startswith("born-digital-") and i.endswith("-p1"))
    assert text_doc.ocr == TEXT_LAYER_OCR and text_doc.text == " ".join(LINES[:2])


@pytest.mark.slow
def test_ray_reads_the_corpus_as_the_local_engine_does(corpus, model_dir, tmp_path,
                                                       capsys) -> None:
    pytest.importorskip("ray.data")
    folder, expects = corpus
    outs = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.jsonl"
        extra = ["--engine", "ray", "--ray-cpus", "2"] if engine == "ray" else []
        assert main(["extract", str(model_dir), str(folder), "--out", str(out), "--device",
                     "cpu", "--threads", "1", *extra]) == 1
        check_records(records(capsys.readouterr().err, folder), expects)
        outs[engine] = {r["doc_id"]: json.dumps({k: v for k, v in r.items()
                                                 if k != "created_at"}, sort_keys=True)
                        for r in read_jsonl(str(out))}
    assert set(outs["ray"]) == read_ids(expects)
    assert outs["ray"] == outs["local"]


def test_a_page_of_each_kind_keeps_its_words_through_export() -> None:
    page = Document("p", [Word("TOTAL", (1, 2, 3, 4))], 10, 10, ocr=TEXT_LAYER_OCR,
                    meta={"ocr": {"engine": TEXT_LAYER_OCR}})
    assert Document.from_dict(json.loads(json.dumps(page.export()))) == page
    assert text_page().mode == "L"
