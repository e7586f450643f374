"""Kill and resume: a training run killed after a checkpoint, run again with the same command,
continues from it and ends with the weights of a run that was never stopped; the parent stays
byte-identical; a checkpoint of another run is refused; two processes step together."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from test_rl_trainer import _curves, _fill_store, _mock_receipts, _parent, _tree_hash

from extractor.document import write_jsonl
from training.loop import CHECKPOINT, CHECKPOINT_NEXT, STATE_FILE, find_checkpoint
from training.rl_config import RLConfig
from training.rl_trainer import RLTrainer
from training.supervised_config import SupervisedConfig
from training.supervised_trainer import SupervisedTrainer
from training.versions import partial_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("resume")
    docs = root / "docs.jsonl"
    write_jsonl(str(docs), _mock_receipts(range(30)))
    return {"root": root, "parent": _parent(root / "parent"), "docs": docs}


def _weights(model_dir: Path) -> dict[str, bytes]:
    return {m: (model_dir / m / "model.safetensors").read_bytes() for m in ("bert", "layoutlm")}


def _without_times(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in rows]


def _state(ckpt: Path) -> dict[str, Any]:
    return json.loads((ckpt / STATE_FILE).read_text())


@pytest.mark.slow
def test_kvloop_train_killed_then_rerun_resumes_to_the_same_weights(
        world: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """SIGKILL a real ``kvloop train base`` after its first checkpoint, rerun the command."""
    from kvloop.cli import main

    parent, epochs = world["parent"], 4
    parent_files = _tree_hash(parent)
    args = ["train", "base", "--data", str(world["docs"]), "--init", str(parent),
            "--epochs", str(epochs), "--patience", "9", "--batch-size", "4", "--ocr-mix", "0",
            "--no-tesseract-profile", "--threads", "1", "--seed", "0", "--lr", "2e-3",
            "--head-lr", "2e-3"]
    unbroken, out = tmp_path / "unbroken", tmp_path / "resumed"
    assert main([*args, "--out", str(unbroken)]) == 0
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "kvloop.cli", *args, "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = partial_dir(out) / CHECKPOINT
    deadline = time.time() + 600
    while not (ckpt / STATE_FILE).is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    killed_at = _state(ckpt)["epoch"]
    assert 1 <= killed_at < epochs, "the run ended before it could be killed"
    assert not out.exists() and _tree_hash(parent) == parent_files

    with caplog.at_level(logging.INFO):
        assert main([*args, "--out", str(out)]) == 0  # the same command again
    assert f"resuming from {ckpt} (epoch {killed_at}," in caplog.text
    assert _weights(out) == _weights(unbroken)
    steps, ends = _curves(out)
    assert [r["step"] for r in steps] == list(range(1, len(steps) + 1))  # no step twice
    assert (steps, _without_times(ends)) == (_curves(unbroken)[0],
                                             _without_times(_curves(unbroken)[1]))
    cards = [json.loads((d / "kvloop.json").read_text()) for d in (out, unbroken)]
    assert cards[0]["version"] == cards[1]["version"]
    assert cards[0]["training"]["parent_version"] == cards[1]["training"]["parent_version"]
    assert not partial_dir(out).exists() and not (out / CHECKPOINT).exists()
    assert _tree_hash(parent) == parent_files


class _CtrlC:
    """Ctrl-C (``KeyboardInterrupt``) while evaluating epoch ``at`` (a trainer mixin)."""

    at = 0

    def evaluate(self, epoch: int) -> dict[str, Any]:
        if epoch == self.at:
            raise KeyboardInterrupt
        return super().evaluate(epoch)  # type: ignore[misc]


class _Interrupted(_CtrlC, SupervisedTrainer):
    pass


def _base(out: Path, **kw: Any) -> SupervisedConfig:
    return SupervisedConfig(**{"out": str(out), "arch": "tiny", "max_span_len": 4, "epochs": 3,
                               "patience": 9, "batch_size": 4, "seed": 0, "threads": 1,
                               "ocr_mix": 0.0, "lr": 2e-3, "head_lr": 2e-3, **kw})


def test_an_interrupted_run_resumes_only_with_its_own_settings(tmp_path: Path) -> None:
    docs = {"train_docs": _mock_receipts(range(8)), "dev_docs": _mock_receipts(range(8, 10)),
            "calib_docs": []}
    SupervisedTrainer(_base(tmp_path / "unbroken"), **docs).train()
    out = tmp_path / "resumed"
    tr = _Interrupted(_base(out), **docs)
    tr.at = 2
    with pytest.raises(KeyboardInterrupt):
        tr.train()
    ckpt = find_checkpoint(partial_dir(out))
    assert ckpt is not None and _state(ckpt)["epoch"] == 1 and not out.exists()
    # another setting: refused, naming it, and the checkpoint is kept
    with pytest.raises(ValueError, match=r"checkpoint of another run \(config\.lr: 0\.002 then, "
                                         r"0\.001 now\)"):
        SupervisedTrainer(replace(_base(out), lr=1e-3), **docs).train()
    assert find_checkpoint(partial_dir(out)) == ckpt
    # where it runs is no difference ("auto" was the CPU too)
    res = SupervisedTrainer(replace(_base(out), device="cpu"), **docs).train()
    assert _weights(out) == _weights(tmp_path / "unbroken")
    assert [r["epoch"] for r in res.history] == [1, 2, 3]


def test_a_kill_between_checkpoints_leaves_one_complete(tmp_path: Path) -> None:
    """``checkpoint-next`` counts only once its state file is written; ``checkpoint-last``
    first."""
    out = tmp_path / "run"
    (out / CHECKPOINT_NEXT).mkdir(parents=True)
    assert find_checkpoint(out) is None  # killed while writing the first one
    (out / CHECKPOINT_NEXT / STATE_FILE).write_text("{}")
    assert find_checkpoint(out) == out / CHECKPOINT_NEXT  # killed between remove and rename
    (out / CHECKPOINT).mkdir()
    (out / CHECKPOINT / STATE_FILE).write_text("{}")
    assert find_checkpoint(out) == out / CHECKPOINT


def test_a_damaged_checkpoint_is_named(tmp_path: Path) -> None:
    docs = {"train_docs": _mock_receipts(range(4)), "dev_docs": [], "calib_docs": []}
    out = tmp_path / "m"
    tr = _Interrupted(_base(out, epochs=2), **docs)
    tr.at = 2
    with pytest.raises(KeyboardInterrupt):
        tr.train()
    ckpt = partial_dir(out) / CHECKPOINT
    state = (ckpt / "trainer_state.safetensors")
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(ValueError, match=f"{state}: truncated"):
        SupervisedTrainer(_base(out, epochs=2), **docs).train()
    (ckpt / STATE_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=f"{ckpt / STATE_FILE}: cannot read"):
        SupervisedTrainer(_base(out, epochs=2), **docs).train()


# -- every trainer: RL (its own sampling generator) through the same loop --------------------

class _InterruptedRL(_CtrlC, RLTrainer):
    pass


def test_rl_resumes_with_its_sampling_generator_and_kl_state(world: dict[str, Path],
                                                             tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    _fill_store(url, world["parent"], _mock_receipts(range(4)))
    parent_files = _tree_hash(world["parent"])

    def cfg(out: str) -> RLConfig:
        return RLConfig(init=str(world["parent"]), store=url, out=str(tmp_path / out),
                        reward="oracle", samples_per_field=4, batch_size=2, epochs=2,
                        patience=9, lr=2e-3, head_lr=2e-3, seed=0, threads=1,
                        warmup_ratio=0.0, adaptive_kl=True, kl_target=1e-4, kl_horizon=4)

    RLTrainer(cfg("unbroken")).train()
    tr = _InterruptedRL(cfg("resumed"))
    tr.at = 2
    with pytest.raises(KeyboardInterrupt):
        tr.train()
    resumed = RLTrainer(cfg("resumed"))
    fresh = torch.Generator().manual_seed(0).get_state()
    resumed.train()
    assert not torch.equal(resumed.generator.get_state(), fresh)
    assert _weights(tmp_path / "resumed") == _weights(tmp_path / "unbroken")
    # the adaptive KL coefficient went on from where it was (a restart from kl_coef would
    # change the second epoch's losses, so its weights and curves)
    resumed_steps, resumed_epochs = _curves(tmp_path / "resumed")
    unbroken_steps, unbroken_epochs = _curves(tmp_path / "unbroken")
    assert resumed_steps == unbroken_steps  # the second epoch's losses, KL coefficients too
    # the adaptive KL coefficient went on from where the killed run left it
    coefs = [r["kl_coef"] for r in unbroken_epochs]
    assert coefs[0] != coefs[1] and [r["kl_coef"] for r in resumed_epochs] == coefs
    assert resumed.kl_coef == coefs[-1] > 0
    assert _tree_hash(world["parent"]) == parent_files


# -- several processes -------------------------------------------------------------------------

DRIVER = """
import hashlib, json, os, sys
sys.path[:0] = [{repo!r}, {tests!r}]
from test_rl_trainer import _mock_receipts
from training.supervised_config import SupervisedConfig
from training.supervised_trainer import SupervisedTrainer

