"""One config parser for every trainer: flags, JSON/YAML files, overrides, clear errors."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from training.base import BaseTrainer
from training.cli import ConfigError, parse_config
from training.config import TrainConfig
from training.registry import TRAINERS, available, get_trainer
from training.supervised_config import SupervisedConfig

CONFIGS = sorted({spec.config_class() for spec in available().values()},
                 key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_trainer_config_parses_from_flags_and_files(cls: type, tmp_path: Path) -> None:
    assert issubclass(cls, TrainConfig)
    flags = ["--out", "m", "--seed", "7", "--max-steps", "5", "--device", "cpu"]
    cfg = parse_config(cls, flags)
    assert (cfg.out, cfg.seed, cfg.max_steps, cfg.device) == ("m", 7, 5, "cpu")
    assert cfg == cls(out="m", seed=7, max_steps=5, device="cpu")
    values = {"out": "from-file", "seed": 3, "lr": 5e-5}
    (tmp_path / "c.json").write_text(json.dumps(values), encoding="utf-8")
    (tmp_path / "c.yaml").write_text("out: from-file\nseed: 3\nlr: 5.0e-5\n", encoding="utf-8")
    for name in ("c.json", "c.yaml"):
        from_file = parse_config(cls, ["--config", str(tmp_path / name)])
        assert from_file == cls(**values)
        # flags override the file
        assert parse_config(cls, ["--config", str(tmp_path / name), "--seed", "9"]).seed == 9
    # every field has help text (it is the --help of the trainer)
    assert all(f.metadata.get("help") for f in fields(cls))


def test_types_lists_optionals_and_booleans() -> None:
    cfg = parse_config(SupervisedConfig, ["--loss-weights", "1", "0.5", "2", "--max-docs", "4",
                                          "--no-tesseract-profile", "--layout_lr", "1e-4"])
    assert cfg.loss_weights == [1.0, 0.5, 2.0] and cfg.max_docs == 4
    assert cfg.tesseract_profile is False and cfg.layout_lr == 1e-4
    assert parse_config(SupervisedConfig, []).max_docs is None


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ocr_mix"):
        parse_config(SupervisedConfig, ["--ocr-mix", "1.5"])
    (tmp_path / "bad.json").write_text(json.dumps({"lr": 1e-4, "learning_rate": 1}))
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['learning_rate'\]"):
        parse_config(SupervisedConfig, ["--config", str(tmp_path / "bad.json")])
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        parse_config(SupervisedConfig, ["--config", str(tmp_path / "list.yaml")])
    with pytest.raises(ConfigError, match="cannot read"):
        parse_config(SupervisedConfig, ["--config", str(tmp_path / "missing.yaml")])
    with pytest.raises(ConfigError, match="no-such-flag"):
        parse_config(SupervisedConfig, ["--no-such-flag", "1"])


def test_kvloop_train_reports_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from kvloop.cli import main
    assert main(["train", "base", "--data", "demo"]) == 2
    assert "--out is required" in capsys.readouterr().err
    (tmp_path / "c.yaml").write_text("data: demo\nout: x\narch: bert-xxl\n")
    assert main(["train", "base", "--config", str(tmp_path / "c.yaml")]) == 2
    assert "unknown arch 'bert-xxl'" in capsys.readouterr().err


def test_one_registry_names_every_trainer_and_its_contract() -> None:
    """Each entry's trainer keeps the one contract (``BaseTrainer``: ``train()`` returns a
    ``TrainResult``) and its config says which fields a run needs."""
    assert set(available()) == set(TRAINERS)
    for name, spec in TRAINERS.items():
        cls = spec.trainer_class()
        assert issubclass(cls, BaseTrainer) and cls.name == name
        assert "out" in spec.config_class().required
        needs = "data" if spec.reads == "dataset" else "init"
        assert needs in spec.config_class().required
    with pytest.raises(ValueError, match=r"unknown trainer 'ppo'; choose one of \['base'"):
        get_trainer("ppo")
    with pytest.raises(ValueError, match="--init is required"):
        get_trainer("sft").config_class()(out="x").check_required()
