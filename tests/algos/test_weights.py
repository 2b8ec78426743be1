"""resrl_token_weights against the plain per-group reference, and its invariances."""

from __future__ import annotations

import pytest
import torch

from resrl.algos import resrl_token_weights, resrl_weights_packed
from tests.algos.reference import reference_weights


def make(batch: int, length: int, width: int, group: int, seed: int = 0, p_mask: float = 0.7):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, length, width, generator=gen) * 1.5 + 0.3
    mask = torch.rand(batch, length, generator=gen) < p_mask
    group_ids = torch.arange(batch) // group * 7 + 3  # arbitrary, non-contiguous ids
    # Per group: at least one positive and one negative, shuffled by a seeded permutation.
    positive = ((torch.arange(batch) % group) % 2 == 0).view(-1, group)
    positive = positive[:, torch.randperm(group, generator=gen)].flatten()
    return hidden, mask, group_ids, positive


CASES = [
    # (batch, length, width, group, rank): rank capped by tokens-1, by width, or not capped
    (8, 10, 24, 4, 5),
    (12, 6, 16, 3, 64),
    (6, 30, 40, 6, 8),
    (9, 4, 48, 3, 64),
    (16, 12, 20, 8, 2),
]


@pytest.mark.parametrize(("batch", "length", "width", "group", "rank"), CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_equals_reference(batch, length, width, group, rank, seed):
    hidden, mask, gids, pos = make(batch, length, width, group, seed)
    got = resrl_token_weights(hidden, mask, gids, pos, rank=rank, pca="exact", max_pos_tokens=10**6)
    want = reference_weights(hidden, mask, gids, pos, rank=rank)
    assert torch.allclose(got.double(), want, atol=1e-4), (got.double() - want).abs().max()
    negative_tokens = mask & ~pos.unsqueeze(1)
    assert (got[negative_tokens] < 1).any()  # the case exercises real weighting, not only skips


def test_quantiles_and_min_weight_are_honoured():
    hidden, mask, gids, pos = make(12, 20, 32, 6, seed=3)
    kw = {"rank": 6, "q_low": 0.1, "q_high": 0.6, "min_weight": 0.3, "pca": "exact"}
    got = resrl_token_weights(hidden, mask, gids, pos, **kw)
    kw.pop("pca")
    want = reference_weights(hidden, mask, gids, pos, **kw)
    assert torch.allclose(got.double(), want, atol=1e-4)
    neg = mask & ~pos.unsqueeze(1)
    assert float(got[neg].min()) == pytest.approx(0.3)
    assert float(got[neg].max()) == pytest.approx(1.0)


def test_ones_on_positives_masked_and_skipped_groups():
    hidden, mask, _, _ = make(9, 8, 16, 3)
    gids = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    pos = torch.tensor([True, False, False, False, False, False, True, True, True])  # g1: no pos; g2: no neg
    w = resrl_token_weights(hidden, mask, gids, pos, rank=4)
    assert torch.equal(w[~mask], torch.ones_like(w[~mask]))
    assert torch.equal(w[3:], torch.ones_like(w[3:]))
    assert torch.equal(w[0], torch.ones_like(w[0]))
    assert (w[1:3][mask[1:3]] < 1).any()
    _, stats = resrl_weights_packed(hidden[mask], torch.nonzero(mask)[:, 0], gids, pos, rank=4)
    assert stats["groups"] == 3 and stats["groups_used"] == 1
    assert stats["groups_skipped_no_positive"] == 1 and stats["groups_skipped_no_negative"] == 1
    assert stats["weighted_tokens"] == int(mask[1:3].sum())
    assert stats["weighted_token_share"] == pytest.approx(int(mask[1:3].sum()) / int(mask.sum()))
    assert sum(stats["weight_hist"]) == stats["weighted_tokens"]


def test_flat_range_gives_midpoint():
    hidden, mask, _, _ = make(4, 6, 16, 4)
    hidden[1] = hidden[1, 0]  # every negative token the same vector: every residual equal
    hidden[2] = hidden[1, 0]
    mask[1:3] = True
    gids = torch.zeros(4, dtype=torch.long)
    pos = torch.tensor([True, False, False, True])
    w = resrl_token_weights(hidden, mask, gids, pos, rank=3, min_weight=0.2, pca="exact")
    assert torch.allclose(w[1:3], torch.full_like(w[1:3], 0.6))
    want = reference_weights(hidden, mask, gids, pos, rank=3, min_weight=0.2)
    assert torch.allclose(w.double(), want, atol=1e-6)


def test_single_positive_token_uses_rank_zero():
    hidden, mask, _, _ = make(3, 5, 12, 3)
    mask[0] = False
    mask[0, 2] = True  # the only positive token: the subspace is empty, R = |z - mu|^2 / H
    gids = torch.zeros(3, dtype=torch.long)
    pos = torch.tensor([True, False, False])
    got = resrl_token_weights(hidden, mask, gids, pos, pca="exact")
    assert torch.allclose(got.double(), reference_weights(hidden, mask, gids, pos), atol=1e-4)


@pytest.mark.parametrize("pca", ["exact", "lowrank"])
def test_masked_positions_do_not_move_weights(pca):
    hidden, mask, gids, pos = make(12, 10, 24, 4, seed=5)
    base = resrl_token_weights(hidden, mask, gids, pos, rank=4, pca=pca)
    noisy = hidden.clone()
    noisy[~mask] = torch.randn(int((~mask).sum()), 24) * 100  # tool/observation tokens changed wildly
    assert torch.equal(resrl_token_weights(noisy, mask, gids, pos, rank=4, pca=pca), base)


@pytest.mark.parametrize("pca", ["exact", "lowrank"])
def test_invariant_to_rollout_and_group_order(pca):
    hidden, mask, gids, pos = make(16, 9, 24, 4, seed=7)
    base = resrl_token_weights(hidden, mask, gids, pos, rank=5, pca=pca)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    got = resrl_token_weights(hidden[perm], mask[perm], gids[perm], pos[perm], rank=5, pca=pca)
    assert torch.allclose(got, base[perm], atol=1e-5)


def test_subsample_is_seeded_and_independent_of_other_groups():
    hidden, mask, gids, pos = make(16, 12, 24, 4, seed=9)
    mask[:] = True
    kw = {"rank": 4, "max_pos_tokens": 7}
    base = resrl_token_weights(hidden, mask, gids, pos, seed=3, **kw)
    assert torch.equal(resrl_token_weights(hidden, mask, gids, pos, seed=3, **kw), base)
    assert not torch.equal(resrl_token_weights(hidden, mask, gids, pos, seed=4, **kw), base)
    big = resrl_token_weights(hidden, mask, gids, pos, seed=2**40 + 3, **kw)
    assert ((big >= 0.1) & (big <= 1)).all()
    # Reorder whole groups, and compute one group alone: its weights stay the same.
    order = torch.cat([torch.arange(12, 16), torch.arange(0, 12)])
    moved = resrl_token_weights(hidden[order], mask[order], gids[order], pos[order], seed=3, **kw)
    assert torch.allclose(moved, base[order], atol=1e-5)
    alone = resrl_token_weights(hidden[4:8], mask[4:8], gids[4:8], pos[4:8], seed=3, **kw)
    assert torch.allclose(alone, base[4:8], atol=1e-5)


def test_lowrank_matches_exact_on_low_rank_data():
    gen = torch.Generator().manual_seed(11)
    width, n = 64, 16 * 20
    factors = torch.randn(n, 6, generator=gen) * torch.tensor([9.0, 7.0, 5.0, 4.0, 3.0, 2.5])
    hidden = (factors @ torch.randn(6, width, generator=gen) + 0.05 * torch.randn(n, width, generator=gen)).view(
        16, 20, width
    )
    mask = torch.rand(16, 20, generator=gen) < 0.8
    gids = torch.arange(16) // 8
    pos = (torch.arange(16) % 2) == 0
    exact = resrl_token_weights(hidden, mask, gids, pos, rank=4, pca="exact")
    low = resrl_token_weights(hidden, mask, gids, pos, rank=4, pca="lowrank")
    assert (low - exact).abs().max() < 1e-2


def test_half_precision_and_packed_agree_with_dense():
    hidden, mask, gids, pos = make(8, 10, 24, 4, seed=2)
    dense = resrl_token_weights(hidden, mask, gids, pos, rank=3, pca="exact")
    packed, _ = resrl_weights_packed(hidden[mask], torch.nonzero(mask)[:, 0], gids, pos, rank=3, pca="exact")
    assert torch.allclose(dense[mask], packed, atol=1e-6)
    half = resrl_token_weights(hidden.bfloat16(), mask, gids, pos, rank=3, pca="exact")
    assert half.dtype == torch.float32 and (half - dense).abs().max() < 0.1


def test_bad_input_is_reported():
    hidden, mask, gids, pos = make(4, 5, 8, 2)
    with pytest.raises(ValueError, match="mask"):
        resrl_token_weights(hidden, mask[:, :3], gids, pos)
    with pytest.raises(ValueError, match="q_low"):
        resrl_token_weights(hidden, mask, gids, pos, q_low=0.9, q_high=0.1)
    with pytest.raises(ValueError, match="pca"):
        resrl_token_weights(hidden, mask, gids, pos, pca="svd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="integer"):
        resrl_token_weights(hidden, mask, gids.float(), pos)
