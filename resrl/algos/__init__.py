"""Advantage estimators, sample weighting schemes (GRPO, PSR, NSR, W-REINFORCE, ResRL) and the policy loss."""

from resrl.algos.advantages import group_advantages, length_scaled_rewards, mixed_groups, token_advantages
from resrl.algos.capture import HiddenCapture, find_decoder_layers
from resrl.algos.config import AlgoConfig, SchemeSpec, scheme_table
from resrl.algos.loss import aggregate, policy_loss
from resrl.algos.weights import SubspaceParams, resrl_token_weights, resrl_weights_packed

__all__ = [
    "AlgoConfig",
    "HiddenCapture",
    "SchemeSpec",
    "SubspaceParams",
    "aggregate",
    "find_decoder_layers",
    "group_advantages",
    "length_scaled_rewards",
    "mixed_groups",
    "policy_loss",
    "resrl_token_weights",
    "resrl_weights_packed",
    "scheme_table",
    "token_advantages",
]
