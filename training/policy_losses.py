"""Pure tensor functions of the policy trainers that ``training.losses`` does not have.

* :func:`span_categorical_entropy`: the exact entropy of one (document, field) span
  categorical (the RL curves' exploration measure).
* :func:`outcome_tag_log_probs` and :func:`differing_words_log_probs`: the "differing words"
  score of the ``diff_words`` DPO variant. An outcome of the span categorical implies a tag for
  every word for its field: ``B-f`` on the span's first word, ``I-f`` on the others and
  "not f" (neither ``B-f`` nor ``I-f``: ``O`` or another field's tag) elsewhere; the absent
  outcome tags every word "not f". Two outcomes that share most words (``27,JALAN DEDAP 13``
  vs ``27,JALAN DEDAP``) imply the same tag on most words; the differing-words score of each
  outcome is the sum of the fused model's per-word log-probs of its own tags over the words
  where the two labellings differ (the symmetric difference of the two spans' words, plus a
  shared word that is ``B-f`` in one and ``I-f`` in the other). DPO on these scores
  (``dpo_loss``) moves only the probabilities that decide between the two values, not the
  shared words' that raise or lower both. Inspired by token-level DPO (Zeng et al. 2024,
  "Token-level Direct Preference Optimization", TDPO, arXiv 2404.11999) and by DPO focused on
  the tokens that differ (Zhang et al. 2025, "Focused-DPO", arXiv 2502.11475; Wu et al. 2025,
  "Target-DPO", arXiv 2503.02783, which masks the tokens outside the edited region); here the
  "tokens" are the page's words and the score is a per-word likelihood, not the span
  categorical's normalised log-prob.
* :func:`sum_and_sample_advantages` and :func:`weighted_policy_gradient_loss`: the
  policy gradient of RLOO's objective with the outcomes the operator judged (the value they
  kept, the ones they rejected) summed exactly and the rest sampled (module doc below).

  How it differs from DPO on the span categorical: there the margin ``log pi(c) - log pi(r)``
  already loses the normaliser and the shared words' ``B``/``I`` terms (a span's score is a
  sum of per-word terms, ``extractor.model.decode``); what is left is the differing words'
  ``B``/``I`` terms and one "stop" term ``log(1 - p(I-f))`` after each span. The
  differing-words score instead scores "not f" (``log(1 - p(B-f) - p(I-f))``) on *every*
  differing word outside a span, and has no normaliser over spans (moving mass to a third
  span does not change it); both scores may fall together, as per-token log-probs in TDPO.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from extractor.model.decode import log1m_exp

NOT, BEGIN, INSIDE = 0, 1, 2  # a word's tag for one field under one outcome


def span_categorical_entropy(span_lp: torch.Tensor, absent_lp: torch.Tensor) -> torch.Tensor:
    """Exact entropy ``-sum_c p_c log p_c`` of one span-plus-absent categorical.

    ``span_lp``: [n, M] normalised log-probs (``-inf`` past the page's end); ``absent_lp``: [].
    Returns [] (nats); impossible outcomes add exactly 0, without NaN in value or gradient.
    Shannon (1948); used as an exploration measure / bonus since Williams & Peng (1991).
    """
    flat = torch.cat([span_lp.flatten(), absent_lp.reshape(1)])  # [n*M + 1]
    p = flat.exp()  # [n*M + 1]
    live = p > 0
    zero = torch.zeros((), dtype=flat.dtype, device=flat.device)
    return -torch.where(live, p * torch.where(live, flat, zero), zero).sum()


def outcome_tags(outcome: Sequence[int], n: int) -> list[int]:
    """Per word, the tag (``NOT``/``BEGIN``/``INSIDE``) one outcome implies (``[]``: absent)."""
    tags = [NOT] * n
    for k, i in enumerate(sorted(outcome)):
        tags[i] = BEGIN if k == 0 else INSIDE
    return tags


def field_tag_log_probs(word_lp: torch.Tensor, b_id: int, i_id: int) -> torch.Tensor:
    """Per word, log-probs [n, 3] of the field's three tags: not f, ``B-f``, ``I-f``.

    ``word_lp``: [n, L] normalised per-word tag log-probs; "not f" is
    ``log(1 - p(B-f) - p(I-f))`` (``log1m_exp``, clamped just below 0 as in the decoder).
    """
    lp_b, lp_i = word_lp[:, b_id], word_lp[:, i_id]  # [n], [n]
    lp_not = log1m_exp(torch.logaddexp(lp_b, lp_i))  # [n]
    return torch.stack([lp_not, lp_b, lp_i], dim=-1)  # [n, 3]


def outcome_tag_log_probs(word_lp: torch.Tensor, b_id: int, i_id: int,
                          outcome: Sequence[int]) -> torch.Tensor:
    """Per word, the log-prob [n] of the tag ``outcome`` implies for it."""
    n = word_lp.shape[0]
    tags = torch.tensor(outcome_tags(outcome, n), dtype=torch.long, device=word_lp.device)
    return field_tag_log_probs(word_lp, b_id, i_id).gather(-1, tags.unsqueeze(-1)).squeeze(-1)


def differing_words_log_probs(word_lp: torch.Tensor, b_id: int, i_id: int,
                              chosen: Sequence[int], rejected: Sequence[int],
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Differing-words scores ``(s_chosen [], s_rejected [])`` of two outcomes (module doc).

    ``s_x = sum_{w in D} log p_w(tag_x(w))`` with ``D = {w : tag_chosen(w) != tag_rejected(w)}``.
    Equal outcomes give ``D`` empty and two zeros (``dpo_loss`` then gives ``log 2``).
    """
    n = word_lp.shape[0]
    tc, tr = outcome_tags(chosen, n), outcome_tags(rejected, n)
    diff = torch.tensor([a != b for a, b in zip(tc, tr)], dtype=torch.bool,
                        device=word_lp.device)  # [n]
    lp3 = field_tag_log_probs(word_lp, b_id, i_id)  # [n, 3]
    zero = torch.zeros((), dtype=lp3.dtype, device=lp3.device)
    out = []
    for tags in (tc, tr):
        t = torch.tensor(tags, dtype=torch.long, device=word_lp.device)
        per_word = lp3.gather(-1, t.unsqueeze(-1)).squeeze(-1)  # [n]
        out.append(torch.where(diff, per_word, zero).sum())
    return out[0], out[1]


def sum_and_sample_advantages(p_fixed: torch.Tensor, fixed_mask: torch.Tensor,
                              r_fixed: torch.Tensor, r_sampled: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and advantages of the sum-and-sample policy gradient (Liu et al. 2019,
    "Rao-Blackwellized Stochastic Gradients for Discrete Distributions", Sec. 3).

    A field's categorical ``pi`` is split into a fixed set ``C`` (here the outcomes an
    operator judged) and the rest; ``K`` outcomes ``y_s`` are drawn from ``pi`` restricted to
    the rest (``pi(y) / (1 - pi(C))`` off ``C``). Then

        grad E_pi[R] = sum_{y in C} pi(y) (R(y) - b) grad log pi(y)
                       + (1 - pi(C)) E_{y ~ pi | not C}[(R(y) - b) grad log pi(y)]

    for any ``b`` that does not depend on the outcome it multiplies (the two ``b`` terms sum
    to ``-b grad sum_y pi(y) = 0``). The sampled term is estimated by the mean over the ``K``
    draws. ``b`` estimates ``E_pi[R]`` the same way: ``sum_C pi R + (1 - pi(C)) mean R(y_s)``,
    with the draw's own reward left out for a sampled outcome (the leave-one-out baseline of
    RLOO; Kool et al. 2019), so the estimator stays unbiased. Unlike plain RLOO, a right value
    the policy gives little mass still enters every step, with its exact weight ``pi(y)``.

    ``p_fixed``: [G, F] probabilities of the fixed outcomes (detached; padding anywhere,
    masked); ``fixed_mask``: [G, F] bool, the real ones (distinct outcomes); ``r_fixed``:
    [G, F]; ``r_sampled``: [G, K], ``K >= 2``. Returns ``(weights, advantages)``, both
    [G, F + K]: the loss is ``-(weights * advantages * log pi).sum(-1).mean()``
    (:func:`weighted_policy_gradient_loss`); padded entries have weight 0 and advantage 0.
    """
    k = r_sampled.shape[-1]
    if k < 2:
        raise ValueError("sum-and-sample needs at least 2 draws per field (a leave-one-out "
                         "baseline)")
    p = torch.where(fixed_mask, p_fixed.detach(), torch.zeros_like(p_fixed))  # [G, F]
    rest = (1.0 - p.sum(-1)).clamp(min=0.0)  # [G]
    summed = (p * r_fixed).sum(-1)  # [G]
    total = r_sampled.sum(-1, keepdim=True)  # [G, 1]
    b_fixed = summed + rest * r_sampled.mean(-1)  # [G]
    b_sampled = summed.unsqueeze(-1) + rest.unsqueeze(-1) * (total - r_sampled) / (k - 1)
    adv = torch.cat([torch.where(fixed_mask, r_fixed - b_fixed.unsqueeze(-1),
                                 torch.zeros_like(r_fixed)),
                     r_sampled - b_sampled], dim=-1)  # [G, F + K]
    weights = torch.cat([p, (rest / k).unsqueeze(-1).expand_as(r_sampled)], dim=-1)
    return weights.detach(), adv.detach()


def weighted_policy_gradient_loss(logp: torch.Tensor, weights: torch.Tensor,
                                  advantages: torch.Tensor) -> torch.Tensor:
    """``-mean_g sum_i w_gi A_gi log pi(y_gi)`` (weights and advantages held constant).

    ``logp``, ``weights``, ``advantages``: [G, N]. Returns []. With the weights of
    :func:`sum_and_sample_advantages` each group's sum is an unbiased estimate of the
    gradient of ``E_pi[R]`` (negated)."""
    return -(weights.detach() * advantages.detach() * logp).sum(-1).mean()
