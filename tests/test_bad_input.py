"""The hostile corpus (tests/bad_inputs.py) through `kvloop data` and `kvloop extract`.

Real tesseract, real files: every bad file gets exactly one failure record naming it and the
reason, every good one its documents, the exit status says that something failed (and
``--allow-partial`` makes that a success), pages have a time limit, memory stays bounded and
the death of an OCR worker costs at most its own page.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bad_inputs import (
    BOMB,
    FONT,
    Expect,
    text_page,
    write_jsonl,
    write_labelstudio_other,
    write_scans,
    write_sroie,
)

from extractor.document import TEXT_LAYER_OCR, read_jsonl
from extractor.ocr import OcrConfig, OcrJob, ReadOptions, image_size, iter_ocr, open_image, run_job
from kvloop.cli import main

pytestmark = pytest.mark.slow

_FAILED = re.compile(r"^\s+FAILED (?:to (?:load|extract) )?(.+?): (.+)$")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[Expect]]]:
    if not Path(FONT).is_file():
        pytest.skip(f"{FONT} missing (Debian fonts-dejavu-core)")
    root = tmp_path_factory.mktemp("corpus")
    return {"scans": (root / "scans", write_scans(root / "scans")),
            "sroie": (root / "sroie", write_sroie(root / "sroie")),
            "jsonl": (root / "docs.jsonl", write_jsonl(root / "docs.jsonl")),
            "labelstudio": (root / "ls.json", write_labelstudio_other(root / "ls.json"))}


@pytest.fixture(scope="module", autouse=True)
def ocr_cache(tmp_path_factory: pytest.TempPathFactory):
    """One OCR cache for the module, so `data` and `extract` read each page once."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KVLOOP_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from extractor.model.zoo import build_model

    d = tmp_path_factory.mktemp("model") / "tiny"
    build_model("tiny", seed=0).save_pretrained(d)
    return d


def records(stderr: str, base: Path) -> dict[str, list[str]]:
    """Failure records by file: the path relative to ``base`` (PDF page and row numbers cut)."""
    out: dict[str, list[str]] = {}
    prefix = f"{base}/" if base.is_dir() else f"{base.parent}/"
    for line in stderr.splitlines():
        m = _FAILED.match(line)
        if m:
            path = m.group(1).removeprefix(prefix)
            path = re.sub(r" \(page \d+\)$", "", path)
            if not path.endswith(".jsonl") and ".jsonl:" not in path:
                path = re.sub(r":\d+$", "", path)  # box file row, not JSONL line
            out.setdefault(path, []).append(m.group(2))
    return out


def check_records(got: dict[str, list[str]], expects: list[Expect]) -> None:
    bad = {e.name: e for e in expects if e.fails}
    assert set(got) == set(bad), f"records for {sorted(got)}, expected {sorted(bad)}"
    for name, reasons in got.items():
        assert len(reasons) == 1, f"{name}: {len(reasons)} records {reasons}"
        assert bad[name].reason in reasons[0], f"{name}: {reasons[0]!r}"


def read_ids(expects: list[Expect]) -> set[str]:
    return {i for e in expects for i in e.ids}


# -- kvloop data ---------------------------------------------------------------------------------

