"""Evaluation metrics: Avg@k, unbiased Pass@k (Chen et al. 2021), token entropy and distinct-n.

Trajectories with an ``infra_error`` are left out of every score: the fault was ours, not the policy's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from math import comb
from typing import Any

import torch


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of the chance that at least one of ``k`` samples passes, from ``n`` samples of which
    ``c`` passed: ``1 - C(n-c, k) / C(n, k)`` (Chen et al. 2021)."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def group_successes(trajectories: Iterable[Any], threshold: float = 1.0) -> dict[str, list[bool]]:
    """Per group (task): whether each usable sample succeeded (``reward >= threshold``)."""
    groups: dict[str, list[bool]] = defaultdict(list)
    for t in trajectories:
        if t.infra_error is None:
            groups[t.group_id].append(t.reward >= threshold)
    return dict(groups)


def avg_at_k(groups: dict[str, list[bool]]) -> float:
    """Mean success over each group's samples, averaged over groups (Avg@k with k = samples per group)."""
    if not groups:
        return 0.0
    return sum(sum(s) / len(s) for s in groups.values() if s) / len(groups)


def mean_pass_at_k(groups: dict[str, list[bool]], k: int) -> float:
    """Unbiased Pass@k averaged over groups; groups with fewer than ``k`` usable samples are skipped."""
    scores = [pass_at_k(len(s), sum(s), k) for s in groups.values() if len(s) >= k]
    return sum(scores) / len(scores) if scores else 0.0


def summarize(trajectories: Sequence[Any], threshold: float = 1.0, ks: Iterable[int] | None = None) -> dict:
    """Success rate, Avg@k and Pass@k (for ``ks``, default 1 and the group size) of collected trajectories."""
    groups = group_successes(trajectories, threshold)
    usable = [t for t in trajectories if t.infra_error is None]
    n = max((len(s) for s in groups.values()), default=0)
    ks = sorted(set(ks if ks is not None else [1, n])) if n else []
    return {
        "episodes": len(trajectories),
        "infra_errors": len(trajectories) - len(usable),
        "success_rate": sum(t.reward >= threshold for t in usable) / len(usable) if usable else 0.0,
        "mean_reward": sum(t.reward for t in usable) / len(usable) if usable else 0.0,
        f"avg@{n}": avg_at_k(groups),
        **{f"pass@{k}": mean_pass_at_k(groups, k) for k in ks if k >= 1},
    }


def token_entropy(logits: torch.Tensor, mask: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
    """Mean entropy (nats) of the next-token distributions ``softmax(logits / T)`` over positions where
    ``mask`` is 1 (all positions without a mask). ``logits``: ``[..., vocab]``; ``mask``: ``[...]``."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    if mask is None:
        return entropy.mean()
    mask = mask.to(entropy.dtype)
    return (entropy * mask).sum() / mask.sum().clamp(min=1)


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
