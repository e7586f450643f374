"""`kvloop extract --engine ray` on a local Ray of 2 CPUs: the same lines as the local engine.

Real tesseract in Ray tasks, a real tiny model in a Ray actor, real files: a folder of
rendered receipts (images and a two-page PDF) with a bad file, and a JSONL dataset with a
repeated id. Each Ray run's lines equal the local engine's, document for document (all but
``created_at``; order may differ), its failures are the local engine's, and it resumes an
``--out`` that holds some lines already. The first test's run starts and stops a Ray of its
own; the later ones share one (``shared_ray``: a run uses the Ray its process started), as
every start costs seconds.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import signal
import threading
from pathlib import Path

import pytest
from bad_inputs import FONT, LINES, pdf_bytes, text_page
from test_extract_resume import _docs

from extractor.document import read_jsonl, write_jsonl
from kvloop.cli import main

pytest.importorskip("ray.data")

RAY = ("--engine", "ray", "--ray-cpus", "2")
RECEIPTS = {"r1.png": LINES, "r2.png": LINES[::-1], "r3.jpg": LINES[1:]}
BAD = "bad.jpg"  # a text file named .jpg: read fails in the OCR stage
_FAILED = re.compile(r"^\s+FAILED (?:to (?:load|extract) )(.+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from extractor.model.zoo import build_model

    d = tmp_path_factory.mktemp("model") / "tiny"
    build_model("tiny", seed=0).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three receipt images, a two-page PDF and a bad file."""
    if not Path(FONT).is_file():
        pytest.skip(f"{FONT} missing (Debian fonts-dejavu-core)")
    folder = tmp_path_factory.mktemp("scans")
    for name, lines in RECEIPTS.items():
        text_page(lines).convert("RGB").save(folder / name)
    (folder / "scan.pdf").write_bytes(pdf_bytes([LINES[:3], LINES[3:]]))
    (folder / BAD).write_bytes(b"Dear customer,\nthis is a letter, not a photograph.\n")
    return folder


@pytest.fixture(scope="module")
def shared_ray_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OCR cache of the shared Ray's workers: they took ``$KVLOOP_CACHE`` when it started,
    so a test's own ``KVLOOP_CACHE`` reaches only its driver, and pages an earlier test read
    are cache hits here."""
    return tmp_path_factory.mktemp("shared-cache")


@pytest.fixture(scope="module")
def shared_ray(shared_ray_cache: Path):
    """One local Ray of 2 CPUs for the tests after the first (a run finds it and uses it)."""
    from extractor.model.ray_engine import RayEngine, ray_session

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KVLOOP_CACHE", str(shared_ray_cache))
        with ray_session(RayEngine(cpus=2)) as ray:
            yield ray


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six documents with their own words, one of them twice (a failure of its own)."""
    docs = _docs(6)
    path = tmp_path_factory.mktemp("jsonl") / "docs.jsonl"
    write_jsonl(str(path), [*docs, docs[2]])
    return path


def _extract(model: Path, spec: Path, out: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
             *extra: str) -> int:
    # Each run its own OCR cache, so that a Ray run that starts its own Ray reads every page
    # itself; the shared Ray's workers keep theirs (``shared_ray_cache``).
    monkeypatch.setenv("KVLOOP_CACHE", str(cache))
    return main(["extract", str(model), str(spec), "--out", str(out), "--threads", "1",
                 "--device", "cpu", "--k", "3", "--batch-size", "2", *extra])


def _lines(out: Path) -> dict[str, str]:
    """doc id -> its line without the time stamp (ids are unique in a results file)."""
    lines = list(read_jsonl(str(out)))
    by_id = {r["doc_id"]: json.dumps({k: v for k, v in r.items() if k != "created_at"},
                                     sort_keys=True) for r in lines}
    assert len(by_id) == len(lines)
    return by_id


def _failures(stderr: str) -> list[str]:
    return sorted(_FAILED.findall(stderr))