def test_data_gives_each_bad_scan_one_record_and_reads_the_rest(corpus, tmp_path, capsys):
    scans, expects = corpus["scans"]
    out = tmp_path / "docs.jsonl"
    assert main(["data", str(scans), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    check_records(records(err, scans), expects)
    assert "failed: exit status 1 (--allow-partial" in err
    docs = {d["id"]: d for d in read_jsonl(str(out))}
    assert set(docs) == read_ids(expects)
    upright = docs["rotated"]
    assert upright["meta"]["ocr"]["rotation"] == 270  # turned back from 90 degrees
    assert "TOTAL 42.50" in " ".join(w["text"] for w in upright["words"])
    assert (upright["width"], upright["height"]) == (720, 330)
    huge = docs["huge"]
    assert huge["meta"]["ocr"]["scale"] == 0.5 and huge["width"] == 8944 // 2
    assert "42.50" in " ".join(w["text"] for w in huge["words"])
    for d in docs.values():  # every page says how it was read: its PDF text, or tesseract
        if d["id"] in ("scan-p1", "multipage-p1", "multipage-p2", "multipage-p3"):
            assert d["ocr"] == d["meta"]["ocr"]["engine"] == "pdf-text"
            assert d["meta"]["ocr"]["text_layer"]["used"]
        else:
            assert d["meta"]["ocr"]["engine"].startswith("tesseract ")
            assert "psm6" in d["meta"]["ocr"]["passes"]
    assert docs["animated"]["meta"]["ocr"]["note"] == (
        "animated GIF of 2 frames: only the first frame is read")


def test_data_on_sroie_jsonl_and_labelstudio(corpus, tmp_path, capsys):
    for kind in ("sroie", "jsonl", "labelstudio"):
        spec, expects = corpus[kind]
        out = tmp_path / f"{kind}.jsonl"
        assert main(["data", str(spec), "--out", str(out)]) == 1, kind
        err = capsys.readouterr().err
        check_records(records(err, spec), expects)
        assert {d["id"] for d in read_jsonl(str(out))} == read_ids(expects), kind
    spec, _ = corpus["sroie"]
    assert main(["data", str(spec), "--allow-partial"]) == 0
    assert "failure(s) accepted (--allow-partial)" in capsys.readouterr().err
    spec, _ = corpus["labelstudio"]  # nothing read: --allow-partial cannot make it a success
    assert main(["data", str(spec), "--allow-partial"]) == 1
    assert "no document could be read" in capsys.readouterr().err


def test_train_names_each_bad_file_once_and_says_so_in_its_exit_status(corpus, tmp_path,
                                                                        capsys, caplog):
    """`kvloop train` skips the bad files of every split it loads, trains on the rest, and
    ends with one record per bad file and exit 1 (0 with --allow-partial)."""
    spec, expects = corpus["sroie"]
    model = tmp_path / "model"
    argv = ["train", "base", "--data", str(spec), "--train-split", "all", "--dev-split", "all",
            "--calib-split", "all", "--arch", "tiny", "--epochs", "1", "--ocr-mix", "0",
            "--no-tesseract-profile", "--out", str(model)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert f"saved {model}" in captured.out and (model / "kvloop.json").is_file()
    check_records(records(captured.err, spec), expects)  # once each, over three split loads
    assert "4 data file(s) could not be read and were skipped" in captured.err
    assert "failed: exit status 1 (--allow-partial accepts a partial batch)" in captured.err
    # each file is also logged as it is met, once, not once per split
    bomb = [r for r in caplog.records if str(spec / "img" / "005.png") in r.getMessage()]
    assert len(bomb) == 1 and bomb[0].name == "training.data"

    assert main(["train", "calibrate", "--data", str(spec), "--calib-split", "all",
                 "--out", str(model), "--no-tesseract-profile", "--allow-partial"]) == 0
    err = capsys.readouterr().err
    assert "4 failure(s) accepted (--allow-partial)" in err


def test_key_file_without_a_field_reads_it_as_absent(corpus):
    from extractor.loaders import load_documents

    spec, _ = corpus["sroie"]
    doc = {d.id: d for d in load_documents(spec, progress=False).documents}["004"]
    assert doc.gold is not None and doc.gold["address"] is None and doc.gold["total"] == "42.50"


# -- kvloop extract ------------------------------------------------------------------------------

def _extract(model_dir: Path, spec: Path, out: Path, *extra: str) -> int:
    return main(["extract", str(model_dir), str(spec), "--out", str(out), "--threads", "1",
                 "--device", "cpu", "--k", "2", *extra])


def test_extract_gives_each_bad_scan_one_record_and_extracts_the_rest(corpus, model_dir,
                                                                       tmp_path, capsys):
    scans, expects = corpus["scans"]
    out = tmp_path / "results.jsonl"
    assert _extract(model_dir, scans, out) == 1
    captured = capsys.readouterr()
    check_records(records(captured.err, scans), expects)
    lines = list(read_jsonl(str(out)))
    assert sorted(r["doc_id"] for r in lines) == sorted(read_ids(expects))
    version = lines[0]["model_version"]
    assert f"{version}: wrote {len(lines)} result(s)" in captured.out
    for r in lines:  # the model and the OCR settings that produced each line
        assert r["model_version"] == version
        ocr = r["ocr"]
        assert ocr["mode"] == "provided"
        if r["doc_id"].startswith(("scan-p", "multipage-p")):  # born-digital PDF pages
            assert ocr["words"] == ocr["engine"] == "pdf-text" and not ocr["variants"]
            continue
        assert ocr["words"] == "tesseract:psm6"
        assert ocr["engine"].startswith("tesseract ") and ocr["passes"]["psm6"]["psm"] == 6
    assert {r["doc_id"]: r["ocr"].get("rotation") for r in lines}["rotated"] == 270
    # The bad files fail again; the good ones are done: --allow-partial accepts that.
    assert _extract(model_dir, scans, out, "--allow-partial") == 0
    captured = capsys.readouterr()
    assert f"wrote 0 result(s) to {out} ({len(lines)} already there" in captured.out
    check_records(records(captured.err, scans), expects)
    assert len(list(read_jsonl(str(out)))) == len(lines)


def test_ppocrv6_gives_the_same_records_and_documents(corpus, model_dir, tmp_path, capsys,
                                                     monkeypatch):
    """The corpus read by PP-OCRv6 with tesseract beside it (``--ocr-engines rapidocr+psm6``)
    through `data` and `extract`: the same failure records, the same documents, rotated and
    huge pages read. PP-OCRv6 alone finds no word on the huge page (11 characters on 60
    megapixels, reduced for its detector): that page alone becomes an "empty page" record."""
    scans, expects = corpus["scans"]
    monkeypatch.setenv("KVLOOP_OCR_ENGINES", "psm6")  # restored after --ocr-engines sets it
    out = tmp_path / "docs.jsonl"
    engines = ("--ocr-engines", "rapidocr+psm6")
    assert main(["data", str(scans), "--out", str(out), *engines]) == 1
    check_records(records(capsys.readouterr().err, scans), expects)
    docs = {d["id"]: d for d in read_jsonl(str(out))}
    assert set(docs) == read_ids(expects)
    for d in docs.values():
        if d["ocr"] == TEXT_LAYER_OCR:  # a PDF page read from its own text: no OCR engine
            assert d["meta"]["ocr"]["engine"] == TEXT_LAYER_OCR
            continue
        assert d["meta"]["ocr"]["engine"].startswith("rapidocr ")
        assert d["ocr"] == ("tesseract:psm6" if d["id"] == "huge" else "rapidocr:ppocrv6")
    upright = docs["rotated"]
    assert upright["meta"]["ocr"]["rotation"] == 270  # turned back from 90 degrees
    assert "42.50" in " ".join(w["text"] for w in upright["words"])
    assert docs["huge"]["meta"]["ocr"]["scale"] == 0.5
    results = tmp_path / "results.jsonl"
    assert _extract(model_dir, scans, results, *engines) == 1
    check_records(records(capsys.readouterr().err, scans), expects)
    lines = list(read_jsonl(str(results)))
    assert sorted(r["doc_id"] for r in lines) == sorted(read_ids(expects))
    # PP-OCRv6 alone (its readings cached above): the same records but the huge page's
    assert main(["data", str(scans), "--ocr-engines", "rapidocr"]) == 1
    got = records(capsys.readouterr().err, scans)
    assert got.pop("huge.jpg") == ["empty page: OCR found no words"]
    check_records(got, expects)


@pytest.mark.parametrize("kind", ["sroie", "jsonl", "labelstudio"])
def test_extract_on_sroie_jsonl_and_labelstudio(corpus, model_dir, tmp_path, capsys, kind):
    spec, expects = corpus[kind]
    out = tmp_path / "results.jsonl"
    assert _extract(model_dir, spec, out) == 1
    check_records(records(capsys.readouterr().err, spec), expects)
    assert {r["doc_id"] for r in read_jsonl(str(out))} == read_ids(expects)


# -- limits: pixels, time, memory, dead workers --------------------------------------------------

def test_bomb_is_refused_from_its_header(corpus):
    scans, _ = corpus["scans"]
    for fn in (image_size, open_image):
        with pytest.raises(ValueError, match=rf"bomb\.png: image is {BOMB:,} x {BOMB:,} pixels"):
            fn(scans / "bomb.png")


def test_page_time_limit_becomes_a_failure(corpus, tmp_path, capsys, monkeypatch):
    # 0.05 s: below what decoding and reading the 60-megapixel page takes on any machine (at
    # 0.5 s a quiet CI machine read it in time and the test failed).
    scans, _ = corpus["scans"]
    monkeypatch.setenv("KVLOOP_CACHE", str(tmp_path / "cold"))  # nothing cached: tesseract runs
    start = time.monotonic()
    assert main(["data", str(scans / "huge.jpg"), "--page-timeout", "0.05"]) == 1
    assert time.monotonic() - start < 60
    got = records(capsys.readouterr().err, scans)
    assert list(got) == ["huge.jpg"] and "0.05 s page time limit" in got["huge.jpg"][0]
    out = run_job(OcrJob("huge", str(scans / "huge.jpg")), [OcrConfig("psm6", psm=6)], None,
                  ReadOptions(page_timeout=0.05))
    assert out.error is not None and "page time limit" in out.error and not out.words


def test_memory_stays_bounded_on_huge_pages_and_bombs(corpus, tmp_path):
    scans, _ = corpus["scans"]
    folder = tmp_path / "big"
    folder.mkdir()
    for name in ("huge.jpg", "bomb.png"):
        (folder / name).symlink_to(scans / name)
    # VmHWM, not getrusage: ru_maxrss keeps the forking parent's (pytest's) peak across exec.
    code = ("import re, resource\n"
            "from extractor.loaders.images import load_image_folder\n"
            f"r = load_image_folder({str(folder)!r}, workers=1, cache_dir=None, progress=False)\n"
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
            "print(len(r.documents), len(r.failures), hwm,\n"
            "      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=True)
    n_docs, n_failed, own_kb, tesseract_kb = map(int, proc.stdout.split())
    assert (n_docs, n_failed) == (1, 1)
    # The 60 MP page decodes at half size (15 MB of grey) and the bomb not at all (1.25 GB).
    assert own_kb < 350_000, f"python peaked at {own_kb / 1000:.0f} MB"
    assert tesseract_kb < 1_000_000, f"tesseract peaked at {tesseract_kb / 1000:.0f} MB"


def test_a_dead_ocr_worker_costs_no_page(tmp_path):
    import psutil

    if not Path(FONT).is_file():
        pytest.skip(f"{FONT} missing")
    jobs = []
    for i in range(4):
        p = tmp_path / f"p{i}.png"
        text_page([f"PAGE {i} TOTAL {i}.50", "ACME TRADING"]).save(p)
        jobs.append(OcrJob(f"p{i}", str(p)))
    outs = iter_ocr(jobs, [OcrConfig("psm6", psm=6)], workers=2, cache_dir=None)
    first = next(outs)
    me = psutil.Process()
    workers = [c for c in me.children() if "spawn_main" in " ".join(c.cmdline())]
    assert workers, "no OCR worker process found"
    workers[0].kill()  # as the kernel's OOM killer would
    rest = list(outs)
    assert [o.job.doc_id for o in [first, *rest]] == [j.doc_id for j in jobs]
    assert all(o.error is None and o.words["psm6"] for o in [first, *rest]), [
        o.error for o in rest]
    assert not workers[0].is_running()


def test_sroie_key_file_rows_named_in_one_record(corpus):
    from extractor.loaders.sroie import load_sroie

    spec, _ = corpus["sroie"]
    report = load_sroie(spec, progress=False)
    (box,) = [f for f in report.failures if "002.csv" in f.path]
    assert box.path.endswith("002.csv:2")
    assert "row 2: non-numeric coordinate" in box.reason and "row 4: expected 8" in box.reason


def test_results_lines_are_plain_json(corpus, model_dir, tmp_path):
    """A file name that is not UTF-8 still gives valid UTF-8 JSON (escaped, never raw)."""
    scans, _ = corpus["scans"]
    out = tmp_path / "r.jsonl"
    name = next(p for p in scans.iterdir() if p.name.startswith("caf"))
    assert _extract(model_dir, name, out) == 0
    line = json.loads(out.read_bytes().decode("utf-8"))
    assert line["doc_id"] == "caf\\xe9"
