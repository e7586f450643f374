"""Safe artifacts: versions written whole or not at all, never over another, loaded only from
safetensors and JSON, and a damaged folder named with what is wrong (through ``load_predictor``
and ``kvloop extract``)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from test_rl_trainer import _mock_receipts, _tree_hash

from extractor.document import write_jsonl
from extractor.model.card import ModelCard
from extractor.model.predictor import load_predictor
from extractor.model.reward import RewardModel, build_reward_model
from extractor.model.zoo import build_model
from training.versions import new_version_dir, partial_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A tiny extractor, a tiny reward model and a documents file to extract from."""
    root = tmp_path_factory.mktemp("artifacts")
    model = build_model("tiny", seed=0)
    model.save_pretrained(root / "model", ModelCard(model.schema))
    build_reward_model("tiny").save_pretrained(root / "reward")
    write_jsonl(str(root / "docs.jsonl"), _mock_receipts(range(2)))
    return root / "model", root / "reward", root / "docs.jsonl"


def _truncate(path: Path, keep: int | None = None) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2 if keep is None else keep])


def _wrong_width(d: Path) -> None:
    """The config says 64 wide; the weights were saved 32 wide."""
    cfg = json.loads((d / "bert" / "config.json").read_text())
    (d / "bert" / "config.json").write_text(json.dumps({**cfg, "hidden_size": 64}))


def _pickled_weights(d: Path) -> None:
    """Weights only as a pickle (``pytorch_model.bin``): must never be loaded."""
    (d / "bert" / "model.safetensors").unlink()
    torch.save({"x": torch.zeros(1)}, d / "bert" / "pytorch_model.bin")


def _member_swapped(d: Path) -> None:
    """LayoutLM's folder holds BERT's files: the layout embeddings are missing."""
    shutil.rmtree(d / "layoutlm")
    shutil.copytree(d / "bert", d / "layoutlm")
    cfg = json.loads((d / "bert" / "config.json").read_text())
    (d / "layoutlm" / "config.json").write_text(json.dumps({**cfg, "model_type": "layoutlm"}))


DAMAGE: list[tuple[str, Callable[[Path], None], str, str]] = [
    # (case, damage, file named in the error, problem named in the error)
    ("half the weights", lambda d: _truncate(d / "bert" / "model.safetensors"),
     "bert/model.safetensors", "truncated"),
    ("a few bytes of weights", lambda d: _truncate(d / "layoutlm" / "model.safetensors", 40),
     "layoutlm/model.safetensors", "truncated or not a safetensors file"),
    ("empty weights", lambda d: _truncate(d / "bert" / "model.safetensors", 0),
     "bert/model.safetensors", "truncated or not a safetensors file"),
    ("no weights", lambda d: (d / "layoutlm" / "model.safetensors").unlink(),
     "layoutlm/model.safetensors", "missing"),
    ("pickled weights only", _pickled_weights, "bert/model.safetensors", "missing"),
    ("no card", lambda d: (d / "kvloop.json").unlink(), "kvloop.json", "missing"),
    ("card not JSON", lambda d: (d / "kvloop.json").write_text("{oops"), "kvloop.json",
     "cannot read the model card"),
    ("card cut short", lambda d: _truncate(d / "kvloop.json"), "kvloop.json",
     "cannot read the model card"),
    ("card of a list", lambda d: (d / "kvloop.json").write_text("[]"), "kvloop.json",
     "not a JSON object"),
    ("member config missing", lambda d: (d / "bert" / "config.json").unlink(),
     "bert/config.json", "missing"),
    ("member config not JSON", lambda d: (d / "layoutlm" / "config.json").write_text("{"),
     "layoutlm/config.json", "cannot read"),
    ("wrong shapes", _wrong_width, "bert/model.safetensors", "does not fit its config"),
    ("other member's weights", _member_swapped, "layoutlm/model.safetensors",
     "missing"),
    ("no tokenizer", lambda d: shutil.rmtree(d / "tokenizer"),
     "tokenizer/tokenizer_config.json", "missing"),
    ("tokenizer not JSON", lambda d: (d / "tokenizer" / "tokenizer.json").write_text("{"),
     "tokenizer", "cannot load the tokenizer"),
    ("lexicon not JSON", lambda d: (d / "lexicon.json").write_text("{"), "lexicon.json",
     "not a kvloop lexicon"),
]


@pytest.mark.parametrize("case,damage,file,problem", DAMAGE, ids=[c[0] for c in DAMAGE])
def test_a_damaged_model_folder_is_named_with_its_problem(
        saved: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture,
        case: str, damage: Callable[[Path], None], file: str, problem: str) -> None:
    from kvloop.cli import main

    model, _, docs = saved
    d = tmp_path / "model"
    shutil.copytree(model, d)
    damage(d)
    with pytest.raises((OSError, ValueError)) as err:
        load_predictor(d, "cpu")
    message = str(err.value)
    assert str(d / file) in message and problem in message, message
    # the command line: one line naming the same, exit status 2, nothing written
    out = tmp_path / "results.jsonl"
    assert main(["extract", str(d), str(docs), "--out", str(out), "--device", "cpu"]) == 2
    stderr = capsys.readouterr().err
    assert str(d / file) in stderr and problem in stderr and "Traceback" not in stderr
    assert not out.exists()


