"""training.losses against naive per-token loops."""

from __future__ import annotations

import math

import pytest
import torch

from extractor.document import RECEIPT_SCHEMA
from extractor.model.decode import field_label_ids, span_log_probs
from training.losses import (
    IGNORE_INDEX,
    adaptive_kl_coef,
    bradley_terry_loss,
    categorical_kl,
    dpo_loss,
    dpop_loss,
    group_advantages,
    joint_tagging_loss,
    kl_penalty,
    logsumexp_value_logprob,
    normalize_advantages,
    pointwise_reward_loss,
    policy_gradient_loss,
    ppo_clip_loss,
    span_categorical_kl,
    token_nll,
    unlikelihood_loss,
)


def naive_nll(lp: torch.Tensor, labels: torch.Tensor) -> float:
    vals = [-lp[b, t, labels[b, t]].item() for b in range(labels.shape[0])
            for t in range(labels.shape[1]) if labels[b, t] != IGNORE_INDEX]
    return sum(vals) / len(vals)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_token_nll_matches_naive(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(3, 5, 9, generator=g, dtype=dtype).log_softmax(-1)
    labels = torch.randint(0, 9, (3, 5), generator=g)
    labels[0, :2] = IGNORE_INDEX
    labels[2, 4] = IGNORE_INDEX
    assert math.isclose(token_nll(lp, labels).item(), naive_nll(lp, labels), rel_tol=1e-5)


def test_uniform_prediction_costs_log_num_labels() -> None:
    lp = torch.full((2, 3, 9), -math.log(9))
    labels = torch.tensor([[0, 4, IGNORE_INDEX], [8, IGNORE_INDEX, 1]])
    assert math.isclose(token_nll(lp, labels).item(), math.log(9), rel_tol=1e-6)


def test_no_labelled_token_gives_zero_with_grad() -> None:
    lp = torch.randn(1, 4, 3, requires_grad=True)
    loss = token_nll(lp.log_softmax(-1), torch.full((1, 4), IGNORE_INDEX))
    loss.backward()
    assert loss.item() == 0.0 and lp.grad is not None


def test_joint_loss_is_weighted_sum_of_member_losses() -> None:
    g = torch.Generator().manual_seed(1)
    lps = [torch.randn(2, 4, 5, generator=g).log_softmax(-1) for _ in range(3)]
    labels = torch.randint(0, 5, (2, 4), generator=g)
    total, parts = joint_tagging_loss(*lps, labels, weights=(1.0, 0.5, 2.0))
    want = naive_nll(lps[0], labels) + 0.5 * naive_nll(lps[1], labels) \
        + 2.0 * naive_nll(lps[2], labels)
    assert math.isclose(total.item(), want, rel_tol=1e-5)
    assert set(parts) == {"bert", "layoutlm", "fused"}
    assert math.isclose(parts["layoutlm"], naive_nll(lps[1], labels), rel_tol=1e-5)


# ---------------------------------------------------------------------------------------------
# Reward, policy and preference losses: hand-computed values on tiny tensors.
# ---------------------------------------------------------------------------------------------

DTYPES = [torch.float32, torch.float64]
LOG2 = math.log(2.0)


def tol(dtype: torch.dtype) -> float:
    """Relative tolerance for a value computed in ``dtype``."""
    return 1e-6 if dtype == torch.float32 else 1e-12


def close(got: torch.Tensor | float, want: float, dtype: torch.dtype) -> bool:
    got = float(got.detach()) if isinstance(got, torch.Tensor) else got
    return math.isclose(got, want, rel_tol=tol(dtype), abs_tol=tol(dtype))


def t(values: list[float] | list[list[float]], dtype: torch.dtype,
      grad: bool = False) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, requires_grad=grad)


def grad_of(x: torch.Tensor) -> torch.Tensor:
    """``x.grad`` after ``backward()``, which must have reached ``x``."""
    assert x.grad is not None
    return x.grad


