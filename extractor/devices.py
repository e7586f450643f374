"""Where tensors live: one rule for the extractor, the trainers and the CLI.

``auto`` (the default everywhere) is CUDA when a GPU is visible, else Apple's MPS, else the
CPU; any other name is passed to ``torch.device`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``) and
refused with a clear message when this machine does not have it. Multi-GPU training goes
through Hugging Face Accelerate (``accelerate launch -m kvloop train ...``), which sets the
device of each process itself.
"""

from __future__ import annotations

import torch

DEVICE_HELP = "'auto' (CUDA when present, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'"


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` for ``name`` (``None`` or ``auto``: the best one present)."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}: use {DEVICE_HELP}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but no CUDA GPU is visible here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} GPU(s) visible")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                  and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r} asked for, but MPS is not available here")
    return dev