def test_the_undamaged_folder_loads_and_extracts(saved: tuple[Path, Path, Path],
                                                 tmp_path: Path) -> None:
    from kvloop.cli import main

    model, _, docs = saved
    pred = load_predictor(model, "cpu")
    assert pred.version.startswith("kv.ensemble.v1@")
    out = tmp_path / "results.jsonl"
    assert main(["extract", str(model), str(docs), "--out", str(out), "--device", "cpu"]) == 0
    assert len(out.read_text().splitlines()) == 2


def test_a_folder_of_the_other_kind_says_what_it_is(saved: tuple[Path, Path, Path],
                                                    tmp_path: Path) -> None:
    model, reward, _ = saved
    with pytest.raises(FileNotFoundError, match="that is a reward model.*--rerank"):
        load_predictor(reward, "cpu")
    with pytest.raises(FileNotFoundError, match="that is an extractor"):
        load_predictor(model, "cpu", rerank=model)
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        load_predictor(tmp_path / "nowhere", "cpu")
    shutil.copytree(model, tmp_path / "runs" / "base")
    with pytest.raises(FileNotFoundError, match="the model folders inside it: base"):
        load_predictor(tmp_path / "runs", "cpu")


@pytest.mark.parametrize("damage,problem", [
    (lambda d: _truncate(d / "model.safetensors"), "truncated"),
    (lambda d: (d / "reward.json").write_text(json.dumps(
        {**json.loads((d / "reward.json").read_text()), "field_dim": 8})), "does not fit"),
    (lambda d: shutil.rmtree(d / "tokenizer"), "missing (the tokenizer)"),
])
def test_a_damaged_reward_folder_is_named_with_its_problem(
        saved: tuple[Path, Path, Path], tmp_path: Path,
        damage: Callable[[Path], None], problem: str) -> None:
    model, reward, _ = saved
    d = tmp_path / "reward"
    shutil.copytree(reward, d)
    damage(d)
    with pytest.raises((OSError, ValueError), match=re.escape(problem)) as err:
        load_predictor(model, "cpu", rerank=d)
    assert str(d) in str(err.value)
    RewardModel.from_pretrained(reward)  # the undamaged one still loads


# -- versions: whole or not at all, never over another -------------------------------------

def test_a_version_appears_only_when_complete_and_never_over_another(tmp_path: Path) -> None:
    out = tmp_path / "v1"
    with new_version_dir(out) as work:
        assert work == partial_dir(out) and not out.exists()
        (work / "weights").write_text("w")
    assert (out / "weights").read_text() == "w" and not partial_dir(out).exists()
    before = _tree_hash(out)
    with pytest.raises(FileExistsError, match="never overwrites"), new_version_dir(out):
        pass
    assert _tree_hash(out) == before
    # a failed run before any checkpoint leaves nothing behind
    with pytest.raises(RuntimeError), new_version_dir(tmp_path / "v2") as work:
        (work / "half").write_text("h")
        raise RuntimeError("boom")
    assert not (tmp_path / "v2").exists() and not partial_dir(tmp_path / "v2").exists()


def test_a_stopped_run_keeps_its_checkpoint_and_one_run_at_a_time(tmp_path: Path) -> None:
    out = tmp_path / "v"
    with pytest.raises(KeyboardInterrupt), new_version_dir(out) as work:
        (work / "checkpoint-last").mkdir()
        with pytest.raises(FileExistsError, match="another training run"), \
                new_version_dir(out):
            pass
        raise KeyboardInterrupt
    assert (partial_dir(out) / "checkpoint-last").is_dir() and not out.exists()
    with new_version_dir(out) as work:  # the same command again: the same folder
        assert (work / "checkpoint-last").is_dir()
        with new_version_dir(work) as inner:  # nested: the outer block renames
            assert inner == work
    assert out.is_dir() and not (out / "checkpoint-last").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]  # no partial, no lock


# -- nothing is unpickled --------------------------------------------------------------------

def test_no_code_unpickles() -> None:
    """Every ``torch.load`` passes ``weights_only=True``; nothing imports pickle."""
    bad = []
    for path in sorted(REPO.glob("**/*.py")):
        if any(part.startswith(".") or part in ("build", "test-artifacts")
               for part in path.relative_to(REPO).parts):
            continue
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"torch\.load\(([^()]*(\([^()]*\))?[^()]*)\)", text):
            if "weights_only=True" not in m.group(1):
                bad.append(f"{path}: {m.group(0)}")
        if re.search(r"^\s*(import|from)\s+(c?pickle|dill|joblib)\b", text, re.MULTILINE):
            bad.append(f"{path}: imports pickle")
    assert not bad, bad