def softplus(x: float) -> float:
    """``-log sigmoid(-x) = log(1 + e^x)``, the reference for every logistic loss below."""
    return math.log1p(math.exp(x))


SP_M2 = softplus(-2.0)  # -log sigmoid(2) = log(1 + e^-2) = 0.12692801104...
KL_HALF = 0.5 * LOG2 + 0.5 * math.log(2 / 3)  # KL([.5, .5] || [.25, .75]) = 0.14384103622...


@pytest.mark.parametrize("dtype", DTYPES)
def test_bradley_terry_hand_values(dtype: torch.dtype) -> None:
    assert close(bradley_terry_loss(t([1.5], dtype), t([1.5], dtype)), LOG2, dtype)
    # r_c - r_r = 2: log(1 + e^-2) = 0.1269280110
    assert close(bradley_terry_loss(t([2.0], dtype), t([0.0], dtype)), SP_M2, dtype)
    # a margin of 2 on a gap of 2 is back to log 2; a per-pair margin too
    assert close(bradley_terry_loss(t([2.0], dtype), t([0.0], dtype), margin=2.0), LOG2, dtype)
    loss = bradley_terry_loss(t([2.0, 0.0], dtype), t([0.0, 1.0], dtype), margin=t([2.0, -1.0],
                                                                                  dtype))
    assert close(loss, LOG2, dtype)
    # batch mean of gaps 0 and 2
    loss = bradley_terry_loss(t([0.0, 3.0], dtype), t([0.0, 1.0], dtype))
    assert close(loss, (LOG2 + SP_M2) / 2, dtype)


def test_bradley_terry_gradient_separates_the_pair() -> None:
    r_c, r_r = t([0.0, 1.0], torch.float64, True), t([0.0, -1.0], torch.float64, True)
    bradley_terry_loss(r_c, r_r).backward()
    # d/d r_c = -sigmoid(-(r_c - r_r)) / N: -0.25 at gap 0, -sigmoid(-2)/2 at gap 2
    want = [-0.25, -0.5 / (1 + math.exp(2.0))]
    assert torch.allclose(grad_of(r_c), torch.tensor(want, dtype=torch.float64))
    assert torch.allclose(grad_of(r_r), -grad_of(r_c))


@pytest.mark.parametrize("dtype", DTYPES)
def test_pointwise_reward_loss_hand_values(dtype: torch.dtype) -> None:
    assert close(pointwise_reward_loss(t([0.0], dtype), torch.tensor([1])), LOG2, dtype)
    # logit 2: label 1 costs log(1 + e^-2), label 0 costs log(1 + e^2) = 2.1269280110
    loss = pointwise_reward_loss(t([2.0, 2.0], dtype), torch.tensor([1, 0]))
    assert close(loss, (SP_M2 + softplus(2.0)) / 2, dtype)
    loss = pointwise_reward_loss(t([2.0], dtype), torch.tensor([True]))
    assert close(loss, SP_M2, dtype)


def naive_rloo(r: list[list[float]]) -> list[list[float]]:
    return [[row[i] - sum(row[j] for j in range(len(row)) if j != i) / (len(row) - 1)
             for i in range(len(row))] for row in r]


@pytest.mark.parametrize("dtype", DTYPES)
def test_rloo_hand_values_and_naive_loop(dtype: torch.dtype) -> None:
    adv = group_advantages(t([[1.0, 0.0, 0.0], [0.0, 1.0, 3.0]], dtype), mode="rloo")
    # row 2: 0 - 2, 1 - 1.5, 3 - 0.5
    want = torch.tensor([[1.0, -0.5, -0.5], [-2.0, -0.5, 2.5]], dtype=dtype)
    assert torch.allclose(adv, want, rtol=tol(dtype), atol=tol(dtype))
    r = torch.randn(4, 5, generator=torch.Generator().manual_seed(0), dtype=dtype)
    ref = torch.tensor(naive_rloo(r.tolist()), dtype=dtype)
    assert torch.allclose(group_advantages(r, "rloo"), ref, rtol=1e-5, atol=1e-6)
    assert torch.allclose(group_advantages(r, "rloo").sum(-1), torch.zeros(4, dtype=dtype),
                          atol=1e-5)


