"""CORD end to end at tiny size: ``kvloop train base`` on its own words, the schema carried by
the model card, then ``kvloop extract`` and ``kvloop eval`` scoring every CORD field."""

from __future__ import annotations

import json
from pathlib import Path

from extractor.document import read_jsonl
from extractor.model.card import ModelCard
from extractor.schemas import CORD_SCHEMA
from kvloop.cli import main


def test_train_extract_eval_on_cord(cord_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "base-cord"
    assert main(["train", "base", "--data", str(cord_dir), "--arch", "tiny", "--max-docs", "8",
                 "--epochs", "1", "--out", str(model)]) == 0
    card = ModelCard.load(model)
    assert card.schema == CORD_SCHEMA  # chosen from the data's gold, saved with the model

    out = tmp_path / "results.jsonl"
    assert main(["extract", str(model), str(cord_dir), "--split", "dev", "--out", str(out)]) == 0
    rows = list(read_jsonl(str(out)))
    assert len(rows) == 100 and rows[0]["doc_id"].startswith("dev/")
    assert set(rows[0]["fields"]) == set(CORD_SCHEMA.field_names)

    report = tmp_path / "eval"
    assert main(["eval", "--model", str(model), "--data", str(cord_dir), "--split", "dev",
                 "--limit", "10", "--n-boot", "20", "--gallery", "2", "--out",
                 str(report)]) == 0
    data = json.loads((report / "report.json").read_text())
    fields = data["runs"][0]["metrics"]["lenient"]["fields"]
    assert list(fields) == CORD_SCHEMA.field_names
    assert all(0.0 <= f["f1"] <= 1.0 for f in fields.values())
    assert sum(f["tp"] + f["fn"] for f in fields.values()) > 0  # the dev gold was read
