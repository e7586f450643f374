"""Optimiser parameter groups and the learning-rate schedule every trainer shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from extractor.model.layoutlm import LAYOUT_EMBEDDINGS


def param_groups(model: torch.nn.Module, lr: float, head_lr: float,
                 layout_lr: float | None = None, weight_decay: float = 0.01,
                 ) -> list[dict[str, Any]]:
    """Pretrained encoder weights at ``lr``; new heads and fusion at ``head_lr``; layout
    embeddings at ``layout_lr`` (default ``lr``).

    No weight decay on biases, LayerNorm weights and layout embeddings (BERT's recipe; decay
    would pull the layout code back to zero). Frozen parameters are left out.
    """
    groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if any(e in name for e in LAYOUT_EMBEDDINGS):
            group_lr, decay = (layout_lr or lr), False
        else:
            group_lr = head_lr if ("classifier" in name or name == "fusion_raw") else lr
            decay = p.ndim > 1 and "LayerNorm" not in name
        groups.setdefault((group_lr, decay), []).append(p)
    return [{"params": ps, "lr": g_lr, "weight_decay": weight_decay if decay else 0.0}
            for (g_lr, decay), ps in groups.items()]


def warmup_linear(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up to 1 over ``warmup_steps``, then linear decay to 0 at ``total_steps``
    (BERT's schedule; a multiplier for ``LambdaLR``)."""
    warm = max(1, warmup_steps)

    def factor(step: int) -> float:
        return min((step + 1) / warm, max(0.0, (total_steps - step) / max(1, total_steps - warm)))

    return factor
