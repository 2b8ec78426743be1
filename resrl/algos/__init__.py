"""Advantage estimators, sample weighting schemes (GRPO, PSR, NSR, W-REINFORCE, ResRL) and the policy loss."""

from resrl.algos.advantages import group_advantages, length_scaled_rewards, token_advantages
from resrl.algos.capture import HiddenCapture, find_decoder_layers
from resrl.algos.config import AlgoConfig
from resrl.algos.loss import aggregate, policy_loss
from resrl.algos.weights import resrl_token_weights, resrl_weights_packed

__all__ = [
    "AlgoConfig",
    "HiddenCapture",
    "aggregate",
    "find_decoder_layers",
    "group_advantages",
    "length_scaled_rewards",
    "policy_loss",
    "resrl_token_weights",
    "resrl_weights_packed",
    "token_advantages",
]
