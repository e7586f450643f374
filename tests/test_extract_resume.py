"""`kvloop extract` survives SIGKILL: run again, it finishes without repeating or losing a
document; it is idempotent, repairs a torn last line and refuses to mix models or writers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from extractor.document import Document, Word, read_jsonl, write_jsonl
from extractor.model.batch import ResultsFile
from kvloop.cli import main

N_DOCS = 40  # chunks of 4: a kill after the second chunk lands half way
WORDS = ["ACME", "SDN", "BHD", "JALAN", "MERAH", "DATE", "12/03/2018", "TOTAL", "42.50", "CASH",
         "CHANGE", "ITEM", "PENCIL", "2.00", "TAX", "GST", "RM", "QTY", "NO", "12"]


def _docs(n: int) -> list[Document]:
    """``n`` receipts of 16 words each, different from one another."""
    docs = []
    for i in range(n):
        words = [Word(WORDS[(i * 7 + j * 3) % len(WORDS)], (10 + 40 * (j % 8), 10 + 20 * (j // 8),
                                                             45 + 40 * (j % 8),
                                                             25 + 20 * (j // 8)), 0.9, j // 8)
                 for j in range(16)]
        docs.append(Document(f"r{i:04d}", words, 400, 120))
    return docs


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(tiny model, other tiny model, input JSONL)."""
    from extractor.model.zoo import build_model

    root = tmp_path_factory.mktemp("resume")
    build_model("tiny", seed=0).save_pretrained(root / "model")
    build_model("tiny", seed=1).save_pretrained(root / "other")
    write_jsonl(str(root / "docs.jsonl"), _docs(N_DOCS))
    return root / "model", root / "other", root / "docs.jsonl"


def _args(model: Path, docs: Path, out: Path, *extra: str) -> list[str]:
    return ["extract", str(model), str(docs), "--out", str(out), "--threads", "1", "--device",
            "cpu", "--k", "2", "--batch-size", "1", *extra]


def _stable(line: dict) -> str:
    """A result line without its time stamp, for comparing two runs."""
    return json.dumps({k: v for k, v in line.items() if k != "created_at"}, sort_keys=True)


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One uninterrupted run: doc id -> its line."""
    model, _, docs = setup
    out = tmp_path_factory.mktemp("ref") / "all.jsonl"
    assert main(_args(model, docs, out)) == 0
    lines = list(read_jsonl(str(out)))
    assert len(lines) == N_DOCS
    return {r["doc_id"]: _stable(r) for r in lines}


@pytest.mark.slow
def test_sigkill_halfway_then_rerun_finishes_without_repeats_or_losses(setup, reference,
                                                                       tmp_path, capsys):
    model, _, docs = setup
    out = tmp_path / "results.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "kvloop.cli", *_args(model, docs, out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600  # torch's import alone takes minutes on busy cores
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 8:  # two chunks written
                break
            time.sleep(0.005)
        assert proc.poll() is None, "extract finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    before = out.read_bytes()
    n_before = before.count(b"\n")
    assert 8 <= n_before < N_DOCS  # killed half way
    assert main(_args(model, docs, out)) == 0
    printed = capsys.readouterr().out
    assert f"wrote {N_DOCS - n_before} result(s)" in printed
    assert f"({n_before} already there from an earlier run)" in printed
    after = out.read_bytes()
    assert after.startswith(before[:before.rfind(b"\n") + 1])  # nothing rewritten
    lines = list(read_jsonl(str(out)))
    ids = [r["doc_id"] for r in lines]
    assert len(ids) == len(set(ids)) == N_DOCS  # none repeated, none lost
    assert {r["doc_id"]: _stable(r) for r in lines} == reference  # same as one clean run


def test_torn_last_line_is_dropped_and_redone(setup, reference, tmp_path, capsys):
    model, _, docs = setup
    out = tmp_path / "results.jsonl"
    full = Path(tmp_path / "full.jsonl")
    assert main(_args(model, docs, full)) == 0
    raw = full.read_bytes().splitlines(keepends=True)
    # A kill in the middle of a write: 10 whole lines, then 37 bytes of the eleventh.
    out.write_bytes(b"".join(raw[:10]) + raw[10][:37])
    capsys.readouterr()
    assert main(_args(model, docs, out)) == 0
    printed = capsys.readouterr().out
    assert "(10 already there from an earlier run) (dropped a torn last line first)" in printed
    lines = list(read_jsonl(str(out)))
    assert sorted(r["doc_id"] for r in lines) == sorted(reference)
    assert {r["doc_id"]: _stable(r) for r in lines} == reference


def test_rerun_of_a_finished_output_changes_nothing(setup, tmp_path, capsys):
    model, _, docs = setup
    out = tmp_path / "results.jsonl"
    assert main(_args(model, docs, out)) == 0
    before = out.read_bytes()
    assert main(_args(model, docs, out)) == 0
    assert out.read_bytes() == before
    assert f"wrote 0 result(s) to {out} ({N_DOCS} already there" in capsys.readouterr().out


def test_every_line_records_model_version_and_ocr(setup, reference):
    lines = [json.loads(v) for v in reference.values()]
    versions = {r["model_version"] for r in lines}
    assert len(versions) == 1 and next(iter(versions)).startswith("kv.ensemble.v1@")
    assert all(r["ocr"] == {"mode": "provided", "words": "provided", "variants": []}
               for r in lines)


def test_refuses_to_mix_models_or_ocr_modes_unless_overwrite(setup, tmp_path, capsys):
    model, other, docs = setup
    out = tmp_path / "results.jsonl"
    assert main(_args(model, docs, out)) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert main(_args(other, docs, out)) == 2
    err = capsys.readouterr().err
    assert f"{out}:1: holds results of kv.ensemble.v1@" in err and "--overwrite" in err
    assert main(_args(model, docs, out, "--ocr", "tesseract")) == 2
    assert "read with --ocr provided, this run uses --ocr tesseract" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(_args(other, docs, out, "--overwrite")) == 0
    lines = list(read_jsonl(str(out)))
    assert len(lines) == N_DOCS and lines[0]["model_version"] != json.loads(
        before.splitlines()[0])["model_version"]


def test_refuses_a_file_that_is_not_results(setup, tmp_path, capsys):
    model, _, docs = setup
    out = tmp_path / "notes.jsonl"
    out.write_text('{"hello": "world"}\n')
    assert main(_args(model, docs, out)) == 2
    assert f"{out}:1: not a kvloop result line" in capsys.readouterr().err
    assert out.read_text() == '{"hello": "world"}\n'


def test_a_second_writer_is_refused(setup, tmp_path, capsys):
    model, _, docs = setup
    out = tmp_path / "results.jsonl"
    holder = ResultsFile(out, "kv.ensemble.v1@x", "provided")
    holder.open()  # another kvloop extract holds the lock
    try:
        assert main(_args(model, docs, out)) == 2
        assert "another kvloop extract is writing this file" in capsys.readouterr().err
    finally:
        holder.close()


def test_duplicate_ids_in_the_input_are_one_result_and_one_failure(setup, tmp_path, capsys):
    model, _, _ = setup
    docs = _docs(3)
    src = tmp_path / "dups.jsonl"
    write_jsonl(str(src), [*docs, docs[1]])
    out = tmp_path / "results.jsonl"
    assert main(_args(model, src, out)) == 1
    err = capsys.readouterr().err
    assert "FAILED to extract r0001 (None): duplicate document id" in err
    assert sorted(r["doc_id"] for r in read_jsonl(str(out))) == ["r0000", "r0001", "r0002"]
