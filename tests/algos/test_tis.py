"""The truncated importance weight of policy_loss (``algo.tis_cap``): min(exp(old - behaviour), C) per token."""

from __future__ import annotations

import math

import pytest
import torch

from resrl.algos import AlgoConfig, policy_loss


def _loss(behaviour: torch.Tensor | None, cap: float | None, mask: torch.Tensor | None = None):
    """Four on-policy tokens (ratio 1 against old) with advantages 1, 2, -1, 0.5 and token-mean aggregation."""
    old = torch.tensor([[-1.0, -2.0, -0.5, -3.0]])
    logp = old.clone().requires_grad_(True)
    adv = torch.tensor([[1.0, 2.0, -1.0, 0.5]])
    mask = torch.ones_like(old, dtype=torch.bool) if mask is None else mask
    loss, metrics = policy_loss(logp, old, adv, mask, AlgoConfig(tis_cap=cap), behaviour_logprobs=behaviour)
    loss.backward()
    return loss.detach(), metrics, logp.grad


def test_weight_is_one_when_the_behaviour_policy_is_the_old_one():
    old = torch.tensor([[-1.0, -2.0, -0.5, -3.0]])
    plain, _, plain_grad = _loss(None, None)
    corrected, metrics, grad = _loss(old.clone(), 2.0)
    assert float(corrected) == pytest.approx(float(plain))
    torch.testing.assert_close(grad, plain_grad)
    assert metrics["tis_weight_mean"] == pytest.approx(1.0)
    assert metrics["tis_truncated_frac"] == 0.0


def test_weight_is_the_ratio_truncated_at_the_cap():
    old = torch.tensor([[-1.0, -2.0, -0.5, -3.0]])
    # exp(old - behaviour): 5 (cut to the cap 2), 0.5, 1, 1.5
    behaviour = old - torch.tensor([[math.log(5.0), math.log(0.5), 0.0, math.log(1.5)]])
    loss, metrics, grad = _loss(behaviour, 2.0)
    weights = torch.tensor([2.0, 0.5, 1.0, 1.5])
    adv = torch.tensor([1.0, 2.0, -1.0, 0.5])
    # At ratio 1 nothing is clipped: the loss is -mean(w * A), and its gradient -w * A / 4 (w is a constant).
    assert float(loss) == pytest.approx(float(-(weights * adv).mean()))
    torch.testing.assert_close(grad[0], -(weights * adv) / 4)
    assert metrics["tis_weight_mean"] == pytest.approx(float(weights.mean()))
    assert metrics["tis_truncated_frac"] == pytest.approx(0.25)
    # A higher cap lets the first token's full ratio through.
    wide, wide_metrics, _ = _loss(behaviour, 10.0)
    assert float(wide) == pytest.approx(float(-(torch.tensor([5.0, 0.5, 1.0, 1.5]) * adv).mean()))
    assert wide_metrics["tis_truncated_frac"] == 0.0


def test_masked_tokens_take_no_weight_and_leak_nothing():
    old = torch.tensor([[-1.0, -2.0, -0.5, -3.0]])
    behaviour = old.clone()
    behaviour[0, 3] = float("-inf")  # off the mask: an infinite ratio there must not reach the loss
    mask = torch.tensor([[True, True, True, False]])
    loss, metrics, grad = _loss(behaviour, 2.0, mask)
    assert math.isfinite(float(loss)) and torch.isfinite(grad).all()
    assert float(grad[0, 3]) == 0.0
    assert metrics["tis_truncated_frac"] == 0.0 and metrics["tis_weight_mean"] == pytest.approx(1.0)


def test_cap_needs_behaviour_logprobs_and_is_at_least_one():
    with pytest.raises(ValueError, match="behaviour_logprobs"):
        _loss(None, 2.0)
    with pytest.raises(ValueError):
        AlgoConfig(tis_cap=0.5)
    _, metrics, _ = _loss(torch.zeros(1, 4), None)  # off: behaviour log-probs are ignored
    assert "tis_weight_mean" not in metrics
