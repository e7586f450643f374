"""Calibrating the top-1 field confidence, and measuring calibration (ECE).

The raw confidence of a field is the decoder's merged probability of its top value. We fit a
two-parameter temperature scaling on its logit, ``p' = sigmoid(logit(p) / T + b)`` (Guo et al.
2017, "On Calibration of Modern Neural Networks", Sec. 4.2, with Platt's bias term), by
minimising the negative log-likelihood of "the top value is right" on the calibration split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from eval.calibration import ece, reliability_bins

_EPS = 1e-6


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(_EPS, 1 - _EPS)
    return torch.log(p) - torch.log1p(-p)


@dataclass
class Calibrator:
    """``p' = sigmoid(logit(p) / temperature + bias)``; the identity by default."""

    temperature: float = 1.0
    bias: float = 0.0
    n: int = 0  # how many (field, document) pairs it was fitted on

    def __call__(self, p: float) -> float:
        z = _logit(torch.tensor(float(p), dtype=torch.float64)) / self.temperature + self.bias
        return float(torch.sigmoid(z))

    def export(self) -> dict[str, Any]:
        return {"method": "temperature+bias", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Calibrator:
        if not d:
            return cls()
        return cls(float(d["temperature"]), float(d.get("bias", 0.0)), int(d.get("n", 0)))


def fit_calibrator(confidences: Sequence[float], correct: Sequence[bool],
                   steps: int = 200) -> Calibrator:
    """Fit temperature and bias by NLL (LBFGS); too few or one-class data give the identity."""
    if len(confidences) != len(correct):
        raise ValueError("confidences and correct must have the same length")
    if len(confidences) < 10 or all(correct) or not any(correct):
        return Calibrator(n=len(confidences))
    z = _logit(torch.tensor(confidences, dtype=torch.float64))
    y = torch.tensor([float(c) for c in correct], dtype=torch.float64)
    log_inv_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_inv_t, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            z * log_inv_t.exp() + bias, y)
        loss.backward()
        return loss

    opt.step(closure)
    return Calibrator(float(math.exp(-log_inv_t.item())), float(bias.item()), len(confidences))


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool],
                               n_bins: int = 10) -> float:
    """ECE over equal-width bins (``eval.calibration``, the one implementation reports use).

    >>> round(expected_calibration_error([0.9, 0.9, 0.1, 0.1], [True, True, False, False]), 3)
    0.1
    """
    return ece(reliability_bins(list(confidences), list(correct), n_bins))
