"""``kvloop store`` and ``kvloop review`` command lines."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from test_service import receipt

from extractor.document import write_jsonl
from feedback_ui.store import FeedbackStore, FieldAction
from kvloop.cli import main
from kvloop.commands import review


def test_import_export_history_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = [receipt(1, 0.9), receipt(2, 0.3)]
    write_jsonl(str(tmp_path / "docs.jsonl"), [d for d, _ in pairs])
    lines = [json.dumps(r.export()) for _, r in pairs]
    lines.insert(1, json.dumps({"doc_id": "ghost", "model_version": "m1", "fields": {}}))
    lines.insert(2, json.dumps({"model_version": "m1"}))
    (tmp_path / "results.jsonl").write_text("\n".join(lines) + "\n")
    db = str(tmp_path / "f.db")
    rc = main(["store", "import-results", "--store", db, "--documents",
               str(tmp_path / "docs.jsonl"), "--results", str(tmp_path / "results.jsonl")])
    out = capsys.readouterr().out
    assert rc == 1  # bad records are reported, the good ones are stored
    assert "stored 2 new document(s), 2 result(s), 2 failure(s)" in out
    assert "unknown document 'ghost'" in out and "record 3: KeyError" in out
    store = FeedbackStore(db)
    assert store.document_ids() == ["rcpt1", "rcpt2"] and len(store.extraction_index()) == 2

    store.acquire_lease("rcpt1", "ann")
    store.save_review("rcpt1", "ann", [FieldAction("total", "edit", "1.50", "50.00", 0.9, [])],
                      started_at=datetime.now(timezone.utc))
    assert main(["store", "export", "--store", db, "--kind", "corrected", "--out",
                 str(tmp_path / "c.jsonl")]) == 0
    rows = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert [(r["doc_id"], r["values"]) for r in rows] == [("rcpt1", {"total": "1.50"})]
    capsys.readouterr()
    assert main(["store", "history", "--store", db, "rcpt1"]) == 0
    assert "ann          total      edit        '50.00' -> '1.50'" in capsys.readouterr().out
    assert main(["store", "stats", "--store", db]) == 0
    assert "reviewed today 1" in capsys.readouterr().out


def review_args(**kw: object) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    review.add_arguments(p)
    argv = ["--store", str(kw.pop("store"))] + [x for k, v in kw.items()
                                                 for x in (f"--{k}", str(v))]
    return p.parse_args(argv)


def test_review_binds_loopback_by_default(tmp_path: Path) -> None:
    cmd, env = review.streamlit_command(review_args(store=tmp_path / "f.db", port=8765))
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == "8765"
    assert env["KVLOOP_STORE"] == f"sqlite:///{tmp_path / 'f.db'}"
    assert env["KVLOOP_UPLOAD_DIR"] == str(tmp_path / "uploads")
    assert env["KVLOOP_LEASE_S"] == "900.0"


def test_review_refuses_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert review.run(review_args(store=tmp_path / "f.db", model=tmp_path / "nope")) == 2
    assert "model folder" in capsys.readouterr().err
    (tmp_path / "not-a-model").mkdir()
    assert review.run(review_args(store=tmp_path / "f.db", model=tmp_path / "not-a-model")) == 2
    assert "not-a-model/kvloop.json: not a kvloop model folder (kvloop.json missing)" in (
        capsys.readouterr().err)
    assert review.run(review_args(store=tmp_path / "no" / "dir" / "f.db")) == 1
    assert "cannot open store" in capsys.readouterr().err


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny random extractor and a tiny reward model started from it (saved)."""
    from extractor.model.reward import RewardModel
    from extractor.model.zoo import build_model

    root = tmp_path_factory.mktemp("models")
    tiny = build_model("tiny", seed=0)
    tiny.save_pretrained(root / "extractor")
    RewardModel.from_ensemble(tiny, seed=0).save_pretrained(root / "reward")
    return root / "extractor", root / "reward"


