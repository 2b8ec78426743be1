"""Advantage estimators, weighting schemes and length scaling on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from resrl.algos import (
    AlgoConfig,
    group_advantages,
    length_scaled_rewards,
    mixed_groups,
    resrl_token_weights,
    token_advantages,
)

REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 3.0, 3.0, 0.0])
GROUPS = torch.tensor([5, 5, 5, 5, 2, 2, 9])  # group 9 has a single rollout


def test_grpo_std_normalised():
    adv = group_advantages(REWARDS, GROUPS, "grpo", eps=0.0)
    std = math.sqrt(((0.5**2) * 4) / 3)  # unbiased std of [1, 0, 0, 1]
    assert torch.allclose(adv[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]) / std)
    assert torch.allclose(adv[4:6], torch.zeros(2))  # equal rewards: 0/(0+eps)
    assert adv[6] == 0  # a lone rollout has no baseline


def test_drgrpo_and_rloo():
    dr = group_advantages(REWARDS, GROUPS, "drgrpo")
    assert torch.allclose(dr, torch.tensor([0.5, -0.5, -0.5, 0.5, 0.0, 0.0, 0.0]))
    rloo = group_advantages(REWARDS, GROUPS, "rloo")
    # r_i - mean of the other three: 1 - 1/3, 0 - 2/3
    assert torch.allclose(rloo[:4], torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3]))
    assert rloo[6] == 0


def test_estimators_do_not_depend_on_order():
    perm = torch.tensor([6, 2, 4, 0, 5, 3, 1])
    for est in ("grpo", "drgrpo", "rloo"):
        assert torch.allclose(
            group_advantages(REWARDS[perm], GROUPS[perm], est), group_advantages(REWARDS, GROUPS, est)[perm]
        )
    with pytest.raises(ValueError, match="estimator"):
        group_advantages(REWARDS, GROUPS, "ppo")  # type: ignore[arg-type]


def test_length_scaling_hand_computed():
    rewards = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0])
    n = torch.tensor([100, 3500, 3798, 5000, 5000])
    pos = torch.tensor([True, True, True, True, False])
    out = length_scaled_rewards(rewards, n, pos, start=3500, max_len=4096)
    # 3798 is halfway from 3500 to 4096: 1 - 0.3 * 0.5 = 0.85; beyond the max it stays at the floor
    assert torch.allclose(out, torch.tensor([1.0, 1.0, 0.85, 0.7, 0.0]))


def test_length_window_scales_paper_defaults_to_run_max():
    cfg = AlgoConfig(length_max=512)
    assert cfg.length_window() == (round(512 * 3500 / 4096), 512)
    assert AlgoConfig().length_window() is None


def _mask() -> torch.Tensor:
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[:, 3] = False  # an observation token in the middle
    mask[2, 4:] = False
    return mask


def test_schemes_on_a_small_group():
    rewards = torch.tensor([1.0, 0.0, 0.4, 2.0])
    gids = torch.zeros(4, dtype=torch.long)
    mask = _mask()
    fm = mask.float()
    seq = {
        "psr": [1.0, 0.0, 0.0, 1.0],
        "nsr": [0.0, -1.0, -1.0, 0.0],
        "w_reinforce": [0.25, -1.0, -1.0, 0.25],
    }
    for scheme, want in seq.items():
        cfg = AlgoConfig(scheme=scheme, success_threshold=1.0, w_lambda=0.25)
        adv, stats = token_advantages(cfg, rewards, gids, mask)
        assert torch.allclose(adv, torch.tensor(want).unsqueeze(1) * fm), scheme
        assert stats["positive_share"] == 0.5
    grpo, _ = token_advantages(AlgoConfig(scheme="grpo", estimator="drgrpo"), rewards, gids, mask)
    assert torch.allclose(grpo, (rewards - rewards.mean()).unsqueeze(1) * fm)


def test_positive_rule_is_threshold_not_sign():
    rewards = torch.tensor([0.4, 0.6])
    mask = torch.ones(2, 3, dtype=torch.bool)
    adv, _ = token_advantages(
        AlgoConfig(scheme="nsr", success_threshold=0.5), rewards, torch.zeros(2, dtype=torch.long), mask
    )
    assert torch.equal(adv[0], torch.full((3,), -1.0))  # reward 0.4 > 0 but below the threshold: negative
    assert torch.equal(adv[1], torch.zeros(3))


def test_resrl_scheme_scales_the_group_advantage():
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(4, 6, 16, generator=gen)
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    gids = torch.zeros(4, dtype=torch.long)
    mask = _mask()
    cfg = AlgoConfig(scheme="resrl", rank=3, pca="exact", pos_weight=0.2)
    assert cfg.spec.needs_hidden and not AlgoConfig(scheme="grpo").spec.needs_hidden
    adv, stats = token_advantages(cfg, rewards, gids, mask, hidden)
    w = resrl_token_weights(hidden, mask, gids, rewards >= 1.0, rank=3, pca="exact")
    a_hat = group_advantages(rewards, gids, "grpo")
    assert torch.allclose(adv[[0, 3]], 0.2 * a_hat[[0, 3]].unsqueeze(1) * mask[[0, 3]].float())
    assert torch.allclose(adv[[1, 2]], a_hat[[1, 2]].unsqueeze(1) * w[[1, 2]] * mask[[1, 2]].float())
    assert stats["resrl/groups_used"] == 1
    assert torch.equal(stats["resrl/negative_weights"], w[[1, 2]][mask[[1, 2]]])
    # packed hidden states (what HiddenCapture keeps) give the same result
    packed, _ = token_advantages(cfg, rewards, gids, mask, hidden[mask])
    assert torch.equal(packed, adv)
    with pytest.raises(ValueError, match="hidden"):
        token_advantages(cfg, rewards, gids, mask)


def test_resrl_sign_base_is_the_ablation():
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(6, 6, 16, generator=gen)
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    gids = torch.tensor([0, 0, 0, 0, 1, 1])  # group 1 all fail
    mask = torch.cat([_mask(), _mask()[:2]])
    cfg = AlgoConfig(scheme="resrl", resrl_base="sign", rank=3, pca="exact", pos_weight=0.2)
    adv, _ = token_advantages(cfg, rewards, gids, mask, hidden)
    w = resrl_token_weights(hidden, mask, gids, rewards >= 1.0, cfg.subspace())
    fm = mask.float()
    assert torch.allclose(adv[[0, 3]], 0.2 * fm[[0, 3]])
    assert torch.allclose(adv[[1, 2]], -w[[1, 2]] * fm[[1, 2]])
    assert torch.equal(adv[4:], torch.zeros_like(adv[4:]))


def _random_batch(seed: int):
    """Groups of 6 with random binary outcomes plus one all-success and two all-failure groups (one of them
    with partial rewards below the threshold, whose GRPO advantage is not 0)."""
    gen = torch.Generator().manual_seed(seed)
    n, mixed = 6, 5
    outcomes = torch.rand(mixed, n, generator=gen) < 0.5
    outcomes[:, 0], outcomes[:, 1] = True, False  # each of these groups is mixed
    rewards = torch.cat([outcomes.float().flatten(), torch.ones(n), torch.zeros(n), torch.rand(n, generator=gen) * 0.9])
    group_ids = torch.arange(rewards.numel()) // n * 3 + 1
    perm = torch.randperm(rewards.numel(), generator=gen)  # groups interleaved in the batch
    rewards, group_ids = rewards[perm], group_ids[perm]
    length = 12
    mask = torch.rand(rewards.numel(), length, generator=gen) < 0.7
    mask[:, 0] = True
    hidden = torch.randn(rewards.numel(), length, 24, generator=gen)
    return rewards, group_ids, mask, hidden


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resrl_equals_grpo_advantage_times_pos_weight_or_token_weight(seed):
    rewards, gids, mask, hidden = _random_batch(seed)
    cfg = AlgoConfig(scheme="resrl", rank=4, pca="exact")
    assert cfg.pos_weight == 0.1 and cfg.resrl_base == "advantage"
    adv, _ = token_advantages(cfg, rewards, gids, mask, hidden)
    positive = rewards >= cfg.success_threshold
    a_hat = group_advantages(rewards, gids, "grpo")
    w = resrl_token_weights(hidden, mask, gids, positive, cfg.subspace())
    single = ~mixed_groups(positive, gids)
    assert single.sum() == 18 and (a_hat[single] != 0).any()  # the partial-reward group has a GRPO signal
    want = a_hat.unsqueeze(1) * torch.where(positive.unsqueeze(1), torch.full_like(w, 0.1), w) * mask.float()
    assert (w[~positive.unsqueeze(1) & mask & ~single.unsqueeze(1)] < 0.99).any()  # real weighting happened
    assert torch.allclose(adv[~single], want[~single], atol=1e-4), (adv[~single] - want[~single]).abs().max()
    assert torch.equal(adv[single], torch.zeros_like(adv[single]))


def test_length_scaling_counts_policy_tokens_only():
    rewards = torch.tensor([1.0, 1.0])
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, :4] = True  # 4 policy tokens, 6 tool tokens
    mask[1, :10] = True
    cfg = AlgoConfig(scheme="psr", length_max=10, length_start=4, length_floor=0.4)
    adv, _ = token_advantages(cfg, rewards, torch.zeros(2, dtype=torch.long), mask)
    assert torch.allclose(adv[0, :4], torch.ones(4))
    assert torch.allclose(adv[1], torch.full((10,), 0.4))


def test_config_validation():
    with pytest.raises(ValueError, match="q_low"):
        AlgoConfig(q_low=0.9, q_high=0.2)
    with pytest.raises(ValueError):
        AlgoConfig(scheme="ppo")
    with pytest.raises(ValueError):
        AlgoConfig(dual_clip=0.5)