@pytest.mark.parametrize("mode", ["rloo", "grpo"])
def test_group_advantages_single_sample_and_equal_rewards_are_zero(mode: str) -> None:
    single = group_advantages(t([[1.0], [0.0], [0.7]], torch.float32), mode=mode)
    assert torch.equal(single, torch.zeros(3, 1))
    # 0.1 is not exact in binary, so the mean leaves a rounding residue: still exactly 0
    equal = group_advantages(t([[0.1] * 5, [1.0] * 5, [0.0, 1.0, 0.0, 0.0, 0.0]],
                               torch.float64), mode=mode)
    assert torch.equal(equal[:2], torch.zeros(2, 5, dtype=torch.float64))
    assert equal[2, 1] > 0 > equal[2, 0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_grpo_hand_values(dtype: torch.dtype) -> None:
    # [1, 0, 0]: mean 1/3, unbiased std sqrt(1/3) -> [2/sqrt 3, -1/sqrt 3, -1/sqrt 3]
    adv = group_advantages(t([[1.0, 0.0, 0.0]], dtype), mode="grpo", eps=0.0)
    s3 = math.sqrt(3.0)
    assert torch.allclose(adv, torch.tensor([[2 / s3, -1 / s3, -1 / s3]], dtype=dtype),
                          rtol=tol(dtype))
    # eps enters the denominator: std of [0, 2] is sqrt(2)
    adv = group_advantages(t([[0.0, 2.0]], dtype), mode="grpo", eps=0.5)
    want = 1.0 / (math.sqrt(2.0) + 0.5)
    assert torch.allclose(adv, torch.tensor([[-want, want]], dtype=dtype), rtol=tol(dtype))
    with pytest.raises(ValueError):
        group_advantages(t([[0.0, 1.0]], dtype), mode="ppo")


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalize_advantages(dtype: torch.dtype) -> None:
    a = t([1.0, 2.0, 3.0, 4.0], dtype)
    # mean 2.5, unbiased std sqrt(5/3)
    want = (a - 2.5) / math.sqrt(5.0 / 3.0)
    assert torch.allclose(normalize_advantages(a, eps=0.0), want, rtol=tol(dtype))
    assert torch.allclose(normalize_advantages(a.view(2, 2), eps=0.0), want.view(2, 2),
                          rtol=tol(dtype))
    assert torch.equal(normalize_advantages(t([3.0], dtype)), torch.zeros(1, dtype=dtype))
    assert torch.equal(normalize_advantages(t([0.2] * 3, dtype)), torch.zeros(3, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_policy_gradient_loss_value_and_gradient(dtype: torch.dtype) -> None:
    logp, adv = t([-1.0, -2.0], dtype, True), t([1.0, -1.0], dtype, True)
    loss = policy_gradient_loss(logp, adv)
    assert close(loss, -0.5, dtype)  # -(1 * -1 + -1 * -2) / 2
    loss.backward()
    # raises the log-prob of the sample with A > 0, lowers the other; A gets no gradient
    assert torch.allclose(grad_of(logp), torch.tensor([-0.5, 0.5], dtype=dtype))
    assert adv.grad is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_ppo_clip_hand_values(dtype: torch.dtype) -> None:
    # ratios 1.5, 1.5, 0.5, 0.5 with advantages +1, -1, -1, +1 and clip 0.2:
    #   r=1.5, A=+1: max(-1.5, -1.2) = -1.2, clipped (no gradient)
    #   r=1.5, A=-1: max( 1.5,  1.2) =  1.5, unclipped, d/dlogp = -A r = 1.5
    #   r=0.5, A=-1: max( 0.5,  0.8) =  0.8, clipped (no gradient)
    #   r=0.5, A=+1: max(-0.5, -0.8) = -0.5, unclipped, d/dlogp = -A r = -0.5
    old = t([-1.0, -1.0, -2.0, -2.0], dtype)
    log_ratio = torch.tensor([math.log(1.5), math.log(1.5), math.log(0.5), math.log(0.5)],
                             dtype=dtype)
    logp = (old + log_ratio).detach().requires_grad_(True)
    adv = t([1.0, -1.0, -1.0, 1.0], dtype)
    loss, clip_frac, approx_kl = ppo_clip_loss(logp, old, adv, clip=0.2)
    assert close(loss, (-1.2 + 1.5 + 0.8 - 0.5) / 4, dtype)
    assert close(clip_frac, 0.5, dtype)
    # k3 of KL(old || new): (r - 1) - log r = 0.5 - log 1.5 and -0.5 + log 2
    want_kl = ((0.5 - math.log(1.5)) + (-0.5 + LOG2)) / 2
    assert close(approx_kl, want_kl, dtype) and not approx_kl.requires_grad
    # (the r - 1 terms cancel above, so also one ratio on its own: r = 2 gives 1 - log 2,
    # where k1 = -log r would give a negative "KL")
    _, _, kl2 = ppo_clip_loss(t([LOG2 - 1.0], dtype), t([-1.0], dtype), t([1.0], dtype))
    assert close(kl2, 1.0 - LOG2, dtype)
    loss.backward()
    want_grad = torch.tensor([0.0, 1.5, 0.0, -0.5], dtype=dtype) / 4
    assert torch.allclose(grad_of(logp), want_grad, rtol=1e-5, atol=1e-7)
    assert grad_of(logp)[0] == 0.0 and grad_of(logp)[2] == 0.0


def test_ppo_at_ratio_one_is_policy_gradient() -> None:
    g = torch.Generator().manual_seed(2)
    old = torch.randn(6, generator=g, dtype=torch.float64)
    adv = torch.randn(6, generator=g, dtype=torch.float64)
    logp = old.clone().requires_grad_(True)
    loss, clip_frac, approx_kl = ppo_clip_loss(logp, old, adv)
    assert math.isclose(loss.item(), -adv.mean().item(), rel_tol=1e-12)
    assert clip_frac.item() == 0.0 and approx_kl.item() == 0.0
    loss.backward()
    logp2 = old.clone().requires_grad_(True)
    policy_gradient_loss(logp2, adv).backward()
    assert torch.allclose(grad_of(logp), grad_of(logp2))


def naive_kl(lp: list[float], ref: list[float]) -> float:
    total = 0.0
    for a, b in zip(lp, ref):
        if a == -math.inf:
            continue
        total += math.exp(a) * (a - b)
    return total


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_kl_matches_naive_double_loop(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(4)
    lp = torch.randn(3, 7, generator=g, dtype=dtype).log_softmax(-1)
    ref = torch.randn(3, 7, generator=g, dtype=dtype).log_softmax(-1)
    got = categorical_kl(lp, ref)
    assert got.shape == (3,)
    for row in range(3):
        want = naive_kl(lp[row].tolist(), ref[row].tolist())
        assert math.isclose(got[row].item(), want, rel_tol=1e-5 if dtype == torch.float32
                            else 1e-12)
    assert (got > 0).all()
    assert torch.equal(categorical_kl(lp, lp), torch.zeros(3, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_kl_hand_values_and_impossible_outcomes(dtype: torch.dtype) -> None:
    def lg(ps: list[float]) -> torch.Tensor:
        return torch.tensor(ps, dtype=dtype).log()  # log 0 = -inf

    # KL([.5, .5] || [.25, .75]) = .5 log 2 + .5 log(2/3) = 0.1438410362
    assert abs(KL_HALF - 0.1438410362) < 1e-10
    assert close(categorical_kl(lg([0.5, 0.5]), lg([0.25, 0.75])), KL_HALF, dtype)
    # an outcome impossible under both: 0 * (-inf - -inf) counts 0, same value, finite
    assert close(categorical_kl(lg([0.5, 0.5, 0.0]), lg([0.25, 0.75, 0.0])), KL_HALF, dtype)
    # impossible under pi only: log(.5/.25) twice -> log 2
    assert close(categorical_kl(lg([0.5, 0.5, 0.0]), lg([0.25, 0.25, 0.5])), LOG2, dtype)
    # possible under pi, impossible under ref: infinite
    assert categorical_kl(lg([0.5, 0.5]), lg([1.0, 0.0])).item() == math.inf


def test_categorical_kl_gradient_is_finite_with_minus_inf() -> None:
    logits = torch.tensor([0.3, -0.2, -math.inf, 1.0], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64).log()
    kl = categorical_kl(logits.log_softmax(-1), ref)
    kl.backward()
    assert torch.isfinite(kl) and torch.isfinite(grad_of(logits)).all()
    assert grad_of(logits)[2] == 0.0


def naive_span_kl(a: torch.Tensor, a_abs: torch.Tensor, b: torch.Tensor,
                  b_abs: torch.Tensor) -> float:
    total = 0.0
    for s in range(a.shape[0]):
        for d in range(a.shape[1]):
            p = math.exp(a[s, d].item())
            if p > 0:
                total += p * (a[s, d].item() - b[s, d].item())
    return total + math.exp(a_abs.item()) * (a_abs.item() - b_abs.item())


@pytest.mark.parametrize("dtype", DTYPES)
def test_span_categorical_kl_matches_naive_loop(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(6)
    b, i = field_label_ids(RECEIPT_SCHEMA, "address")
    n = len(RECEIPT_SCHEMA.labels)
    pol = span_log_probs(torch.randn(5, n, generator=g, dtype=dtype).log_softmax(-1), b, i, 3)
    ref = span_log_probs(torch.randn(5, n, generator=g, dtype=dtype).log_softmax(-1), b, i, 3)
    assert torch.isinf(pol[0]).any()  # spans past the end of the page are -inf
    got = span_categorical_kl(*pol, *ref)
    assert got.shape == () and torch.isfinite(got)
    want = naive_span_kl(pol[0], pol[1], ref[0], ref[1])
    assert math.isclose(got.item(), want, rel_tol=1e-5 if dtype == torch.float32 else 1e-12)
    assert span_categorical_kl(*pol, *pol).item() == 0.0
    short = span_log_probs(torch.randn(5, n, generator=g, dtype=dtype).log_softmax(-1), b, i, 2)
    with pytest.raises(ValueError):
        span_categorical_kl(*pol, *short)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_penalty_estimators_hand_values(dtype: torch.dtype) -> None:
    # log r = ref - logp = -1 and +1
    logp, ref = t([-1.0, -2.0], dtype), t([-2.0, -1.0], dtype)
    k1, k2, k3 = (kl_penalty(logp, ref, k) for k in ("k1", "k2", "k3"))
    assert torch.allclose(k1, t([1.0, -1.0], dtype))
    assert torch.allclose(k2, t([0.5, 0.5], dtype))
    # (e^-1 - 1) + 1 = e^-1; (e - 1) - 1 = e - 2
    assert torch.allclose(k3, t([math.exp(-1.0), math.e - 2.0], dtype), rtol=tol(dtype))
    assert torch.equal(kl_penalty(logp, logp, "k3"), torch.zeros(2, dtype=dtype))
    with pytest.raises(ValueError):
        kl_penalty(logp, ref, "k4")


def test_k1_and_k3_are_unbiased_under_pi() -> None:
    """``E_pi[k1] = E_pi[k3] = KL(pi || ref)`` exactly, summing over every outcome."""
    g = torch.Generator().manual_seed(7)
    lp = torch.randn(9, generator=g, dtype=torch.float64).log_softmax(-1)
    ref = torch.randn(9, generator=g, dtype=torch.float64).log_softmax(-1)
    exact = categorical_kl(lp, ref).item()
    for kind in ("k1", "k3"):
        expect = (lp.exp() * kl_penalty(lp, ref, kind)).sum().item()
        assert math.isclose(expect, exact, rel_tol=1e-10)
    assert (kl_penalty(lp, ref, "k3") >= 0).all()


def test_adaptive_kl_coef_hand_values() -> None:
    # KL/target - 1 = 2 -> clipped 0.2: 0.1 * (1 + 0.2 * 256 / 10000) = 0.100512
    assert math.isclose(adaptive_kl_coef(0.1, 0.3, 0.1, 256, 10000), 0.100512, rel_tol=1e-12)
    # -0.5 -> clipped -0.2: 0.099488
    assert math.isclose(adaptive_kl_coef(0.1, 0.05, 0.1, 256, 10000), 0.099488, rel_tol=1e-12)
    # inside the clip: 0.1 -> 0.1 * 1.00256
    assert math.isclose(adaptive_kl_coef(0.1, torch.tensor(0.11), 0.1, 256, 10000), 0.100256,
                        rel_tol=1e-6)
    assert adaptive_kl_coef(0.1, 0.1, 0.1, 256, 10000) == 0.1
    # a batch longer than the horizon moves beta by one horizon's step at most: +-20%, > 0
    assert math.isclose(adaptive_kl_coef(0.1, 0.0, 0.1, 64, 4), 0.08, rel_tol=1e-12)
    assert math.isclose(adaptive_kl_coef(0.1, 9.0, 0.1, 64, 4), 0.12, rel_tol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dpo_equal_chosen_and_rejected_is_log2(dtype: torch.dtype) -> None:
    pi, ref = t([-1.3, -7.0, -0.01], dtype), t([-2.2, -0.5, -3.0], dtype)
    loss, c_rew, r_rew = dpo_loss(pi, pi, ref, ref, beta=0.1)
    assert loss.item() == pytest.approx(LOG2, rel=tol(dtype))
    assert torch.equal(c_rew, r_rew)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dpo_hand_values_and_gradient_sign(dtype: torch.dtype) -> None:
    # margin (pi_c - ref_c) - (pi_r - ref_r) = 1 - (-1) = 2, beta 0.5 -> log(1 + e^-1)
    pi_c, pi_r = t([-1.0], dtype, True), t([-3.0], dtype, True)
    ref_c, ref_r = t([-2.0], dtype), t([-2.0], dtype)
    loss, c_rew, r_rew = dpo_loss(pi_c, pi_r, ref_c, ref_r, beta=0.5)
    assert close(loss, softplus(-1.0), dtype)  # 0.3132616875
    assert close(c_rew, 0.5, dtype) and close(r_rew, -0.5, dtype)
    assert not c_rew.requires_grad
    loss.backward()
    # d/d pi_c = -beta sigmoid(-1) < 0: descent raises pi_c and lowers pi_r
    g = 0.5 / (1 + math.e)
    assert close(grad_of(pi_c), -g, dtype) and close(grad_of(pi_r), g, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dpop_adds_penalty_inside_beta_when_chosen_falls(dtype: torch.dtype) -> None:
    # Smaug's setting beta 0.1, lam 50. pi_c below ref_c by 0.1; DPO margin -0.1 + 1 = 0.9;
    # Eq. 3: -log sigmoid(0.1 * (0.9 - 50 * 0.1)) = log(1 + e^0.41)
    args = (t([-2.1], dtype), t([-4.0], dtype), t([-2.0], dtype), t([-3.0], dtype))
    dpop, c_rew, _ = dpop_loss(*args, beta=0.1, lam=50.0)
    dpo, _, _ = dpo_loss(*args, beta=0.1)
    assert close(dpop, softplus(0.41), dtype)
    assert close(dpo, softplus(-0.09), dtype)
    assert dpop > dpo
    assert close(c_rew, -0.01, dtype)  # the implicit reward is DPO's


@pytest.mark.parametrize("dtype", DTYPES)
def test_dpop_is_dpo_when_chosen_does_not_fall(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(8)
    pi_c, pi_r, ref_r = (torch.randn(6, generator=g, dtype=dtype) for _ in range(3))
    ref_c = pi_c - torch.rand(6, generator=g, dtype=dtype)  # pi_c >= ref_c
    dpo = dpo_loss(pi_c, pi_r, ref_c, ref_r, beta=0.3)[0]
    assert torch.equal(dpop_loss(pi_c, pi_r, ref_c, ref_r, beta=0.3, lam=50.0)[0], dpo)
    ref_c = pi_c + 1.0  # fallen: lam = 0 is still DPO
    dpo = dpo_loss(pi_c, pi_r, ref_c, ref_r, beta=0.3)[0]
    assert torch.equal(dpop_loss(pi_c, pi_r, ref_c, ref_r, beta=0.3, lam=0.0)[0], dpo)


def test_dpop_pushes_a_fallen_chosen_up_harder() -> None:
    # pi_c = -3 < ref_c = -2; beta 1, lam 1: DPO margin 2 -> log(1 + e^-2), DPOP 1 -> log(1+e^-1)
    def grads(lam: float | None) -> tuple[float, float]:
        pi_c = torch.tensor([-3.0], dtype=torch.float64, requires_grad=True)
        args = (pi_c, torch.tensor([-5.0], dtype=torch.float64),
                torch.tensor([-2.0], dtype=torch.float64),
                torch.tensor([-2.0], dtype=torch.float64))
        loss = dpo_loss(*args, beta=1.0)[0] if lam is None else dpop_loss(*args, 1.0, lam)[0]
        loss.backward()
        return loss.item(), grad_of(pi_c).item()

    dpo, g_dpo = grads(None)
    dpop, g_dpop = grads(1.0)
    assert math.isclose(dpo, softplus(-2.0), rel_tol=1e-12)
    assert math.isclose(dpop, softplus(-1.0), rel_tol=1e-12)
    # d/d pi_c: DPO -sigmoid(-2); DPOP -(1 + lam) sigmoid(-1)
    assert math.isclose(g_dpo, -1 / (1 + math.exp(2.0)), rel_tol=1e-12)
    assert math.isclose(g_dpop, -2 / (1 + math.e), rel_tol=1e-12)
    assert g_dpop < g_dpo < 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_unlikelihood_matches_naive(dtype: torch.dtype) -> None:
    vals = [-1e-3, -0.1, -0.69, -0.7, -5.0, -40.0]
    want = sum(-math.log(1 - math.exp(v)) for v in vals) / len(vals)
    got = unlikelihood_loss(t(vals, dtype))
    assert math.isclose(got.item(), want, rel_tol=1e-5 if dtype == torch.float32 else 1e-10)
    assert close(unlikelihood_loss(t([math.log(0.5)], dtype)), LOG2, dtype)
    assert torch.isfinite(unlikelihood_loss(t([0.0], dtype)))  # p = 1: clamped, finite


def test_unlikelihood_gradient_lowers_the_rejected_log_prob() -> None:
    lp = torch.tensor([math.log(0.5), math.log(0.2)], dtype=torch.float64, requires_grad=True)
    unlikelihood_loss(lp).backward()
    # d/d lp of -log(1 - e^lp) is p / (1 - p): 1 and 0.25, over N = 2
    assert torch.allclose(grad_of(lp), torch.tensor([0.5, 0.125], dtype=torch.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_value_logprob(dtype: torch.dtype) -> None:
    # a value spelled by spans of prob .2 and .3 has prob .5
    lps = torch.tensor([[0.2, 0.3], [0.1, 0.0]], dtype=dtype).log()
    got = logsumexp_value_logprob(lps)
    assert torch.allclose(got, torch.tensor([0.5, 0.1], dtype=dtype).log(), rtol=tol(dtype))
    assert logsumexp_value_logprob(torch.empty(0, dtype=dtype)).item() == -math.inf
