"""``kvloop train sft-rl``: SFT on the corrections, then RL from the SFT model, in one command.

A random ``tiny`` parent (as in ``test_sft_trainer``) and a real SQLite store reviewed by the
demo's simulated operator (``_fill_store`` of ``test_rl_trainer``); the reward is the oracle
ablation so no reward model is needed. Every run is capped at a few steps.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from test_rl_trainer import _fill_store, _mock_receipts, _tree_hash

from extractor.model.card import ModelCard, model_version
from extractor.model.ensemble import KVEnsemble
from extractor.model.zoo import build_model
from kvloop.cli import main
from training.cli import parse_config
from training.sft_config import SFTConfig
from training.sft_rl_config import SFTThenRLConfig
from training.sft_rl_trainer import SFTThenRLTrainer, not_reusable


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("sft-rl")
    parent = root / "parent"
    build_model("tiny", seed=0, max_span_len=4).save_pretrained(parent)
    url = f"sqlite:///{root / 'feedback.db'}"
    _fill_store(url, parent, _mock_receipts(range(6)))
    return parent, url


def _flags(parent: Path, url: str, out: Path, *extra: str) -> list[str]:
    return ["--init", str(parent), "--store", url, "--out", str(out), "--reward", "oracle",
            "--samples-per-field", "2", "--batch-size", "4", "--epochs", "1",
            "--max-steps", "2", "--sft-epochs", "1", "--sft-max-steps", "2",
            "--sft-lr", "1e-3", "--sft-head-lr", "1e-3", "--threads", "1", "--device", "cpu",
            "--seed", "0", "--warmup-ratio", "0", "--no-tesseract-profile", *extra]


def _cfg(parent: Path, url: str, out: Path, *extra: str) -> SFTThenRLConfig:
    return parse_config(SFTThenRLConfig, _flags(parent, url, out, *extra))


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return KVEnsemble.from_pretrained(model_dir)[0].state_dict()


# -- config --------------------------------------------------------------------------------------

def test_the_sft_fields_are_sfts_with_its_defaults_and_help() -> None:
    sft = {f.name: f for f in fields(SFTConfig)}
    ours = [f for f in fields(SFTThenRLConfig) if f.name.startswith("sft_")]
    assert {"sft_epochs", "sft_lr", "sft_unlikelihood_weight", "sft_replay_data",
            "sft_replay_ratio"} <= {f.name for f in ours}
    for f in ours:
        twin = sft[f.name.removeprefix("sft_")]
        assert f.default == twin.default and twin.metadata["help"] in f.metadata["help"]
    with pytest.raises(ValueError, match="SFT stage.*replay_ratio"):
        SFTThenRLConfig(sft_replay_ratio=-1.0)


def test_the_stages_configs(tmp_path: Path) -> None:
    cfg = _cfg(Path("m"), "sqlite:///f.db", tmp_path / "v2", "--sft-unlikelihood-weight", "0.5",
               "--calib-data", "demo", "--dev-data", "demo", "--max-dev-docs", "3",
               "--lr", "3e-5")
    sft, rl = cfg.sft_config(), cfg.rl_config()
    assert sft.out == str(tmp_path / "v2.sft") == rl.init and sft.init == "m"
    assert (sft.epochs, sft.max_steps, sft.lr, sft.unlikelihood_weight) == (1, 2, 1e-3, 0.5)
    assert sft.calib_data == "" and rl.calib_data == "demo"  # decisions refitted once, at the end
    assert sft.dev_data == rl.dev_data == "demo" and sft.max_dev_docs == rl.max_dev_docs == 3
    assert (rl.out, rl.lr, rl.reward, rl.max_steps) == (str(tmp_path / "v2"), 3e-5, "oracle", 2)
    assert sft.store == rl.store and sft.seed == rl.seed == 0


def test_cli_help_lists_both_stages_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["train", "sft-rl", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "kvloop train sft-rl" in out
    for flag in ("--sft-epochs", "--sft-replay-data", "--reward", "--algorithm", "--kl-coef",
                 "--max-dev-docs", "--max-pool-docs"):
        assert flag in out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "sft-rl" in capsys.readouterr().out


# -- the run -------------------------------------------------------------------------------------

def test_the_command_writes_both_versions_and_the_chain(world: tuple[Path, str], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    parent, url = world
    before = _tree_hash(parent)
    out = tmp_path / "v2"
    assert main(["train", "sft-rl", *_flags(parent, url, out)]) == 0
    assert f"saved {out}" in capsys.readouterr().out
    sft_dir = tmp_path / "v2.sft"
    assert _tree_hash(parent) == before  # the parent is byte-identical
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left
    final, mid = ModelCard.load(out), ModelCard.load(sft_dir)
    assert final.training is not None and mid.training is not None
    # out -> <out>.sft -> init, by version and by folder
    assert final.training.trainer == "rl" and mid.training.trainer == "sft"
    assert final.training.parent_version == mid.version == model_version(sft_dir)
    assert mid.training.parent_version == model_version(parent)
    assert final.training.config["init"] == str(sft_dir)
    assert mid.training.config["init"] == str(parent)
    assert final.version == model_version(out) not in (mid.version, model_version(parent))
    # both stages read the same feedback
    assert final.training.feedback == mid.training.feedback
    assert mid.training.feedback is not None and mid.training.feedback.n_documents == 6
    for d in (out, sft_dir):
        rows = [json.loads(x) for x in (d / "curves.jsonl").read_text().splitlines()]
        assert 1 <= sum("step" in r for r in rows) <= 2
    with pytest.raises(FileExistsError):
        SFTThenRLTrainer(_cfg(parent, url, out))  # never over an existing version


def test_rl_starts_from_the_sft_model_which_stays_byte_identical(world: tuple[Path, str],
                                                                 tmp_path: Path) -> None:
    parent, url = world
    tr = SFTThenRLTrainer(_cfg(parent, url, tmp_path / "v2"))
    assert not tr.reuse
    sft_dir = tr.sft_stage()
    assert sft_dir == tmp_path / "v2.sft"
    mid = _tree_hash(sft_dir)
    sft_w, parent_w = _weights(sft_dir), _weights(parent)
    assert any(not torch.equal(sft_w[k], parent_w[k]) for k in sft_w)
    rl = tr.rl_trainer()
    ref = rl.reference.state_dict()  # the KL reference is the SFT model, not init
    assert all(torch.equal(ref[k], sft_w[k]) for k in sft_w)
    assert rl.parent_version == model_version(sft_dir)
    out = rl.train().out
    assert _tree_hash(sft_dir) == mid
    out_w = _weights(out)
    assert any(not torch.equal(out_w[k], sft_w[k]) for k in sft_w)


def test_an_interrupted_run_resumes_from_its_sft_stage(world: tuple[Path, str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    parent, url = world
    out = tmp_path / "v2"
    sft_dir = SFTThenRLTrainer(_cfg(parent, url, out)).sft_stage()  # then the run "dies"
    mid = _tree_hash(sft_dir)
    again = SFTThenRLTrainer(_cfg(parent, url, out))
    assert again.reuse and not_reusable(sft_dir, again.sft_cfg) is None

    def no_sft(self: SFTThenRLTrainer) -> None:
        raise AssertionError("the SFT stage ran again")

    monkeypatch.setattr(SFTThenRLTrainer, "sft_trainer", no_sft)
    assert again.train().out == out
    assert _tree_hash(sft_dir) == mid
    assert ModelCard.load(out).training.parent_version == model_version(sft_dir)  # type: ignore[union-attr]


def test_a_sft_folder_of_another_run_is_never_overwritten(world: tuple[Path, str],
                                                          tmp_path: Path) -> None:
    parent, url = world
    out = tmp_path / "v2"
    SFTThenRLTrainer(_cfg(parent, url, out)).sft_stage()
    with pytest.raises(FileExistsError, match=r"another SFT config \(lr differ\)"):
        SFTThenRLTrainer(_cfg(parent, url, out, "--sft-lr", "2e-3"))
    other = tmp_path / "w"
    (tmp_path / "w.sft").mkdir()
    with pytest.raises(FileExistsError, match="w.sft: already exists.*not a model version"):
        SFTThenRLTrainer(_cfg(parent, url, other))
    # the RL stage's reward is checked before the SFT stage runs
    with pytest.raises(ValueError, match="reward"):
        SFTThenRLTrainer(_cfg(parent, url, tmp_path / "x", "--reward", ""))
    assert not (tmp_path / "x.sft").exists()


def test_cli_reports_an_occupied_out(world: tuple[Path, str], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    parent, url = world
    (tmp_path / "v2").mkdir()
    assert main(["train", "sft-rl", *_flags(parent, url, tmp_path / "v2")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["train", "sft-rl", "--out", str(tmp_path / "y"), "--reward", "oracle"]) == 2
    assert "--init is required" in capsys.readouterr().err
