"""One episode's state while the collector runs it, and the trajectory it becomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from resrl.core.messages import Message
from resrl.core.task import Task
from resrl.rollout.trajectory import Trajectory


@dataclass
class Episode:
    """Mutable state of one episode: its env, the tokens so far (policy tokens with mask 1 and their
    log-probs, template and observation tokens with mask 0), the conversation and how it ended."""

    task: Task
    sample: int
    deadline: float
    group: int = 0  # earlier groups of the same task in this collection (a task listed twice gets fresh samples)
    env: Any = None
    tools: list[dict] = field(default_factory=list)
    prompt_ids: list[int] = field(default_factory=list)
    response_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    reward: float = 0.0
    components: dict[str, float] = field(default_factory=dict)
    turns: int = 0
    finish_reason: str | None = None
    infra_error: str | None = None
    env_id: str = ""

    def finish(self, reason: str, infra_error: str | None = None) -> None:
        """DONE: ``reason`` is the trajectory's ``finish_reason``; ``infra_error`` marks a fault that is ours."""
        self.finish_reason = reason
        self.infra_error = infra_error

    def extend(self, ids: list[int], *, policy_logprobs: list[float] | None = None) -> None:
        """Append tokens: the policy's (with their log-probs, trained on) or, without log-probs, masked ones."""
        self.response_ids += ids
        if policy_logprobs is None:
            self.loss_mask += [0] * len(ids)
            self.logprobs += [0.0] * len(ids)
        else:
            self.loss_mask += [1] * len(ids)
            self.logprobs += policy_logprobs

    def record(self, temperature: float, tool_format: str) -> Trajectory:
        """The finished episode as a trajectory (an episode that never finished counts as an ``error``)."""
        return Trajectory(
            prompt_ids=self.prompt_ids,
            response_ids=self.response_ids,
            loss_mask=self.loss_mask,
            logprobs=self.logprobs,
            reward=self.reward,
            reward_components=self.components,
            turns=self.turns,
            finish_reason=self.finish_reason or "error",
            infra_error=self.infra_error,
            group_id=self.task.id,
            env_id=self.env_id,
            task_id=self.task.id,
            messages=[{k: v for k, v in m.items() if k != "raw_text"} for m in self.messages],
            metadata={"sample": self.sample, "temperature": temperature, "tool_format": tool_format},
        )


def answer_ids(assistant: Message, observation: list[Message]) -> None:
    """Give the turn's calls the ids the env answered them with (in order), where the model wrote none."""
    calls = assistant.get("tool_calls") or []
    answers = [m.get("tool_call_id") for m in observation if m.get("role") == "tool"]
    for i, (call, answer) in enumerate(zip(calls, answers, strict=False)):
        if answer and call.get("id") == f"call_{i}":
            call["id"] = answer
