"""The PPO-clip policy loss: asymmetric clip, dual-clip, three aggregations, optional KL and entropy terms, and
an optional truncated importance weight against the policy that sampled the rollouts."""

from __future__ import annotations

import torch
from torch import Tensor

from resrl.algos.config import AlgoConfig


def aggregate(
    values: Tensor,
    mask: Tensor,
    cfg: AlgoConfig,
    *,
    global_token_count: float | Tensor | None = None,
    global_seq_count: float | Tensor | None = None,
) -> Tensor:
    """Reduce per-token ``values`` (B, T) over the trainable ``mask`` with ``cfg.agg``.

    The global counts make micro-batching exact: pass the number of trainable tokens (``token-mean``) or of
    sequences (the ``seq-mean-*`` modes) of the WHOLE batch (all micro-batches and ranks), and the sum of the
    micro-batch losses equals the full-batch loss. Without them the micro-batch's own counts are used.
    """
    fmask = mask.to(values.dtype)
    if cfg.agg == "token-mean":
        denom = fmask.sum() if global_token_count is None else global_token_count
        return (values * fmask).sum() / torch.as_tensor(denom, dtype=values.dtype, device=values.device).clamp_min(1)
    if cfg.agg == "seq-mean-token-mean":
        per_seq = (values * fmask).sum(1) / fmask.sum(1).clamp_min(1)
    else:  # seq-mean-token-sum-norm (Dr.GRPO): a constant divisor, so long answers are not favoured
        per_seq = (values * fmask).sum(1) / float(cfg.norm_len or mask.shape[1])
    denom = mask.shape[0] if global_seq_count is None else global_seq_count
    return per_seq.sum() / torch.as_tensor(denom, dtype=values.dtype, device=values.device).clamp_min(1)


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    cfg: AlgoConfig,
    *,
    ref_logprobs: Tensor | None = None,
    entropy: Tensor | None = None,
    behaviour_logprobs: Tensor | None = None,
    global_token_count: float | Tensor | None = None,
    global_seq_count: float | Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """PPO-clip loss over trainable tokens (all arguments (B, T); ``mask`` True on policy tokens).

    ratio = exp(logprobs - old_logprobs) is clipped to [1 - clip_low, 1 + clip_high]; with ``dual_clip`` c the
    loss of a negative-advantage token is also bounded by -c * A (Ye et al. 2020). Masked positions contribute
    exactly nothing (their values are selected away, so even NaN/inf there cannot leak into the gradient).
    A KL term to ``ref_logprobs`` (k1 or k3) is added only when ``cfg.kl_coef > 0``; an entropy bonus
    ``-entropy_coef * entropy`` when ``entropy`` is given and ``cfg.entropy_coef != 0``.

    With ``cfg.tis_cap`` C, each token's clipped term is multiplied by the truncated importance weight
    w = min(exp(old_logprobs - behaviour_logprobs), C) (no gradient through it): ``behaviour_logprobs`` are the
    log-probs the rollout engine recorded when it sampled the token. It corrects for a behaviour policy other than
    the one the PPO ratio starts from — one step stale under ``train.async_steps=1``, or an engine whose numerics
    differ from the trainer's — and the cap bounds the variance the correction adds.
    """
    if not (logprobs.shape == old_logprobs.shape == advantages.shape == mask.shape) or logprobs.dim() != 2:
        raise ValueError(
            "logprobs, old_logprobs, advantages and mask must share one (B, T) shape; got "
            f"{tuple(logprobs.shape)}, {tuple(old_logprobs.shape)}, {tuple(advantages.shape)}, {tuple(mask.shape)}"
        )
    mask = mask.to(torch.bool)
    zero = torch.zeros_like(logprobs)
    # torch.where rather than multiplying by the mask: 0 * inf would be NaN and poison the gradient.
    log_ratio = torch.where(mask, logprobs - old_logprobs.detach(), zero)
    adv = torch.where(mask, advantages.detach().to(logprobs.dtype), zero)
    ratio = torch.exp(log_ratio)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - cfg.clip_low, 1.0 + cfg.clip_high)
    pg = torch.maximum(unclipped, clipped)
    dual_hit = torch.zeros_like(mask)
    if cfg.dual_clip is not None:
        bound = -adv * cfg.dual_clip
        dual_hit = (adv < 0) & (pg > bound) & mask
        pg = torch.where(adv < 0, torch.minimum(pg, bound), pg)
    tis = _truncated_weight(old_logprobs, behaviour_logprobs, mask, cfg.tis_cap) if cfg.tis_cap is not None else None
    if tis is not None:
        pg = pg * tis[0]
    counts = {"global_token_count": global_token_count, "global_seq_count": global_seq_count}
    loss = aggregate(pg, mask, cfg, **counts)

    n = mask.sum().clamp_min(1)
    with torch.no_grad():
        metrics: dict[str, float] = {
            "pg_loss": float(loss.detach()),
            "clip_frac": float(((clipped > unclipped) & mask).sum() / n),
            "dual_clip_frac": float(dual_hit.sum() / n),
            "approx_kl_old": float((0.5 * log_ratio**2).sum() / n),
            "ratio_mean": float(torch.where(mask, ratio, zero).sum() / n),
        }
        if tis is not None:
            metrics["tis_weight_mean"] = float(torch.where(mask, tis[0], zero).sum() / n)
            metrics["tis_truncated_frac"] = float(tis[1].sum() / n)
    if cfg.kl_coef > 0:
        if ref_logprobs is None:
            raise ValueError("kl_coef > 0 needs ref_logprobs from the reference model")
        diff = torch.where(mask, ref_logprobs.detach() - logprobs, zero)
        kl = -diff if cfg.kl_type == "k1" else torch.exp(diff) - diff - 1.0
        kl_term = aggregate(kl, mask, cfg, **counts)
        loss = loss + cfg.kl_coef * kl_term
        metrics["kl"] = float(kl_term.detach())
    if entropy is not None and cfg.entropy_coef != 0:
        ent = aggregate(torch.where(mask, entropy, zero), mask, cfg, **counts)
        loss = loss - cfg.entropy_coef * ent
        metrics["entropy"] = float(ent.detach())
    return loss, metrics


def _truncated_weight(
    old_logprobs: Tensor, behaviour_logprobs: Tensor | None, mask: Tensor, cap: float
) -> tuple[Tensor, Tensor]:
    """The per-token weight min(exp(old - behaviour), cap) (1 off the mask) and where the cap cut it."""
    if behaviour_logprobs is None:
        raise ValueError("tis_cap needs behaviour_logprobs: the log-probs recorded when the rollouts were sampled")
    if behaviour_logprobs.shape != mask.shape:
        raise ValueError(
            f"behaviour_logprobs must have the (B, T) shape {tuple(mask.shape)}; got {tuple(behaviour_logprobs.shape)}"
        )
    log_w = torch.where(mask, old_logprobs.detach() - behaviour_logprobs.detach().to(old_logprobs.dtype), 0.0)
    raw = torch.exp(log_w)
    return torch.clamp(raw, max=cap), (raw > cap) & mask
