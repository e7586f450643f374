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
import torch.nn.functional as F

from extractor.model.decode import log1m_exp

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


# --------------------------------------------------------------------------------------------
# Preference, reward and policy losses. Every function below is pure: tensors (or floats) in,
# tensors out, nothing logged. Batch dimensions are written [N]; a "log-prob" is the log of a
# normalised probability of one outcome of the (document, field) categorical over word spans
# plus "absent" (``extractor.model.decode.span_log_probs``), or of a value (a set of spans).
# --------------------------------------------------------------------------------------------


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor,
                       margin: torch.Tensor | float | None = None) -> torch.Tensor:
    """Pairwise reward-model loss ``mean(-log sigmoid(r_c - r_r - margin))``.

    Bradley & Terry (1952); Ouyang et al. 2022 (InstructGPT), Eq. 1. The optional ``margin``
    (Touvron et al. 2023, Llama 2, Eq. 2) asks for a larger gap on clearer preferences.
    ``r_chosen``, ``r_rejected``: [N] reward logits; ``margin``: [N] or a float. Returns [].
    """
    diff = r_chosen - r_rejected  # [N]
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff).mean()


def pointwise_reward_loss(r: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of a reward logit against 1 (accepted / right value) or 0 (rejected).

    ``r``: [N] logits; ``label``: [N] in {0, 1} (any dtype). Returns [] (mean).
    """
    return F.binary_cross_entropy_with_logits(r, label.to(r.dtype))


def _standardize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``(x - mean) / (std + eps)`` over the last axis (unbiased std, as trl's GRPO).

    Rows with fewer than 2 entries or all entries equal give exact zeros: there is nothing to
    compare, and dividing a rounding residue by ``eps`` would only amplify noise.
    """
    if x.shape[-1] < 2:
        return torch.zeros_like(x)
    centred = x - x.mean(-1, keepdim=True)  # [..., K]
    flat = x.amax(-1, keepdim=True) == x.amin(-1, keepdim=True)  # [..., 1]
    out = centred / (x.std(-1, keepdim=True) + eps)  # [..., K]
    return out.masked_fill(flat, 0.0)


def group_advantages(rewards: torch.Tensor, mode: str = "rloo", eps: float = 1e-4,
                     ) -> torch.Tensor:
    """Per-sample advantages from a group of ``K`` samples per (document, field).

    ``rewards``: [G, K]. Returns [G, K].

    - ``"rloo"``: ``A_i = r_i - mean_{j != i} r_j = K/(K-1) (r_i - mean_j r_j)``, the
      leave-one-out baseline (Kool et al. 2019, "Buy 4 REINFORCE samples, get a baseline for
      free!"; Ahmadian et al. 2024, "Back to Basics", the RLOO estimator). With ``K = 1`` there
      is no other sample to form a baseline from, so the advantages are 0 (no update), not
      the raw reward: a lone sample carries no relative signal.
    - ``"grpo"``: ``A_i = (r_i - mean r) / (std r + eps)`` (Shao et al. 2024, DeepSeekMath,
      Sec. 4.1.2 outcome supervision, the advantage in the GRPO objective Eq. 3); unbiased std.

    Groups whose rewards are all equal get exact zeros in both modes.
    """
    k = rewards.shape[-1]
    if mode == "grpo":
        return _standardize(rewards, eps)
    if mode != "rloo":
        raise ValueError(f"mode must be 'rloo' or 'grpo', got {mode!r}")
    if k < 2:
        return torch.zeros_like(rewards)
    loo_mean = (rewards.sum(-1, keepdim=True) - rewards) / (k - 1)  # [G, K]
    flat = rewards.amax(-1, keepdim=True) == rewards.amin(-1, keepdim=True)  # [G, 1]
    return (rewards - loo_mean).masked_fill(flat, 0.0)


def normalize_advantages(a: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Whiten advantages over the whole batch: ``(a - mean) / (std + eps)`` (unbiased std).

    ``a``: any shape; returns the same shape. A batch of one, or of equal values, gives zeros.
    """
    return _standardize(a.reshape(-1), eps).reshape(a.shape)


def policy_gradient_loss(logp: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """REINFORCE surrogate ``-mean(A * log pi(y))`` with ``A`` held constant (Williams 1992).

    ``logp``: [N] log-probs of the sampled outcomes under the current policy (with grad);
    ``advantages``: [N] (detached here). Returns [].
    """
    return -(advantages.detach() * logp).mean()


def ppo_clip_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                  clip: float = 0.2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO clipped surrogate (Schulman et al. 2017, Eq. 7), negated to be minimised.

    ``L = mean(max(-A r, -A clip(r, 1-clip, 1+clip)))`` with ``r = exp(logp - old_logp)``.
    ``logp``: [N] under the current policy (with grad); ``old_logp``: [N] under the policy
    that sampled (detached); ``advantages``: [N] (detached). Returns ``(loss [],
    clip_fraction [], approx_kl [])``, the last two detached: ``clip_fraction`` is the share of
    samples where the clipped term is the one taken (their gradient is 0; trl's definition),
    ``approx_kl`` the k3 estimate of ``KL(old || new)`` on samples from ``old``:
    ``(r - 1) - log r`` (Schulman 2020, "Approximating KL divergence").
    """
    log_ratio = logp - old_logp.detach()  # [N]
    ratio = log_ratio.exp()  # [N]
    adv = advantages.detach()  # [N]
    unclipped = -adv * ratio  # [N]
    clipped = -adv * ratio.clamp(1.0 - clip, 1.0 + clip)  # [N]
    loss = torch.maximum(unclipped, clipped).mean()
    with torch.no_grad():
        clip_fraction = (clipped > unclipped).to(logp.dtype).mean()
        approx_kl = (torch.expm1(log_ratio) - log_ratio).mean()
    return loss, clip_fraction, approx_kl


def categorical_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Exact ``KL(pi || ref) = sum_c p_c (log p_c - log ref_c)`` over the last axis.

    ``logp``, ``ref_logp``: [..., C] normalised log-probs, possibly ``-inf`` (impossible
    outcomes, e.g. spans past the end of the page). Returns [...]. Outcomes with ``p = 0`` add
    exactly 0 (``0 * log 0 = 0``, also when ``ref = 0``), without NaN in value or gradient; an
    outcome with ``p > 0`` and ``ref = 0`` makes the KL ``inf``, as it should.
    """
    p = logp.exp()  # [..., C]
    live = p > 0  # [..., C]; also drops log-probs that underflow to p = 0
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    diff = torch.where(live, logp, zero) - torch.where(live, ref_logp, zero)  # [..., C]
    return torch.where(live, p * diff, zero).sum(-1)


def span_categorical_kl(span_lp: torch.Tensor, absent_lp: torch.Tensor,
                        ref_span_lp: torch.Tensor, ref_absent_lp: torch.Tensor,
                        ) -> torch.Tensor:
    """Exact KL between two span-plus-absent categoricals of one (document, field).

    ``span_lp``, ``ref_span_lp``: [n, M] from ``span_log_probs`` (same ``max_len``, so the same
    outcomes in the same places); ``absent_lp``, ``ref_absent_lp``: []. Returns [].
    """
    if span_lp.shape != ref_span_lp.shape:
        raise ValueError(f"span grids differ: {tuple(span_lp.shape)} vs "
                         f"{tuple(ref_span_lp.shape)} (same document and max_len needed)")
    flat = torch.cat([span_lp.flatten(), absent_lp.reshape(1)])  # [n*M + 1]
    ref_flat = torch.cat([ref_span_lp.flatten(), ref_absent_lp.reshape(1)])  # [n*M + 1]
    return categorical_kl(flat, ref_flat)


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Per-sample estimators of ``KL(pi || ref)`` from outcomes sampled from ``pi``.

    Schulman (2020), "Approximating KL divergence": with ``log r = ref_logp - logp``,
    ``k1 = -log r`` (unbiased, can be negative), ``k2 = (log r)^2 / 2`` (biased, low variance),
    ``k3 = (r - 1) - log r`` (unbiased, >= 0). Use :func:`categorical_kl` where the whole
    categorical is at hand; these are for when only sampled log-probs are.
    ``logp``, ``ref_logp``: [N]. Returns [N] (no reduction, no coefficient).
    """
    log_r = ref_logp - logp  # [N]
    if kind == "k1":
        return -log_r
    if kind == "k2":
        return 0.5 * log_r.square()
    if kind == "k3":
        return torch.expm1(log_r) - log_r
    raise ValueError(f"kind must be 'k1', 'k2' or 'k3', got {kind!r}")


def adaptive_kl_coef(beta: float, kl: float | torch.Tensor, target: float, n_steps: int,
                     horizon: int) -> float:
    """One step of the adaptive KL controller (Ziegler et al. 2019, Sec. 2.2).

    ``e = clip(KL / target - 1, -0.2, 0.2)``; returns ``beta * (1 + e * min(n_steps / horizon,
    1))``. ``kl`` is the measured KL of the last batch, ``n_steps`` the samples (or steps) it
    covered. The paper's ``n_steps / horizon`` is small (a batch against a horizon of 10k); a
    batch longer than the horizon is capped at one horizon, so one update moves ``beta`` by at
    most 20% and never makes it negative (uncapped, a low KL with ``n_steps > 5 horizon``
    flipped its sign). The caller keeps ``beta``: no hidden state.
    """
    error = min(max(float(kl) / target - 1.0, -0.2), 0.2)
    return beta * (1.0 + error * min(n_steps / horizon, 1.0))


def dpo_loss(pi_c: torch.Tensor, pi_r: torch.Tensor, ref_c: torch.Tensor, ref_r: torch.Tensor,
             beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO: ``mean(-log sigmoid(beta ((pi_c - ref_c) - (pi_r - ref_r))))``.

    Rafailov et al. 2023, Eq. 7. All inputs [N] log-probs of the chosen / rejected outcome under
    the policy and the frozen reference. Returns ``(loss [], chosen_reward [N],
    rejected_reward [N])``, the implicit rewards ``beta (pi - ref)`` detached. Equal chosen and
    rejected give ``log 2``.
    """
    chosen = pi_c - ref_c  # [N]
    rejected = pi_r - ref_r  # [N]
    loss = -F.logsigmoid(beta * (chosen - rejected)).mean()
    return loss, beta * chosen.detach(), beta * rejected.detach()


def dpop_loss(pi_c: torch.Tensor, pi_r: torch.Tensor, ref_c: torch.Tensor, ref_r: torch.Tensor,
              beta: float, lam: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO-Positive (Pal et al. 2024, "Smaug", arXiv 2402.13228, Eq. 3).

    ``mean(-log sigmoid(beta ((pi_c - ref_c) - (pi_r - ref_r) - lam max(0, ref_c - pi_c))))``:
    the penalty is *subtracted* inside ``beta (...)``, so it only acts (and raises the loss
    above DPO's) when the chosen outcome has fallen below its reference log-prob, which plain
    DPO allows as long as the margin grows. ``lam = 0`` is :func:`dpo_loss`. Inputs and returns
    as :func:`dpo_loss`.
    """
    chosen = pi_c - ref_c  # [N]
    rejected = pi_r - ref_r  # [N]
    penalty = (ref_c - pi_c).clamp(min=0.0)  # [N]
    loss = -F.logsigmoid(beta * (chosen - rejected - lam * penalty)).mean()
    return loss, beta * chosen.detach(), beta * rejected.detach()


def unlikelihood_loss(logp_rejected: torch.Tensor) -> torch.Tensor:
    """Unlikelihood ``mean(-log(1 - p))`` of rejected outcomes, from their log-probs.

    Welleck et al. 2019, "Neural Text Generation with Unlikelihood Training", Sec. 4 (the
    unlikelihood term ``-log(1 - p(c))`` over negative candidates). Computed by
    ``extractor.model.decode.log1m_exp``, which clamps ``log p`` at ``-1e-7``: the loss stays
    finite (at most ~16.1) for ``p -> 1``, and has no gradient above that clamp.
    ``logp_rejected``: [N]. Returns [].
    """
    return -log1m_exp(logp_rejected).mean()


def logsumexp_value_logprob(span_logps: torch.Tensor) -> torch.Tensor:
    """Log-probability of a value spelled by several spans: ``logsumexp`` over the last axis.

    The operator judges a *value* ("60.30"), and the decoder shows a value's probability as
    the sum over every span that reads as it (``decode_field`` merges them). Preference losses
    must compare the same thing: DPO on one span of the chosen value would let the model win by
    moving mass between spellings of the same value (or towards another spelling of the
    rejected one) instead of between values. ``span_logps``: [..., S]; returns [...] (``-inf``
    for ``S = 0``).
    """
    return torch.logsumexp(span_logps, dim=-1)