@pytest.mark.slow
def test_a_folder_gives_the_local_engines_lines_and_failures(model_dir, scans, tmp_path,
                                                            capsys, monkeypatch):
    import ray as ray_module

    assert not ray_module.is_initialized(), "runs before the module's shared Ray"
    local, ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert _extract(model_dir, scans, local, tmp_path / "cache-local", monkeypatch) == 1
    local_err = capsys.readouterr().err
    assert _extract(model_dir, scans, ray, tmp_path / "cache-ray", monkeypatch, *RAY) == 1
    captured = capsys.readouterr()
    assert not ray_module.is_initialized()  # the run started its own Ray and shut it down
    expected = _lines(local)
    assert set(expected) == {"r1", "r2", "r3", "scan-p1", "scan-p2"}
    assert _lines(ray) == expected
    failures = _failures(captured.err)
    assert failures == _failures(local_err)
    assert len(failures) == 1 and failures[0].startswith(f"{scans / BAD}: cannot read image")
    assert "1 file(s) or document(s) failed: exit status 1" in captured.err
    assert re.search(r": wrote 5 result\(s\) to ", captured.out)
    # The pages were read by the Ray tasks themselves, into the cache they were given.
    assert list((tmp_path / "cache-ray" / "ocr").rglob("*.json"))
    line = json.loads(expected["r1"])
    assert line["ocr"]["words"] == "tesseract:psm6" and line["ocr"]["engine"].startswith(
        "tesseract ")


@pytest.mark.slow
def test_ppocrv6_pages_read_by_ray_tasks_give_the_local_engines_lines(model_dir, scans,
                                                                       shared_ray, tmp_path,
                                                                       capsys, monkeypatch):
    monkeypatch.setenv("KVLOOP_OCR_ENGINES", "psm6")  # restored after --ocr-engines sets it
    engines = ("--ocr-engines", "rapidocr+psm6")
    local, ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert _extract(model_dir, scans, local, tmp_path / "cache-local", monkeypatch,
                    *engines) == 1
    local_err = capsys.readouterr().err
    assert _extract(model_dir, scans, ray, tmp_path / "cache-ray", monkeypatch, *RAY,
                    *engines) == 1
    assert _failures(capsys.readouterr().err) == _failures(local_err)
    expected = _lines(local)
    assert _lines(ray) == expected and set(expected) == {"r1", "r2", "r3", "scan-p1", "scan-p2"}
    line = json.loads(expected["r1"])
    assert line["ocr"]["words"] == "rapidocr:ppocrv6"
    assert line["ocr"]["engine"].startswith("rapidocr ") and "psm6" in line["ocr"]["passes"]


@pytest.mark.slow
def test_a_dataset_gives_the_local_engines_lines_and_failures(model_dir, dataset, shared_ray,
                                                             tmp_path, capsys, monkeypatch):
    local, ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert _extract(model_dir, dataset, local, tmp_path / "cache", monkeypatch) == 1
    local_err = capsys.readouterr().err
    assert _extract(model_dir, dataset, ray, tmp_path / "cache", monkeypatch, *RAY) == 1
    ray_err = capsys.readouterr().err
    assert _lines(ray) == _lines(local)
    assert len(_lines(ray)) == 6
    assert _failures(ray_err) == _failures(local_err) == [
        "r0002 (None): duplicate document id (already read from the input)"]


@pytest.mark.slow
def test_resume_skips_the_lines_already_written(model_dir, dataset, shared_ray, tmp_path,
                                                capsys, monkeypatch):
    reference = tmp_path / "reference.jsonl"
    assert _extract(model_dir, dataset, reference, tmp_path / "cache", monkeypatch) == 1
    first = reference.read_bytes().splitlines(keepends=True)[:3]
    out = tmp_path / "results.jsonl"
    out.write_bytes(b"".join(first))
    capsys.readouterr()
    # r0002 is done, so its repeat is skipped with it (as the local engine does): exit 0.
    assert _extract(model_dir, dataset, out, tmp_path / "cache", monkeypatch, *RAY) == 0
    printed = capsys.readouterr().out
    assert "wrote 3 result(s)" in printed and "(3 already there from an earlier run)" in printed
    assert out.read_bytes().startswith(b"".join(first))  # nothing rewritten
    assert _lines(out) == _lines(reference)


def test_a_local_ray_too_small_for_the_model_and_the_ocr_is_refused(model_dir, scans,
                                                                   tmp_path, capsys,
                                                                   monkeypatch):
    out = tmp_path / "results.jsonl"
    assert _extract(model_dir, scans, out, tmp_path / "cache", monkeypatch, *RAY,
                    "--threads", "2") == 2
    err = capsys.readouterr().err
    assert "the local Ray has 2 CPU(s) (--ray-cpus), the model actors need 2" in err
    assert "lower --threads or raise --ray-cpus" in err
    assert out.read_text() == ""


