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
