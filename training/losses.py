"""Loss functions as pure tensor functions (no model, no logging).

The supervised extractor loss is a sum of token-level negative log-likelihoods, one per
ensemble member plus one on the fused output, so that each member stays a good tagger on its
own and the fusion weights learn how to combine them:

    L = CE(bert) + CE(layoutlm) + CE(fused)

where each CE averages ``-log p(label)`` over the labelled tokens (a word's first sub-token;
others carry the ignore index -100).
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


def token_nll(log_probs: torch.Tensor, labels: torch.Tensor,
              ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean ``-log p(label)`` over labelled tokens.

    ``log_probs``: [B, T, L] normalised log-probabilities; ``labels``: [B, T] ints.
    Returns 0 (with grad) when no token is labelled.
    """
    mask = labels != ignore_index
    if not bool(mask.any()):
        return log_probs.sum() * 0.0
    picked = log_probs[mask].gather(-1, labels[mask].unsqueeze(-1)).squeeze(-1)  # [N]
    return -picked.mean()


def joint_tagging_loss(bert_lp: torch.Tensor, layout_lp: torch.Tensor, fused_lp: torch.Tensor,
                       labels: torch.Tensor, weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
                       ) -> tuple[torch.Tensor, dict[str, float]]:
    """``w0*CE(bert) + w1*CE(layoutlm) + w2*CE(fused)`` and the parts as floats for logging."""
    parts = {"bert": token_nll(bert_lp, labels), "layoutlm": token_nll(layout_lp, labels),
             "fused": token_nll(fused_lp, labels)}
    total = (weights[0] * parts["bert"] + weights[1] * parts["layoutlm"]
             + weights[2] * parts["fused"])
    return total, {k: float(v.detach()) for k, v in parts.items()}
