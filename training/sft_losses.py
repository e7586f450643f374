"""SFT's pure losses: cross-entropy against *sets* of allowed labels (partial labels).

An operator's corrections label a page only partly: a field whose right value is unknown (a
reject-only field, a typed value no words spell, a field the filter did not select) says
nothing about which words hold it, so its words must not be taught ``O``. Each labelled token
gets the set of labels it may have, and the loss is the negative log of the set's mass,

    L = mean_t  -log sum_{l in A_t} p_t(l)

the marginal likelihood of the labels consistent with the annotation: Jin & Ghahramani 2002,
"Learning with Multiple Labels" (NIPS 2002; the likelihood of a candidate label set), and, for
sequences, Tsuboi et al. 2008, "Training Conditional Random Fields Using Incomplete
Annotations" (COLING), the marginal over label sequences consistent with the partial
annotation. The ensemble's tags are independent per token given the encoder, so that marginal
factorises into the per-token sum above. A singleton set is plain cross-entropy
(``training.losses.token_nll``); a set of every label costs nothing.

Pure: tensors in, tensors out, nothing logged. Shapes: ``[B, T, L]`` tag log-probs, ``[B, T, L]``
boolean allowed sets (a token with an empty set is not labelled: padding, special tokens, a
word's later sub-tokens).
"""

from __future__ import annotations

import torch


def partial_label_nll(log_probs: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Mean ``-log sum_{l in allowed} p(l)`` over tokens with a non-empty allowed set.

    ``log_probs``: [B, T, L] normalised log-probabilities; ``allowed``: [B, T, L] bool.
    Returns [] (0 with grad when no token is labelled).
    """
    labelled = allowed.any(-1)  # [B, T]
    if not bool(labelled.any()):
        return log_probs.sum() * 0.0
    lp = log_probs[labelled]  # [N, L]
    masked = lp.masked_fill(~allowed[labelled], float("-inf"))  # [N, L]
    return -torch.logsumexp(masked, dim=-1).mean()


def joint_partial_tagging_loss(bert_lp: torch.Tensor, layout_lp: torch.Tensor,
                               fused_lp: torch.Tensor, allowed: torch.Tensor,
                               weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
                               ) -> tuple[torch.Tensor, dict[str, float]]:
    """``w0*PL(bert) + w1*PL(layoutlm) + w2*PL(fused)`` (PL: :func:`partial_label_nll`), the
    three members of base training (``training.losses.joint_tagging_loss``) with allowed label
    sets for labels; returns the total and the parts as floats for logging."""
    parts = {"bert": partial_label_nll(bert_lp, allowed),
             "layoutlm": partial_label_nll(layout_lp, allowed),
             "fused": partial_label_nll(fused_lp, allowed)}
    total = (weights[0] * parts["bert"] + weights[1] * parts["layoutlm"]
             + weights[2] * parts["fused"])
    return total, {k: float(v.detach()) for k, v in parts.items()}
