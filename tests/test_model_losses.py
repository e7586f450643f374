"""training.losses against naive per-token loops."""

from __future__ import annotations

import math

import pytest
import torch

from training.losses import IGNORE_INDEX, joint_tagging_loss, token_nll


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
