"""Devices are options: 'auto' picks what is present, unknown or absent devices are refused."""

from __future__ import annotations

import pytest
import torch

from extractor.devices import resolve_device


def test_auto_and_cpu() -> None:
    want = "cuda" if torch.cuda.is_available() else None
    got = resolve_device("auto")
    assert got.type == (want or got.type)
    assert resolve_device(None) == got
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_refusals_say_why() -> None:
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu-ish")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda:0")


@pytest.fixture
def four_gpus(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Four visible GPUs, as far as ``resolve_device`` asks (this machine has none)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    return monkeypatch


def test_a_launched_process_takes_its_own_gpu(four_gpus: pytest.MonkeyPatch) -> None:
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda")  # no launcher
    four_gpus.setenv("LOCAL_RANK", "2")  # what torchrun / accelerate launch set
    for name in ("auto", None, "", "cuda"):
        assert resolve_device(name) == torch.device("cuda", 2), name
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # an explicit index wins
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="only 4 GPU"):
        resolve_device("cuda:7")


@pytest.mark.parametrize("rank, why", [("4", "LOCAL_RANK=4, but only 4 GPU"),
                                       ("-1", "'-1' .* is not a process index"),
                                       ("two", "'two' .* is not a process index")])
def test_a_bad_local_rank_is_refused(four_gpus: pytest.MonkeyPatch, rank: str, why: str) -> None:
    four_gpus.setenv("LOCAL_RANK", rank)
    for name in ("auto", "cuda"):
        with pytest.raises(ValueError, match=why):
            resolve_device(name)
    assert resolve_device("cuda:3") == torch.device("cuda", 3)  # not read: the index is given


def test_local_rank_does_not_move_a_cpu_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LOCAL_RANK", "1")  # torchrun over CPU processes (gloo)
    assert resolve_device("auto").type in ("cpu", "mps")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")
