"""Group advantages, length-scaled rewards and per-token advantages for every weighting scheme."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from resrl.algos.config import AlgoConfig
from resrl.algos.weights import resrl_weights_packed


def _group_sums(values: Tensor, group_of: Tensor, n_groups: int) -> Tensor:
    return torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add_(0, group_of, values)


def group_advantages(
    rewards: Tensor,
    group_ids: Tensor,
    estimator: Literal["grpo", "drgrpo", "rloo"] = "grpo",
    eps: float = 1e-6,
) -> Tensor:
    """Per-rollout advantages relative to the rollout's group (vectorised over groups).

    - ``grpo``: (r - mean) / (std + eps), with the unbiased group std.
    - ``drgrpo``: r - mean (Dr.GRPO drops the std normalisation).
    - ``rloo``: r - mean of the *other* rollouts of the group, i.e. n/(n-1) (r - mean).

    A group of one rollout has no baseline and gets advantage 0 under every estimator.
    """
    if rewards.dim() != 1 or group_ids.shape != rewards.shape:
        raise ValueError(
            f"rewards and group_ids must both be (B,), got {tuple(rewards.shape)}, {tuple(group_ids.shape)}"
        )
    if estimator not in ("grpo", "drgrpo", "rloo"):
        raise ValueError(f"estimator must be 'grpo', 'drgrpo' or 'rloo', got {estimator!r}")
    rewards = rewards.to(torch.float32) if not rewards.is_floating_point() else rewards
    _, group_of = torch.unique(group_ids, return_inverse=True)
    n_groups = int(group_of.max()) + 1 if group_of.numel() else 0
    count = _group_sums(torch.ones_like(rewards), group_of, n_groups)
    mean = _group_sums(rewards, group_of, n_groups) / count
    centred = rewards - mean[group_of]
    n = count[group_of]
    if estimator == "drgrpo":
        return centred
    if estimator == "rloo":
        return torch.where(n > 1, centred * n / (n - 1).clamp_min(1), torch.zeros_like(centred))
    var = _group_sums(centred * centred, group_of, n_groups)[group_of] / (n - 1).clamp_min(1)
    std = var.sqrt()
    # Equal rewards carry no signal: 0, also when eps is 0.
    return torch.where(std > 0, centred / (std + eps), torch.zeros_like(centred))


def length_scaled_rewards(
    rewards: Tensor,
    n_policy_tokens: Tensor,
    positive: Tensor,
    *,
    start: int,
    max_len: int,
    floor: float = 0.7,
) -> Tensor:
    """Scale positive rollouts' rewards by their length in trainable tokens.

    The factor is 1 up to ``start`` tokens, falls linearly to ``floor`` at ``max_len`` and stays at ``floor``
    beyond; negatives are returned unchanged. Count only policy tokens (the loss mask), not tool output.
    """
    if not 0 <= start <= max_len:
        raise ValueError(f"need 0 <= start <= max_len, got start={start}, max_len={max_len}")
    n = n_policy_tokens.to(rewards.dtype if rewards.is_floating_point() else torch.float32)
    if max_len == start:
        factor = torch.where(n <= start, torch.ones_like(n), torch.full_like(n, floor))
    else:
        frac = ((n - start) / (max_len - start)).clamp(0.0, 1.0)
        factor = 1.0 - (1.0 - floor) * frac
    return torch.where(positive.to(torch.bool), rewards * factor, rewards.to(factor.dtype))


def _packed_hidden(hidden: Tensor, mask: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    if hidden.dim() == 3:
        if hidden.shape[:2] != mask.shape:
            raise ValueError(f"hidden {tuple(hidden.shape)} does not match mask {tuple(mask.shape)}")
        return hidden[rows, cols]
    if hidden.dim() == 2 and hidden.shape[0] == rows.numel():
        return hidden
    raise ValueError(
        f"hidden must be (B, T, H) or packed (N, H) with N = mask.sum() = {rows.numel()}; got {tuple(hidden.shape)}"
    )


def mixed_groups(positive: Tensor, group_ids: Tensor) -> Tensor:
    """(B,) bool: whether each rollout's group holds both a success and a failure."""
    _, group_of = torch.unique(group_ids, return_inverse=True)
    n_groups = int(group_of.max()) + 1 if group_of.numel() else 0
    wins = _group_sums(positive.to(torch.float32), group_of, n_groups)
    size = _group_sums(torch.ones_like(positive, dtype=torch.float32), group_of, n_groups)
    return ((wins > 0) & (wins < size))[group_of]


