"""The algorithm configuration shared by advantages, ResRL weights and the policy loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from resrl.algos.weights import SubspaceParams

Scheme = Literal["grpo", "psr", "nsr", "w_reinforce", "resrl"]
Estimator = Literal["grpo", "drgrpo", "rloo"]
Aggregation = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
Base = Literal["advantage", "sign"]

# The paper's length scaling: full reward up to 3500 tokens, linear down to 0.7x at 4096.
PAPER_LENGTH_START = 3500
PAPER_LENGTH_MAX = 4096


@dataclass(frozen=True)
class SchemeSpec:
    """One weighting scheme: its base, its coefficients and what it needs.

    Token advantage = base x coefficient (x w_t on negative policy tokens when ``token_weights``):

    - ``base="advantage"``: the base is the group advantage Â of ``AlgoConfig.estimator``; the coefficients
      scale it (positive: ``positive`` x Â, negative: ``negative`` x Â).
    - ``base="sign"``: the base is +1 on positive and -1 on negative rollouts (the REINFORCE family of Zhu et
      al. 2025), so a positive gets ``+positive`` and a negative ``-negative``.
    """

    name: str
    base: Base
    positive: float
    negative: float
    token_weights: bool = False
    mixed_groups_only: bool = False  # zero every group whose rollouts all succeed or all fail

    @property
    def needs_hidden(self) -> bool:
        """Whether the scheme reads the hidden states of the policy tokens (the ResRL weights do)."""
        return self.token_weights


def scheme_table(cfg: AlgoConfig) -> dict[str, SchemeSpec]:
    """Every scheme, with the coefficients ``cfg`` gives it (docs/algorithms.md states each formula)."""
    return {
        "grpo": SchemeSpec("grpo", "advantage", 1.0, 1.0),
        "psr": SchemeSpec("psr", "sign", 1.0, 0.0),
        "nsr": SchemeSpec("nsr", "sign", 0.0, 1.0),
        "w_reinforce": SchemeSpec("w_reinforce", "sign", cfg.w_lambda, 1.0),
        "resrl": SchemeSpec("resrl", cfg.resrl_base, cfg.pos_weight, 1.0, token_weights=True, mixed_groups_only=True),
    }


class AlgoConfig(BaseModel):
    """How advantages, sample weights and the loss are computed.

    Schemes (the table is :func:`scheme_table`; formulas in docs/algorithms.md): ``grpo`` uses the
    group-relative advantage Â from ``estimator`` (GRPO, Dr.GRPO or RLOO). ``psr``, ``nsr`` and ``w_reinforce``
    are the sign-based REINFORCE family of Zhu et al. (2025): +1 on positives only, -1 on negatives only, and
    ``w_lambda`` on positives with -1 on negatives. ``resrl`` is the published method, Ã = Â · ``pos_weight`` on
    positive rollouts and Ã = Â · w_t on each negative policy token (w_t its ResRL weight), with 0 for groups
    that all succeed or all fail; ``resrl_base="sign"`` is the ablation that replaces Â by ±1. A rollout is
    positive when its reward is ``>= success_threshold`` — an explicit rule, never "reward > 0".
    """

    model_config = ConfigDict(extra="forbid")

    scheme: Scheme = "resrl"
    estimator: Estimator = "grpo"
    success_threshold: float = Field(1.0, description="reward >= this counts as a success (positive)")
    w_lambda: float = Field(0.1, ge=0.0)
    pos_weight: float = Field(0.1, ge=0.0)
    resrl_base: Base = Field(
        "advantage", description="ResRL's base: the group advantage (published) or the ±1 sign (ablation)"
    )
    # ResRL subspace weighting (ARCHITECTURE §3 steps 3-5)
    rank: int = Field(64, ge=0)
    q_low: float = Field(0.2, ge=0.0, le=1.0)
    q_high: float = Field(0.8, ge=0.0, le=1.0)
    min_weight: float = Field(0.1, ge=0.0, le=1.0)
    max_pos_tokens: int = Field(4096, ge=1)
    pca: Literal["lowrank", "exact"] = "lowrank"
    pca_niter: int = Field(2, ge=1)
    seed: int = 0
    # PPO-clip loss
    clip_low: float = Field(0.2, ge=0.0)
    clip_high: float = Field(0.28, ge=0.0)
    dual_clip: float | None = Field(3.0, gt=1.0, description="bound on the loss of negative advantages; None: off")
    agg: Aggregation = "token-mean"
    kl_coef: float = Field(0.0, ge=0.0)
    kl_type: Literal["k1", "k3"] = "k1"
    entropy_coef: float = 0.0
    # Truncated importance sampling against the behaviour policy (the rollouts' recorded log-probs)
    tis_cap: float | None = Field(
        None,
        ge=1.0,
        description="C of the per-token weight min(exp(old - behaviour logp), C); None: off "
        "(the trainer turns it on at 2.0 under train.async_steps=1 unless set)",
    )
    # Length-scaled reward for positives; None disables. Start/max are the paper's 3500/4096 by default and
    # are rescaled to the run's max length when only ``length_max`` is given.
    length_max: int | None = Field(None, ge=1, description="the run's max response length in policy tokens")
    length_start: int | None = Field(None, ge=0)
    length_floor: float = Field(0.7, ge=0.0, le=1.0)
    norm_len: int | None = Field(
        None, ge=1, description="the constant divisor of seq-mean-token-sum-norm; default: the mask width"
    )

    @model_validator(mode="after")
    def _consistent(self) -> AlgoConfig:
        if self.q_low >= self.q_high:
            raise ValueError(f"q_low ({self.q_low}) must be below q_high ({self.q_high})")
        if self.length_max is not None and self.length_start is not None and self.length_start > self.length_max:
            raise ValueError(f"length_start ({self.length_start}) must not exceed length_max ({self.length_max})")
        return self

    @property
    def spec(self) -> SchemeSpec:
        """This configuration's row of the scheme table."""
        return scheme_table(self)[self.scheme]

    def subspace(self) -> SubspaceParams:
        """The ResRL weight parameters of this configuration."""
        return SubspaceParams(
            rank=self.rank,
            q_low=self.q_low,
            q_high=self.q_high,
            min_weight=self.min_weight,
            max_pos_tokens=self.max_pos_tokens,
            pca=self.pca,
            seed=self.seed,
            niter=self.pca_niter,
        )

    def length_window(self) -> tuple[int, int] | None:
        """(start, max) of the length scaling, or None when it is off."""
        if self.length_max is None:
            return None
        start = self.length_start
        if start is None:
            start = round(self.length_max * PAPER_LENGTH_START / PAPER_LENGTH_MAX)
        return start, self.length_max
