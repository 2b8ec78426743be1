"""The five single-turn function-calling envs: one assistant turn, scored against a BFCL possible answer."""

from __future__ import annotations

import logging
import random
from typing import Any, ClassVar

from resrl import ChatEnv, Message, ParsedAction, Task, ToolCall, ToolCallParseError, Transition
from resrl.core.task import Split
from resrl_envs.fc.single.checker import parse_answer, score_turn
from resrl_envs.fc.single.generator import generate

log = logging.getLogger("resrl.envs.fc.single")
REWARD_MODES = ("binary", "shaped")
_NO_CALL_REPLY = "None of the available tools can do that, so I will answer without calling one."


class SingleTurnFCEnv(ChatEnv):
    """One request, one turn: the turn's tool calls are parsed, checked, and the episode ends.

    ``reward_mode="binary"`` (default) gives 1 for a fully correct turn and 0 otherwise;
    ``reward_mode="shaped"`` gives ToolRL-like partial credit in [0, 1] from name, argument-key and
    argument-value matches, divided by the larger of the expected and the made call counts. Both modes put
    ``reward_components`` and the readable ``errors`` in the step info; a turn that is not fully right also
    gets the errors back as an observation.
    """

    multi_turn = False
    fast_step = True  # parsing and checking calls over in-memory state
    category: ClassVar[str] = ""

    def __init__(
        self,
        *,
        tool_format: str = "hermes",
        split: Split = "train",
        reward_mode: str = "binary",
        max_steps: int = 1,
    ) -> None:
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"unknown reward_mode {reward_mode!r}; choose one of {REWARD_MODES}")
        super().__init__(tool_format=tool_format, split=split, max_steps=max_steps)
        self.reward_mode = reward_mode

    @classmethod
    def generate_tasks(cls, split: Split, n: int, seed: int) -> list[Task]:
        return generate(cls.category, cls.env_id, split, n, seed)

    def _start(self, task: Task) -> list[Message]:
        # A malformed ground truth is the task file's fault: say so now, not as a score of 0 later.
        try:
            parse_answer(task.answer)
        except ValueError as exc:  # pydantic's ValidationError is one too
            raise ValueError(f"task {task.id!r} has a malformed answer: {exc}") from exc
        return list(task.messages)

    def _act(self, action: ParsedAction | ToolCallParseError) -> Transition:
        assert self.task is not None  # the base class only calls _act after reset
        if isinstance(action, ToolCallParseError):
            error = f"could not read the tool calls ({action.kind}): {action.message}"
            failed = {
                "correct": False,
                "errors": [error],
                "reward_components": dict.fromkeys(("name", "keys", "values", "count"), 0.0),
            }
            return Transition([self.error_message(f"Error: {error}")], 0.0, True, info=failed)
        verdict = score_turn(action.tool_calls, self.task.answer, self.task.tools)
        info: dict[str, Any] = {
            "correct": verdict.correct,
            "errors": verdict.errors,
            "reward_components": verdict.components,
        }
        log.debug(
            "%s %s: correct=%s components=%s errors=%s",
            self.env_id,
            self.task.id,
            verdict.correct,
            verdict.components,
            verdict.errors,
        )
        observation = [] if verdict.correct else [self.error_message("Error: " + "; ".join(verdict.errors))]
        return Transition(observation, verdict.reward(self.reward_mode), True, info=info)

    @classmethod
    def gold_actions(cls, task: Task) -> list[ParsedAction]:
        calls = []
        for expected in parse_answer(task.answer):
            # The first acceptable value of each argument, leaving out the ones that may be omitted.
            required = set(expected.required())
            args = {k: v[0] for k, v in expected.arguments.items() if k in required}
            calls.append(ToolCall(name=expected.name, arguments=args))
        if not calls:
            return [ParsedAction(content=_NO_CALL_REPLY)]
        return [ParsedAction(tool_calls=calls)]


class SimpleEnv(SingleTurnFCEnv):
    """One tool offered, one call expected."""

    env_id = "fc/simple"
    category = "simple"
    description = "Single-turn function calling: one tool offered, one call with the right arguments."
    tags = ("function-calling", "single-turn", "bfcl-like", "simple")


class MultipleEnv(SingleTurnFCEnv):
    """Two to four tools offered; the request needs exactly one of them."""

    env_id = "fc/multiple"
    category = "multiple"
    description = "Single-turn function calling: 2-4 tools offered, pick the right one and call it once."
    tags = ("function-calling", "single-turn", "bfcl-like", "multiple")


class ParallelEnv(SingleTurnFCEnv):
    """One tool, several calls in one turn."""

    env_id = "fc/parallel"
    category = "parallel"
    description = "Single-turn function calling: one tool, several calls in one turn (any order)."
    tags = ("function-calling", "single-turn", "bfcl-like", "parallel")


class ParallelMultipleEnv(SingleTurnFCEnv):
    """Several tools, several calls in one turn."""

    env_id = "fc/parallel_multiple"
    category = "parallel_multiple"
    description = "Single-turn function calling: several tools, several calls in one turn (any order)."
    tags = ("function-calling", "single-turn", "bfcl-like", "parallel-multiple")


class IrrelevanceEnv(SingleTurnFCEnv):
    """No offered tool fits the request; the right turn calls nothing and answers in text."""

    env_id = "fc/irrelevance"
    category = "irrelevance"
    description = "Single-turn function calling: no offered tool fits, the right answer is no call at all."
    tags = ("function-calling", "single-turn", "bfcl-like", "irrelevance")

    @classmethod
    def perturbed_actions(cls, task: Task, rng: random.Random) -> list[ParsedAction]:
        """Calling an offered tool anyway (with its first parameter filled) is the plausible mistake."""
        fn = rng.choice(task.tools)["function"]
        params = fn["parameters"].get("properties", {})
        args = {name: "value" for name in list(params)[:1]}
        return [ParsedAction(tool_calls=[ToolCall(name=fn["name"], arguments=args)])]


SINGLE_TURN_ENVS: tuple[type[SingleTurnFCEnv], ...] = (
    SimpleEnv,
    MultipleEnv,
    ParallelEnv,
    ParallelMultipleEnv,
    IrrelevanceEnv,
)