cfg = SupervisedConfig(out={out!r}, arch="tiny", max_span_len=4, epochs=2, patience=9,
                       batch_size=2, seed=0, threads=1, ocr_mix=0.0, lr=2e-3, head_lr=2e-3)
tr = SupervisedTrainer(cfg, train_docs=_mock_receipts(range(9)), dev_docs=[], calib_docs=[])
res = tr.fit()
h = hashlib.sha256()
for k, v in sorted(tr.model.state_dict().items()):
    h.update(k.encode() + v.numpy().tobytes())
with open({out!r} + f"-rank{{os.environ['RANK']}}.json", "w") as fh:
    json.dump({{"weights": h.hexdigest(), "steps": res.steps, "history": res.history}}, fh)
"""


@pytest.mark.slow
def test_two_processes_step_together(tmp_path: Path) -> None:
    """``torchrun`` with 2 CPU processes (gloo): the same weights in both at the end (the
    gradients were averaged), the same number of steps on 9 windows in 5 batches of 2 (padded to 6),
    one curves file and one checkpoint written by the main process."""
    out = tmp_path / "run"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(repo=str(REPO), tests=str(REPO / "tests"), out=str(out)))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         "2", str(script)],
        capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"run-rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 2 * 3
    assert ranks[0]["history"] == ranks[1]["history"]
    steps, ends = _curves(out)
    assert [r["step"] for r in steps] == list(range(1, ranks[0]["steps"] + 1))
    assert [r["epoch_end"] for r in ends] == [1, 2]
    ckpt = out / CHECKPOINT
    assert _state(ckpt)["num_processes"] == 2
    assert sorted(p.name for p in ckpt.glob("rng-*.json")) == ["rng-0.json", "rng-1.json"]