def test_review_passes_rerank_to_the_ui(tmp_path: Path, models: tuple[Path, Path],
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    model_dir, rm_dir = models
    _, env = review.streamlit_command(review_args(store=tmp_path / "f.db", model=model_dir,
                                                  rerank=rm_dir))
    assert env["KVLOOP_RERANK"] == str(rm_dir.resolve())
    assert env["KVLOOP_MODEL"] == str(model_dir.resolve())
    _, env = review.streamlit_command(review_args(store=tmp_path / "f.db", model=model_dir))
    assert "KVLOOP_RERANK" not in env
    started: list[dict[str, str]] = []
    monkeypatch.setattr(review.os, "execve", lambda path, cmd, env: started.append(env))
    assert review.run(review_args(store=tmp_path / "f.db", model=model_dir, rerank=rm_dir)) == 0
    assert started[0]["KVLOOP_RERANK"] == str(rm_dir.resolve())
    assert f"uploads reranked by {rm_dir}" in capsys.readouterr().out


def test_review_refuses_a_bad_rerank_folder_up_front(tmp_path: Path, models: tuple[Path, Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    model_dir, rm_dir = models
    db = tmp_path / "f.db"
    assert review.run(review_args(store=db, rerank=rm_dir)) == 2
    assert "--rerank needs --model" in capsys.readouterr().err
    assert review.run(review_args(store=db, model=model_dir, rerank=tmp_path / "nope")) == 2
    assert f"{tmp_path / 'nope'}: no such reward-model directory" in capsys.readouterr().err
    assert review.run(review_args(store=db, model=model_dir, rerank=model_dir)) == 2
    assert "that is an extractor" in capsys.readouterr().err
    assert not db.exists()  # refused before the store was opened


def test_export_pairs_with_filters_writes_pages_beside(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "f.db")
    store = FeedbackStore(db)
    pairs = [receipt(1, 0.9), receipt(2, 0.3)]
    store.add_batch([d for d, _ in pairs], [r for _, r in pairs])
    now = datetime.now(timezone.utc)
    cands = pairs[0][1].fields["total"].candidates
    for doc_id, action in (("rcpt1", FieldAction("total", "edit", "1.50", "50.00", 0.9, cands)),
                           ("rcpt2", FieldAction("total", "reject", None, "50.00", 0.3, cands))):
        store.acquire_lease(doc_id, "ann")
        store.save_review(doc_id, "ann", [action], started_at=now)
    out = tmp_path / "pairs.jsonl"
    assert main(["store", "export", "--store", db, "--kind", "pairs", "--out", str(out),
                 "--actions", "edit,reject", "--since", now.date().isoformat()]) == 0
    assert "(pages in " in capsys.readouterr().out
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["doc_id"], r["chosen"], r["rejected"]) for r in rows] == [
        ("rcpt1", "1.50", "50.00")]  # rcpt2's total is open: no chosen value, no pair
    pages = (tmp_path / "pairs.documents.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in pages] == ["rcpt1"]
    assert main(["store", "export", "--store", db, "--kind", "pairs", "--out", str(out),
                 "--until", now.date().isoformat()]) == 0
    assert out.read_text() == ""
    with pytest.raises(SystemExit):
        main(["store", "export", "--store", db, "--out", str(out), "--actions", "approve"])
    assert "unknown action(s) ['approve']" in capsys.readouterr().err
    assert main(["store", "stats", "--store", db]) == 0
    assert "rejected     1" in capsys.readouterr().out


def test_backup_export_and_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, backup = str(tmp_path / "f.db"), str(tmp_path / "backup.jsonl.gz")
    store = FeedbackStore(db)
    doc, res = receipt(1, 0.9)
    store.add_batch([doc], [res])
    store.acquire_lease(doc.id, "ann")
    store.save_review(doc.id, "ann", [FieldAction("total", "edit", "1.50", "50.00", 0.9, [])],
                      started_at=datetime.now(timezone.utc), release=True)
    assert main(["store", "export", "--store", db, "--kind", "backup", "--out", backup]) == 0
    assert (f"wrote {backup}: 6 row(s) (1 documents, 1 extractions, 1 saves, 1 actions, "
            "0 leases, 2 lease_events)") in capsys.readouterr().out
    new = str(tmp_path / "new.db")
    assert main(["store", "import", "--store", new, backup]) == 0
    assert f"restored into {new}: 6 row(s)" in capsys.readouterr().out
    assert FeedbackStore(new).current_values(doc.id) == {"total": "1.50"}
    assert main(["store", "import", "--store", new, backup]) == 1  # not into a full store
    assert "already holds rows" in capsys.readouterr().err
    assert main(["store", "export", "--store", db, "--kind", "backup", "--out", backup,
                 "--operator", "ann"]) == 2
    assert "--operator do(es) not apply" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["store", "history", "--store", new, doc.id]) == 0
    out = capsys.readouterr().out
    assert "lease history:" in out and "ann          acquire until" in out
    assert "ann          release" in out
