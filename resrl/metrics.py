"""Every evaluation and training metric, in one place, with one key naming.

- Avg@k: the mean success of each task's samples, averaged over tasks.
- Pass@k: unbiased chance that at least one of k samples succeeds, ``1 - C(n-c, k) / C(n, k)`` (Chen et al. 2021).
- pass^k: unbiased chance that all k samples succeed, ``C(c, k) / C(n, k)`` (τ-bench).
- token entropy, distinct-n, and ResRL coverage (groups eligible/skipped, weighted-token share, weight histogram).

The rules, used by ``resrl rollout``, ``resrl eval``, the trainer's evaluation and the benchmarks alike:

- A trajectory with an ``infra_error`` is left out of every score (the fault was ours, not the policy's) and
  counted under ``infra_errors``. A task whose samples all failed that way is not a task of the score.
- Avg@k counts every task with at least one usable sample (a success rate needs no minimum).
- Pass@j and pass^j count only the tasks with at least j usable samples: the unbiased estimators are not defined
  on fewer. ``tasks_short`` counts the tasks with fewer than k usable samples. A value no task can give is
  ``None`` (JSON ``null``, shown as "-"), never 0.

Keys of :func:`score`: ``episodes``, ``infra_errors``, ``tasks``, ``tasks_short``, ``k``, ``success_rate``,
``reward_mean``, ``avg_at_k``, ``pass_at_k`` and ``pass_hat_k`` (at k), ``pass_at_k/<j>`` and
``pass_hat_k/<j>`` for j = 1..k, ``pass_curve`` (the list of Pass@j) and ``avg_at_k/<env id>``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from math import comb
from typing import Any

import torch

_HIST_BINS = 10


def _check(n: int, c: int, k: int) -> None:
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of the chance that at least one of ``k`` samples passes, from ``n`` samples of which
    ``c`` passed: ``1 - C(n-c, k) / C(n, k)`` (Chen et al. 2021)."""
    _check(n, c, k)
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of the chance that all ``k`` samples pass (pass^k, τ-bench): ``C(c, k) / C(n, k)``."""
    _check(n, c, k)
    return comb(c, k) / comb(n, k)


def group_successes(trajectories: Iterable[Any], threshold: float = 1.0) -> dict[str, list[bool]]:
    """Per group (task): whether each usable sample succeeded (``reward >= threshold``); infra errors left out."""
    groups: dict[str, list[bool]] = defaultdict(list)
    for t in trajectories:
        if t.infra_error is None:
            groups[t.group_id].append(t.reward >= threshold)
    return dict(groups)


def avg_at_k(groups: dict[str, list[bool]]) -> float | None:
    """Mean success over each group's samples, averaged over groups; None without a group."""
    sets = [s for s in groups.values() if s]
    return sum(sum(s) / len(s) for s in sets) / len(sets) if sets else None


def mean_pass_at_k(groups: dict[str, list[bool]], k: int) -> float | None:
    """Unbiased Pass@k averaged over the groups with at least ``k`` usable samples; None if there is none."""
    scores = [pass_at_k(len(s), sum(s), k) for s in groups.values() if len(s) >= k]
    return sum(scores) / len(scores) if scores else None


def mean_pass_hat_k(groups: dict[str, list[bool]], k: int) -> float | None:
    """Unbiased pass^k averaged over the groups with at least ``k`` usable samples; None if there is none."""
    scores = [pass_hat_k(len(s), sum(s), k) for s in groups.values() if len(s) >= k]
    return sum(scores) / len(scores) if scores else None


def outcomes(trajectories: Sequence[Any], threshold: float = 1.0) -> dict[str, Any]:
    """Episode counts, success rate and mean reward of the usable trajectories (the trainer's step metrics)."""
    usable = [t for t in trajectories if t.infra_error is None]
    return {
        "episodes": len(trajectories),
        "infra_errors": len(trajectories) - len(usable),
        "success_rate": sum(t.reward >= threshold for t in usable) / len(usable) if usable else None,
        "reward_mean": sum(t.reward for t in usable) / len(usable) if usable else None,
    }