def token_advantages(
    cfg: AlgoConfig,
    rewards: Tensor,
    group_ids: Tensor,
    mask: Tensor,
    hidden: Tensor | None = None,
) -> tuple[Tensor, dict[str, Any]]:
    """Per-token advantages (B, T) for one batch of *complete* groups, and statistics.

    With p the positive rollouts (reward >= ``success_threshold``), Â the group advantage of ``cfg.estimator``
    and w_t the ResRL weight of negative policy token t (``resrl_weights_packed``), the schemes of
    :func:`resrl.algos.config.scheme_table` give:

    - ``grpo``: Â (GRPO, Dr.GRPO or RLOO by estimator).
    - ``psr``: +1 on p, 0 else. ``nsr``: 0 on p, -1 else. ``w_reinforce``: λ (``w_lambda``) on p, -1 else.
    - ``resrl`` (published, ``resrl_base="advantage"``): Â · ``pos_weight`` on p and Â · w_t on negative policy
      tokens; 0 in a group whose rollouts all succeed or all fail.
    - ``resrl`` with ``resrl_base="sign"`` (ablation): +``pos_weight`` on p and -w_t on negative policy tokens;
      also 0 in single-outcome groups.

    With length scaling on, positives' rewards are scaled before Â is computed (advantage base) or their
    coefficient is scaled (sign base).

    Call this once on the whole batch (every rollout of every group) before splitting into micro-batches or
    ranks, so nothing depends on how the batch is later cut. ``mask`` (B, T) marks the trainable tokens and
    drives everything: advantages are 0 elsewhere, the ResRL subspace and quantiles use only masked tokens, and
    length scaling counts only masked tokens. ``hidden`` is needed when ``cfg.spec.needs_hidden`` (ResRL):
    (B, T, H), or the packed (N, H) hidden states of the masked tokens in row-major order (what
    ``HiddenCapture`` keeps). The ResRL statistics include ``resrl/negative_weights``, the weights of the
    weighted negative tokens as a tensor (for a histogram; not a scalar).
    """
    if rewards.dim() != 1 or mask.dim() != 2 or mask.shape[0] != rewards.shape[0]:
        raise ValueError(f"rewards must be (B,) and mask (B, T); got {tuple(rewards.shape)}, {tuple(mask.shape)}")
    spec = cfg.spec
    if spec.needs_hidden and hidden is None:
        raise ValueError(f"scheme {cfg.scheme!r} needs the hidden states of the policy tokens (hidden=...)")
    mask = mask.to(torch.bool)
    rewards = rewards.to(torch.float32)
    positive = rewards >= cfg.success_threshold
    n_tokens = mask.sum(1)
    window = cfg.length_window()
    ones = torch.ones_like(rewards)
    if window is not None:
        start, max_len = window
        rewards = length_scaled_rewards(
            rewards, n_tokens, positive, start=start, max_len=max_len, floor=cfg.length_floor
        )
        pos_scale = length_scaled_rewards(
            ones, n_tokens, positive, start=start, max_len=max_len, floor=cfg.length_floor
        )
    else:
        pos_scale = ones
    stats: dict[str, Any] = {
        "reward_mean": float(rewards.mean()) if rewards.numel() else 0.0,
        "positive_share": float(positive.float().mean()) if rewards.numel() else 0.0,
    }
    if spec.base == "advantage":
        adv_seq = group_advantages(rewards, group_ids, cfg.estimator)
        seq = adv_seq * torch.where(positive, spec.positive, spec.negative)
    else:
        seq = torch.where(positive, spec.positive * pos_scale, torch.full_like(rewards, -spec.negative))
    if spec.mixed_groups_only:
        mixed = mixed_groups(positive, group_ids)
        seq = torch.where(mixed, seq, torch.zeros_like(seq))
        stats["mixed_group_share"] = float(mixed.float().mean()) if rewards.numel() else 0.0
    adv = seq.unsqueeze(1) * mask.to(torch.float32)
    if not spec.token_weights:
        return adv, stats
    rows, cols = torch.nonzero(mask, as_tuple=True)
    tokens = _packed_hidden(hidden, mask, rows, cols).to(rewards.device)
    weights, wstats = resrl_weights_packed(
        tokens, rows.to(tokens.device), group_ids.to(tokens.device), positive.to(tokens.device), cfg.subspace()
    )
    # Positive tokens and skipped groups have weight 1, so this scales exactly the negative policy tokens.
    adv[rows, cols] = adv[rows, cols] * weights.to(adv.dtype).to(adv.device)
    stats.update({f"resrl/{k}": v for k, v in wstats.items()})
    return adv, stats
