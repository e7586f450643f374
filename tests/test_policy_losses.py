"""The policy trainers' pure functions against hand-written references on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from extractor.model.decode import span_log_probs
from training.losses import dpo_loss, group_advantages, policy_gradient_loss
from training.policy_losses import (
    BEGIN,
    INSIDE,
    NOT,
    differing_words_log_probs,
    field_tag_log_probs,
    outcome_tag_log_probs,
    outcome_tags,
    span_categorical_entropy,
    sum_and_sample_advantages,
    weighted_policy_gradient_loss,
)

DTYPES = [torch.float32, torch.float64]


def _word_lp(n: int, labels: int = 5, seed: int = 0, dtype: torch.dtype = torch.float32
             ) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, labels, generator=g, dtype=dtype).log_softmax(-1)


def _naive_entropy(span_lp: torch.Tensor, absent_lp: torch.Tensor) -> float:
    h = 0.0
    for v in [*span_lp.flatten().tolist(), float(absent_lp)]:
        if v != -math.inf:
            h -= math.exp(v) * v
    return h


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,max_len", [(1, 4), (5, 3), (7, 7)])
def test_entropy_equals_the_naive_sum(dtype: torch.dtype, n: int, max_len: int) -> None:
    word_lp = _word_lp(n, dtype=dtype).requires_grad_(True)
    span_lp, absent_lp = span_log_probs(word_lp, 1, 2, max_len)  # -inf past the page's end
    h = span_categorical_entropy(span_lp, absent_lp)
    assert h.dtype == dtype
    assert abs(float(h.detach()) - _naive_entropy(span_lp.detach(), absent_lp.detach())) < 1e-5
    h.backward()
    assert torch.isfinite(word_lp.grad).all()  # no NaN from the -inf entries


def test_entropy_of_uniform_and_of_a_point_mass() -> None:
    c = 7  # 2 x 3 spans and absent
    uniform = torch.full((2, 3), -math.log(c))
    assert abs(float(span_categorical_entropy(uniform, torch.tensor(-math.log(c))))
               - math.log(c)) < 1e-6
    point = torch.full((2, 3), -math.inf)
    assert float(span_categorical_entropy(point, torch.tensor(0.0))) == 0.0


def test_outcome_tags() -> None:
    assert outcome_tags([], 3) == [NOT, NOT, NOT]
    assert outcome_tags([1, 2], 4) == [NOT, BEGIN, INSIDE, NOT]
    assert outcome_tags([3, 2], 4) == [NOT, NOT, BEGIN, INSIDE]  # order of indices ignored


@pytest.mark.parametrize("dtype", DTYPES)
def test_field_tag_log_probs_partition_each_word(dtype: torch.dtype) -> None:
    word_lp = _word_lp(6, dtype=dtype)
    lp3 = field_tag_log_probs(word_lp, 3, 4)  # [n, 3]
    assert lp3.shape == (6, 3) and lp3.dtype == dtype
    assert torch.allclose(lp3[:, 1], word_lp[:, 3]) and torch.allclose(lp3[:, 2], word_lp[:, 4])
    assert torch.allclose(lp3.exp().sum(-1), torch.ones(6, dtype=dtype), atol=1e-6)
    got = outcome_tag_log_probs(word_lp, 3, 4, [2, 3])
    assert torch.allclose(got, lp3[torch.arange(6), torch.tensor([0, 0, 1, 2, 0, 0])])


def _naive_differing(word_lp: torch.Tensor, b: int, i: int, chosen: list[int],
                     rejected: list[int]) -> tuple[float, float]:
    def tag(span: list[int], w: int) -> str:
        if w not in span:
            return "not"
        return "B" if w == min(span) else "I"

    def lp(t: str, w: int) -> float:
        p_b, p_i = math.exp(float(word_lp[w, b])), math.exp(float(word_lp[w, i]))
        return {"B": math.log(p_b), "I": math.log(p_i), "not": math.log(1 - p_b - p_i)}[t]

    sc = sr = 0.0
    for w in range(word_lp.shape[0]):
        if tag(chosen, w) != tag(rejected, w):
            sc += lp(tag(chosen, w), w)
            sr += lp(tag(rejected, w), w)
    return sc, sr


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chosen,rejected", [
    ([3, 4, 5], [4, 5, 6]),  # shifted: words 3 and 6 differ, and word 4 is I vs B
    ([1, 2, 3], [1, 2]),  # shares most words: only word 3 differs
    ([], [2, 3]),  # absent vs a span: the span's words
    ([0], [6]),  # disjoint
])
def test_differing_words_equal_the_naive_sum(dtype: torch.dtype, chosen: list[int],
                                             rejected: list[int]) -> None:
    word_lp = _word_lp(7, dtype=dtype, seed=3).requires_grad_(True)
    sc, sr = differing_words_log_probs(word_lp, 1, 2, chosen, rejected)
    nc, nr = _naive_differing(word_lp.detach(), 1, 2, chosen, rejected)
    assert sc.dtype == dtype
    assert abs(float(sc.detach()) - nc) < 1e-5 and abs(float(sr.detach()) - nr) < 1e-5
    (sc - sr).backward()
    grad_rows = word_lp.grad.abs().sum(-1) > 0  # only the differing words get a gradient
    differ = [a != b for a, b in zip(outcome_tags(chosen, 7), outcome_tags(rejected, 7))]
    assert grad_rows.tolist() == differ


def test_equal_outcomes_score_zero_and_give_log_2() -> None:
    word_lp = _word_lp(5)
    sc, sr = differing_words_log_probs(word_lp, 1, 2, [1, 2], [1, 2])
    assert float(sc) == float(sr) == 0.0
    loss, _, _ = dpo_loss(sc.view(1), sr.view(1), sc.view(1), sr.view(1), beta=0.1)
    assert abs(float(loss) - math.log(2)) < 1e-7


# -- sum-and-sample (the operator's outcomes summed exactly, the rest sampled) ------------------

def test_sum_and_sample_is_an_unbiased_policy_gradient() -> None:
    # grad E_pi[R] over a six-outcome categorical, exactly, against the mean of the estimator
    # over many independent groups (the loss averages its groups, so one backward gives it)
    torch.manual_seed(0)
    theta = torch.tensor([2.0, -1.0, 0.5, -3.0, 0.0, 1.0], requires_grad=True)
    reward = torch.tensor([0.1, 0.9, 0.3, 1.0, 0.2, 0.6])
    exact = torch.autograd.grad((theta.softmax(-1) * reward).sum(), theta)[0]

    fixed = torch.tensor([3, 1])  # the operator's kept value (unlikely under pi) and a rejected one
    groups, k = 40_000, 3
    logpi = theta.log_softmax(-1)
    rest = logpi.detach().exp().clone()
    rest[fixed] = 0.0
    draws = torch.multinomial(rest / rest.sum(), groups * k, replacement=True).view(groups, k)
    p_fixed = logpi.detach().exp()[fixed].expand(groups, -1)
    weights, adv = sum_and_sample_advantages(
        p_fixed, torch.ones(groups, 2, dtype=torch.bool), reward[fixed].expand(groups, -1),
        reward[draws])
    logp = torch.cat([logpi[fixed].expand(groups, -1), logpi[draws]], dim=-1)
    estimate = torch.autograd.grad(-weighted_policy_gradient_loss(logp, weights, adv), theta)[0]
    assert torch.allclose(estimate, exact, atol=2e-3), (estimate, exact)
    # the kept value's own term is there every step, at its exact probability
    assert weights[0, 0] == pytest.approx(float(logpi[3].detach().exp()))


def test_sum_and_sample_without_fixed_outcomes_is_rloo() -> None:
    rewards = torch.tensor([[0.2, 0.9, 0.4, 0.4], [1.0, 0.0, 0.5, 0.5]])
    logp = torch.randn(2, 5, requires_grad=True)
    none = torch.zeros(2, 1, dtype=torch.bool)
    weights, adv = sum_and_sample_advantages(torch.full((2, 1), 0.7), none, torch.ones(2, 1),
                                             rewards)
    assert torch.equal(weights[:, 0], torch.zeros(2)) and torch.equal(adv[:, 0], torch.zeros(2))
    assert torch.allclose(adv[:, 1:], group_advantages(rewards, "rloo"))
    ours = weighted_policy_gradient_loss(logp, weights, adv)
    plain = policy_gradient_loss(logp[:, 1:].flatten(), group_advantages(rewards).flatten())
    assert torch.allclose(ours, plain)


def test_sum_and_sample_needs_two_draws() -> None:
    with pytest.raises(ValueError, match="at least 2 draws"):
        sum_and_sample_advantages(torch.zeros(1, 1), torch.ones(1, 1, dtype=torch.bool),
                                  torch.zeros(1, 1), torch.zeros(1, 1))
