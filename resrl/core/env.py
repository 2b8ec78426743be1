"""The chat environment: a ``gymnasium.Env`` whose observations are messages and whose actions are turns.

A subclass supplies five things: a seeded task generator, ``_start`` (opening messages for a task), ``_act``
(one assistant turn, already parsed), the gold solution, and optionally a perturbed one. Parsing, turn limits,
seeding and the info contract live here, once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym

from resrl.core.formats import ToolCallFormat, ToolCallParseError, get_format, parse_action
from resrl.core.messages import Message, ParsedAction, ToolCall, assistant_message, tool_message
from resrl.core.spaces import ActionSpace, MessagesSpace
from resrl.core.task import Split, Task

Action = str | Message


@dataclass
class Transition:
    """What one assistant turn did: new messages for the model, reward, and whether the episode ended."""

    observation: list[Message] = field(default_factory=list)
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class ChatEnv(gym.Env[list[Message], Action]):
    """Base class of every resrl environment.

    ``reset(seed=..., options={"task": Task | dict})`` starts an episode on the given task, or on a task
    generated from the seed for ``split``. ``info`` at reset carries ``tools`` (OpenAI schemas), ``task_id``
    and ``env_id``; at each step it carries ``parse_error`` when the turn could not be read, and
    ``infra_error`` when the fault was ours, not the model's.
    """

    description: ClassVar[str] = ""
    multi_turn: ClassVar[bool] = False
    tags: ClassVar[tuple[str, ...]] = ()
    max_reward: ClassVar[float] = 1.0
    # True promises steps of pure computation (well under a millisecond): the env server may then run them on
    # its event loop instead of a worker thread. It checks the promise and falls back to threads if broken.
    fast_step: ClassVar[bool] = False
    env_id: str = ""

    def __init__(self, *, tool_format: str = "hermes", split: Split = "train", max_steps: int = 16) -> None:
        self.observation_space = MessagesSpace()
        self.action_space = ActionSpace()
        self.format: ToolCallFormat = get_format(tool_format)
        self.split = split
        self.max_steps = max_steps
        self.task: Task | None = None
        self.steps = 0
        self.done = False

    # -- what a subclass provides -------------------------------------------------------------------------
    @classmethod
    def generate_tasks(cls, split: Split, n: int, seed: int) -> list[Task]:
        """``n`` tasks of ``split``, the same for the same seed; train and test never share a prompt."""
        raise NotImplementedError

    def _start(self, task: Task) -> list[Message]:
        """Set up episode state for ``task``; return the opening messages."""
        return list(task.messages)

    def _act(self, action: ParsedAction | ToolCallParseError) -> Transition:
        """Apply one assistant turn (or the error that parsing it raised)."""
        raise NotImplementedError

    @classmethod
    def gold_actions(cls, task: Task) -> list[ParsedAction]:
        """The assistant turns of a correct episode, in order."""
        raise NotImplementedError

    @classmethod
    def perturbed_actions(cls, task: Task, rng: random.Random) -> list[ParsedAction]:
        """A plausible but wrong episode: the gold one with its last turn changed.

        The last turn's first argument is perturbed; a last turn of plain text is replaced by a refusal; a gold
        episode without arguments gets a call to a tool that does not exist. Override where that is not wrong.
        """
        turns = [a.model_copy(deep=True) for a in cls.gold_actions(task)]
        last = turns[-1]
        for call in last.tool_calls:
            for key, value in call.arguments.items():
                call.arguments[key] = _perturb_value(value, rng)
                return turns
        if last.content and not last.tool_calls:
            last.content = "Sorry, I cannot help with that."
        else:
            last.tool_calls.append(ToolCall(name="no_such_tool", arguments={}))
        return turns

    # -- the gymnasium API ----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        task = options.get("task")
        if task is None:
            split = options.get("split", self.split)
            task_seed = seed if seed is not None else int(self.np_random.integers(2**31))
            task = self.generate_tasks(split, 1, task_seed)[0]
        self.task = task if isinstance(task, Task) else Task.model_validate(task)
        self.steps = 0
        self.done = False
        observation = self._start(self.task)
        info = {"tools": self.tools_schema(), "task_id": self.task.id, "env_id": self.env_id or self.task.env_id}
        return observation, info

    def step(self, action: Action):
        if self.task is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self.done:
            raise gym.error.ResetNeeded("the episode has ended; call reset() to start another")
        try:
            parsed: ParsedAction | ToolCallParseError = parse_action(action, self.format)
        except ToolCallParseError as exc:
            parsed = exc
        result = self._act(parsed)
        self.steps += 1
        info = dict(result.info)
        if isinstance(parsed, ToolCallParseError):
            info["parse_error"] = {"kind": parsed.kind, "message": parsed.message}
        truncated = result.truncated or (not result.terminated and self.steps >= self.max_steps)
        self.done = result.terminated or truncated
        return result.observation, float(result.reward), bool(result.terminated), bool(truncated), info

    # -- helpers for subclasses -----------------------------------------------------------------------------
    def tools_schema(self) -> list[dict[str, Any]]:
        """The tools offered now (the task's, unless the env changes them mid-episode)."""
        return list(self.task.tools) if self.task else []

    def render_action(self, action: ParsedAction) -> Action:
        """A parsed turn written in this env's tool-call format (what a model using it would emit)."""
        rendered = self.format.render(action.content, action.tool_calls)
        return rendered if isinstance(rendered, dict) else assistant_message(rendered)

    @staticmethod
    def error_message(text: str) -> Message:
        """An observation telling the model its turn could not be used; the episode goes on."""
        return tool_message(text, name="error")


def _perturb_value(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + rng.choice([1, 2, 7]) if value != 0 else 13
    if isinstance(value, str):
        return value + "_x" if value else "x"
    if isinstance(value, list):
        return [*value, "extra"] if value else ["extra"]
    return "perturbed"
