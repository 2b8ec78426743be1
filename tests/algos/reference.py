"""A deliberately plain per-group, per-token implementation of ARCHITECTURE §3 steps 3–5 (float64, exact SVD).

It is the yardstick for ``resrl_token_weights(pca="exact")``: loops everywhere, full projections built, no
cleverness, so it can be checked by reading.
"""

from __future__ import annotations

import torch
from torch import Tensor


def layer_norm(x: Tensor, eps: float = 1e-5) -> Tensor:
    return (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + eps)


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), written out."""
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos // 1)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def reference_weights(
    hidden: Tensor,
    mask: Tensor,
    group_ids: Tensor,
    positive: Tensor,
    *,
    rank: int = 64,
    q_low: float = 0.2,
    q_high: float = 0.8,
    min_weight: float = 0.1,
) -> Tensor:
    batch, length, width = hidden.shape
    h = hidden.double()
    weights = torch.ones(batch, length, dtype=torch.float64)
    for g in sorted(set(group_ids.tolist())):
        rows = [b for b in range(batch) if int(group_ids[b]) == g]
        pos = [(b, t) for b in rows if positive[b] for t in range(length) if mask[b, t]]
        neg = [(b, t) for b in rows if not positive[b] for t in range(length) if mask[b, t]]
        if not pos or not neg:
            continue
        p = torch.stack([layer_norm(h[b, t]) for b, t in pos])
        mu = p.mean(0)
        k = min(rank, len(pos) - 1, width)
        v = torch.linalg.svd(p - mu, full_matrices=False).Vh[:k].T  # (H, k)
        residuals = []
        for b, t in neg:
            z = layer_norm(h[b, t]) - mu
            projection = v @ (v.T @ z)
            residuals.append(float(((z - projection) ** 2).sum() / width))
        lo, hi = quantile(residuals, q_low), quantile(residuals, q_high)
        flat = hi - lo <= 1e-5
        for (b, t), r in zip(neg, residuals, strict=True):
            if flat:
                weights[b, t] = (min_weight + 1) / 2
            else:
                frac = min(max((r - lo) / (hi - lo), 0.0), 1.0)
                weights[b, t] = min_weight + (1 - min_weight) * frac
    return weights
