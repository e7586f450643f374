"""Where tensors live: one rule for the extractor, the trainers and the CLI.

``auto`` (the default everywhere) is CUDA when a GPU is visible, else Apple's MPS, else the
CPU; any other name is passed to ``torch.device`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``) and
refused with a clear message when this machine does not have it. Multi-GPU training goes
through Hugging Face Accelerate (``accelerate launch -m kvloop train ...``), which sets the
device of each process itself; under such a launcher (``LOCAL_RANK`` in the environment, as
torchrun and Accelerate set it) ``auto`` and ``cuda`` are that process's own GPU,
``cuda:<LOCAL_RANK>``, so that models loaded outside Accelerate go there too. An explicit
index (``cuda:1``) is taken as given.
"""

from __future__ import annotations

import os

import torch

DEVICE_HELP = "'auto' (CUDA when present, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'"


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def local_rank() -> int | None:
    """This process's index on its machine under a distributed launcher (``LOCAL_RANK``), or
    ``None`` when not launched by one."""
    raw = os.environ.get("LOCAL_RANK")
    if raw is None or not raw.strip():
        return None
    try:
        rank = int(raw)
    except ValueError:
        rank = -1
    if rank < 0:
        raise ValueError(f"LOCAL_RANK={raw!r} (set by the distributed launcher) is not a "
                         "process index (0, 1, ...)")
    return rank


def _cuda(name: str) -> torch.device:
    """``cuda`` without an index: this process's GPU under a launcher, else the current one."""
    rank = local_rank()
    if rank is None:
        return torch.device("cuda")
    if rank >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} under a distributed launcher: LOCAL_RANK={rank}, but "
                         f"only {torch.cuda.device_count()} GPU(s) visible")
    return torch.device("cuda", rank)


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` for ``name`` (``None`` or ``auto``: the best one present)."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return _cuda("auto")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}: use {DEVICE_HELP}") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but no CUDA GPU is visible here")
        if dev.index is None:
            return _cuda(name)
        if dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} GPU(s) visible")
    if dev.type == "mps" and not _mps_available():
        raise ValueError(f"device {name!r} asked for, but MPS is not available here")
    return dev