def score(trajectories: Sequence[Any], k: int | None = None, threshold: float = 1.0) -> dict[str, Any]:
    """Every score of a collection of groups (see the module docstring for the keys and the rules).

    ``k`` defaults to the largest number of episodes of one group (infra errors included: what was asked for).
    """
    sizes: dict[str, int] = defaultdict(int)
    for t in trajectories:
        sizes[t.group_id] += 1
    if k is None:
        k = max(sizes.values(), default=1)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    groups = group_successes(trajectories, threshold)
    curve = [mean_pass_at_k(groups, j) for j in range(1, k + 1)]
    hat = [mean_pass_hat_k(groups, j) for j in range(1, k + 1)]
    result: dict[str, Any] = {
        **outcomes(trajectories, threshold),
        "tasks": len(groups),
        "tasks_short": sum(len(s) < k for s in groups.values()),
        "k": k,
        "avg_at_k": avg_at_k(groups),
        "pass_at_k": curve[-1],
        "pass_hat_k": hat[-1],
        **{f"pass_at_k/{j}": v for j, v in enumerate(curve, 1)},
        **{f"pass_hat_k/{j}": v for j, v in enumerate(hat, 1)},
        "pass_curve": curve,
    }
    env_of = {t.group_id: t.env_id for t in trajectories}
    by_env: dict[str, dict[str, list[bool]]] = defaultdict(dict)
    for gid, s in groups.items():
        by_env[env_of[gid]][gid] = s
    for env_id, env_groups in sorted(by_env.items()):
        result[f"avg_at_k/{env_id}"] = avg_at_k(env_groups)
    return result


def score_by_env(trajectories: Sequence[Any], k: int | None = None, threshold: float = 1.0) -> dict[str, dict]:
    """:func:`score` of each environment's trajectories, by env id (infra errors counted per env)."""
    if k is None:
        sizes: dict[str, int] = defaultdict(int)
        for t in trajectories:
            sizes[t.group_id] += 1
        k = max(sizes.values(), default=1)
    envs: dict[str, list[Any]] = defaultdict(list)
    for t in trajectories:
        envs[t.env_id].append(t)
    return {env_id: score(trajs, k, threshold) for env_id, trajs in sorted(envs.items())}


def mean_entropy(entropies: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean of per-token entropies over the positions where ``mask`` is 1 (all positions without a mask)."""
    if mask is None:
        return float(entropies.float().mean())
    mask = mask.to(torch.float32)
    return float((entropies.float() * mask).sum() / mask.sum().clamp(min=1))


def token_entropy(logits: torch.Tensor, mask: torch.Tensor | None = None, temperature: float = 1.0) -> float:
    """Mean entropy (nats) of the next-token distributions ``softmax(logits / T)`` over positions where
    ``mask`` is 1 (all positions without a mask). ``logits``: ``[..., vocab]``; ``mask``: ``[...]``."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return mean_entropy(-(logp.exp() * logp).sum(-1), mask)


def distinct_n(sequences: Iterable[Sequence[Any] | str], n: int = 2) -> float:
    """Distinct n-grams / all n-grams over ``sequences`` (token-id lists, or strings split into words):
    1.0 means no repetition."""
    if n < 1:
        raise ValueError("n must be at least 1")
    seen: set[tuple] = set()
    total = 0
    for seq in sequences:
        seq = seq.split() if isinstance(seq, str) else seq
        grams = [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else 0.0


def resrl_coverage(
    pos_tokens: torch.Tensor, neg_tokens: torch.Tensor, n_tokens: int, weights: torch.Tensor, min_weight: float
) -> dict[str, Any]:
    """How much of a batch ResRL weighted.

    Args:
        pos_tokens, neg_tokens: (G,) positive and negative policy tokens of each group.
        n_tokens: all policy tokens of the batch.
        weights: the weights given to the negative tokens of the eligible groups (groups with both).
        min_weight: the floor ξ of the weights (the histogram spans [ξ, 1] in 10 bins).

    Returns plain numbers (``groups``, ``groups_used``, ``groups_skipped_no_positive``,
    ``groups_skipped_no_negative``, ``weighted_tokens``, ``weighted_token_share``, ``weight_mean``,
    ``weight_hist``, ``weight_hist_edges``) and ``negative_weights``, the weights as a tensor (for histograms).
    """
    no_pos = pos_tokens == 0
    eligible = ~no_pos & (neg_tokens > 0)
    weighted = int(neg_tokens[eligible].sum())
    w = weights.detach()
    hist = torch.histc(w.float(), bins=_HIST_BINS, min=min_weight, max=1.0) if w.numel() else None
    return {
        "groups": int(pos_tokens.numel()),
        "groups_used": int(eligible.sum()),
        "groups_skipped_no_positive": int(no_pos.sum()),
        "groups_skipped_no_negative": int(((neg_tokens == 0) & ~no_pos).sum()),
        "weighted_tokens": weighted,
        "weighted_token_share": weighted / n_tokens if n_tokens else 0.0,
        "weight_mean": float(w.mean()) if w.numel() else 1.0,
        "weight_hist": [int(c) for c in hist] if hist is not None else [0] * _HIST_BINS,
        "weight_hist_edges": torch.linspace(min_weight, 1.0, _HIST_BINS + 1).tolist(),
        "negative_weights": w,
    }
