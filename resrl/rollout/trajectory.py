"""The trajectory record: what the collector hands the trainer (and writes as JSONL)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator


class Trajectory(BaseModel):
    """One episode, token-exact.

    ``response_ids`` are all turns after the prompt, concatenated: generated tokens exactly as sampled, and
    observation tokens as the chat template renders the new messages. ``loss_mask`` is 1 only on generated
    tokens; ``logprobs`` has the same length (0.0 where the mask is 0). ``group_id`` names the task, so the n
    samples of one task form one group.
    """

    prompt_ids: list[int]
    response_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    reward: float = 0.0
    reward_components: dict[str, float] = Field(default_factory=dict)
    turns: int = 0
    finish_reason: str = "stop"  # stop | length | max_turns | timeout | error
    infra_error: str | None = None
    group_id: str
    env_id: str
    task_id: str
    messages: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _lengths_agree(self) -> Trajectory:
        n = len(self.response_ids)
        if len(self.loss_mask) != n or len(self.logprobs) != n:
            raise ValueError(
                f"response_ids ({n}), loss_mask ({len(self.loss_mask)}) and logprobs ({len(self.logprobs)}) "
                "must have the same length"
            )
        return self

    @property
    def n_policy_tokens(self) -> int:
        """Tokens the policy generated (the trainable ones)."""
        return sum(self.loss_mask)