@pytest.mark.slow
def test_ocr_runs_as_tasks_of_its_own_not_inside_the_model_actors(model_dir, scans, shared_ray,
                                                                   capsys):
    """Ray Data fuses compatible stages; fused, OCR would read one page per model actor."""
    from extractor.loaders import plan_documents
    from extractor.model.ray_engine import ModelSpec, RayEngine, build_pipeline

    plan = plan_documents(scans)
    rows = [(j.doc_id, j) for j in plan.jobs]
    build_pipeline(shared_ray, plan, rows, ModelSpec(str(model_dir), "cpu"), RayEngine(),
                   "provided", k=3, batch_size=2, options=None).explain()
    optimized = capsys.readouterr().out.split("Physical Plan (Optimized)")[1]
    assert "ActorPoolMapOperator[MapBatches(ExtractStage)]" in optimized
    assert "TaskPoolMapOperator[MapBatches(read_pages)]" in optimized


def _kill_first_worker_running(marker: bytes, stop: threading.Event) -> int | None:
    """SIGKILL the first process whose command line names a Ray task running ``marker``
    (Ray renames a worker ``ray::<task>`` while it runs one); its PID, or None if none ran
    before ``stop``."""
    while not stop.is_set():
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"ray::") and marker in cmdline:
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                except ProcessLookupError:
                    continue
                return int(proc.name)
        stop.wait(0.05)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_a_killed_ocr_worker_loses_no_document_silently(model_dir, scans, shared_ray,
                                                       shared_ray_cache, tmp_path, capsys,
                                                       monkeypatch):
    """An OCR worker SIGKILLed mid-page: Ray retries its task or the run names the page lost
    (exit 1, counted with the other failures); nothing vanishes, and a second run finishes
    exactly what the first did not, giving the local engine's lines."""
    # The workers' cache emptied, so every page is read by tesseract while the killer looks:
    # pages an earlier test cached (its psm6 pass) came back in milliseconds, and the killer
    # then found no task running on a loaded machine (CI, once).
    shutil.rmtree(shared_ray_cache)
    shared_ray_cache.mkdir()
    reference = tmp_path / "reference.jsonl"
    assert _extract(model_dir, scans, reference, tmp_path / "cache-local", monkeypatch) == 1
    expected = _lines(reference)
    capsys.readouterr()

    out = tmp_path / "results.jsonl"
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        killer = pool.submit(_kill_first_worker_running, b"read_pages", stop)
        try:
            rc = _extract(model_dir, scans, out, tmp_path / "cache-ray", monkeypatch, *RAY)
        finally:
            stop.set()
        killed = killer.result()
    err = capsys.readouterr().err
    assert killed is not None, "no OCR worker was seen running (nothing was killed)"
    written = _lines(out)
    lost = sorted(re.findall(r"^\s+FAILED to extract (\S+) \(.*\): no result came back from Ray",
                             err, re.MULTILINE))
    # every planned document is written or named lost, never both, never neither
    assert set(written) | set(lost) == set(expected) and not set(written) & set(lost)
    assert written.items() <= expected.items()  # what was written is the local engine's
    assert rc == 1 and f"{1 + len(lost)} file(s) or document(s) failed" in err

    assert _extract(model_dir, scans, out, tmp_path / "cache-ray", monkeypatch, *RAY) == 1
    assert _lines(out) == expected


def test_the_collector_names_every_document_that_never_came_back(tmp_path: Path) -> None:
    """Ray Data skips a block whose task died (``max_errored_blocks=-1``): the collector
    reports each document of it as lost, in input order, beside the failures that did come
    back, so the exit status counts them."""
    from extractor.model.batch import BatchOutcome, ExtractFailure, ResultsFile
    from extractor.model.ray_engine import LOST, Collector, as_batch

    rows = [(f"d{n}", None) for n in range(4)]
    sources = {f"d{n}": f"/in/d{n}.png" for n in range(4)}
    out = ResultsFile(tmp_path / "out.jsonl", "v1", "provided")
    out.open()
    try:
        collector = Collector(rows, sources, out, BatchOutcome())
        line = {"doc_id": "d2", "model_version": "v1", "ocr": {"mode": "provided"}}
        assert collector.add(as_batch([("d2", line),
                                       ("d1", ExtractFailure("d1", "/in/d1.png", "boom"))])) == 2
        outcome = collector.finish()
    finally:
        out.close()
    assert outcome.n_ok == 1 and [json.loads(x)["doc_id"] for x in
                                  (tmp_path / "out.jsonl").read_text().splitlines()] == ["d2"]
    assert [(f.doc_id, f.source, f.reason) for f in outcome.failures] == [
        ("d0", "/in/d0.png", LOST), ("d1", "/in/d1.png", "boom"), ("d3", "/in/d3.png", LOST)]
    assert outcome.n_failed == 3
