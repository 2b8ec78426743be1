"""policy_loss: clipping, dual-clip, aggregations, KL, entropy, and the trainable-token mask."""

from __future__ import annotations

import math

import pytest
import torch

from resrl.algos import AlgoConfig, aggregate, policy_loss


def one_token(ratio: float, adv: float, **cfg: object) -> float:
    lp = torch.tensor([[math.log(ratio)]])
    loss, _ = policy_loss(
        lp, torch.zeros(1, 1), torch.tensor([[adv]]), torch.ones(1, 1, dtype=torch.bool), AlgoConfig(**cfg)
    )
    return float(loss)


def test_asymmetric_clip():
    # positive advantage: the ratio is capped at 1 + clip_high
    assert one_token(1.5, 1.0) == pytest.approx(-1.28)
    assert one_token(1.1, 1.0) == pytest.approx(-1.1)
    assert one_token(0.5, 1.0) == pytest.approx(-0.5)  # pessimistic: no lower clip for A > 0
    # negative advantage: floored at 1 - clip_low
    assert one_token(0.5, -1.0) == pytest.approx(0.8)
    assert one_token(1.5, -1.0, dual_clip=None) == pytest.approx(1.5)


def test_dual_clip_bounds_negative_advantages():
    assert one_token(5.0, -1.0, dual_clip=3.0) == pytest.approx(3.0)
    assert one_token(5.0, -1.0, dual_clip=None) == pytest.approx(5.0)
    assert one_token(2.0, -1.0, dual_clip=3.0) == pytest.approx(2.0)
    assert one_token(5.0, 1.0, dual_clip=3.0) == pytest.approx(-1.28)  # never touches A > 0


def test_dual_clip_zeroes_gradient_past_the_bound():
    lp = torch.tensor([[math.log(5.0), math.log(2.0)]], requires_grad=True)
    loss, metrics = policy_loss(
        lp, torch.zeros(1, 2), torch.tensor([[-1.0, -1.0]]), torch.ones(1, 2, dtype=torch.bool), AlgoConfig()
    )
    loss.backward()
    assert lp.grad[0, 0] == 0 and lp.grad[0, 1] != 0
    assert metrics["dual_clip_frac"] == 0.5


VALUES = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 100.0, 100.0, 100.0]])
MASK = torch.tensor([[True, True, True, False], [True, False, False, False]])


def test_aggregations_hand_computed():
    assert float(aggregate(VALUES, MASK, AlgoConfig(agg="token-mean"))) == pytest.approx(10 / 4)
    assert float(aggregate(VALUES, MASK, AlgoConfig(agg="seq-mean-token-mean"))) == pytest.approx((2 + 4) / 2)
    assert float(aggregate(VALUES, MASK, AlgoConfig(agg="seq-mean-token-sum-norm"))) == pytest.approx(
        (6 / 4 + 4 / 4) / 2
    )
    assert float(aggregate(VALUES, MASK, AlgoConfig(agg="seq-mean-token-sum-norm", norm_len=8))) == pytest.approx(
        (6 / 8 + 4 / 8) / 2
    )


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_global_counts_make_micro_batches_sum_to_full(agg):
    cfg = AlgoConfig(agg=agg)
    full = aggregate(VALUES, MASK, cfg)
    parts = sum(
        aggregate(VALUES[i : i + 1], MASK[i : i + 1], cfg, global_token_count=MASK.sum(), global_seq_count=2)
        for i in range(2)
    )
    assert float(parts) == pytest.approx(float(full))


def test_masked_tokens_get_exactly_zero_gradient_even_with_nan():
    gen = torch.Generator().manual_seed(0)
    lp = (torch.randn(3, 5, generator=gen) * 0.1).requires_grad_()
    old = torch.randn(3, 5, generator=gen) * 0.1
    adv = torch.randn(3, 5, generator=gen)
    mask = torch.rand(3, 5, generator=gen) < 0.6
    old[~mask] = float("nan")  # tool tokens carry no logprob
    adv[~mask] = float("inf")
    ref = torch.randn(3, 5, generator=gen)
    ent = torch.rand(3, 5, generator=gen, requires_grad=True)
    cfg = AlgoConfig(kl_coef=0.1, kl_type="k3", entropy_coef=0.01)
    loss, _ = policy_loss(lp, old, adv, mask, cfg, ref_logprobs=ref, entropy=ent)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.equal(lp.grad[~mask], torch.zeros_like(lp.grad[~mask]))
    assert torch.equal(ent.grad[~mask], torch.zeros_like(ent.grad[~mask]))
    assert (lp.grad[mask] != 0).all()


def test_kl_terms_and_entropy_bonus():
    lp = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.5, -1.0]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    zero_adv = torch.zeros(1, 2)
    k1, m1 = policy_loss(lp, lp, zero_adv, mask, AlgoConfig(kl_coef=1.0, kl_type="k1"), ref_logprobs=ref)
    assert float(k1) == pytest.approx(((-1.0 + 1.5) + (-2.0 + 1.0)) / 2)
    k3, _ = policy_loss(lp, lp, zero_adv, mask, AlgoConfig(kl_coef=1.0, kl_type="k3"), ref_logprobs=ref)
    want = sum(math.exp(d) - d - 1 for d in (-0.5, 1.0)) / 2
    assert float(k3) == pytest.approx(want)
    _, m0 = policy_loss(lp, lp, zero_adv, mask, AlgoConfig())
    assert "kl" not in m0 and "kl" in m1  # no KL, and no reference needed, when kl_coef == 0
    with pytest.raises(ValueError, match="ref_logprobs"):
        policy_loss(lp, lp, zero_adv, mask, AlgoConfig(kl_coef=0.1))
    ent, m = policy_loss(lp, lp, zero_adv, mask, AlgoConfig(entropy_coef=0.5), entropy=torch.tensor([[2.0, 4.0]]))
    assert float(ent) == pytest.approx(-0.5 * 3.0) and m["entropy"] == pytest.approx(3.0)


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="shape"):
        policy_loss(
            torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3, dtype=torch.bool), AlgoConfig()
        )
