"""scripts/bench_eval.py runs end to end on a results file and prints every stage."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from extractor.document import Candidate, Document, ExtractionResult, FieldResult, Word, write_jsonl

REPO = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_eval", REPO / "scripts" / "bench_eval.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_eval_on_results_file(tmp_path: Path, capsys) -> None:
    docs = [Document(f"b{i}", [Word("TOTAL", (0, 0, 30, 10)), Word(f"{i}.00", (40, 0, 70, 10))],
                     100, 20, gold={"total": f"{i}.00"}) for i in range(6)]
    results = [ExtractionResult(d.id, "m", {"total": FieldResult(
        "total", [Candidate(f"{i % 2}.00", 0.8, [1])], 0.8)}) for i, d in enumerate(docs)]
    write_jsonl(str(tmp_path / "docs.jsonl"), docs)
    write_jsonl(str(tmp_path / "res.jsonl"), results)
    out = tmp_path / "bench.json"
    rc = _load_script().main(["--results", str(tmp_path / "res.jsonl"), "--data",
                              str(tmp_path / "docs.jsonl"), "--split", "all", "--repeat", "1",
                              "--n-boot", "50", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    for stage in ("metrics", "bootstrap", "gallery", "report", "total"):
        assert stage in text
    med = json.loads(out.read_text())["median"]
    assert med["docs"] == 6 and med["total"] > 0
