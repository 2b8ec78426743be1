"""A small multi-turn tool env for the rollout tests: look a key up with a tool, then answer its value."""

from __future__ import annotations

import random

import resrl
from resrl import ChatEnv, ParsedAction, Task, ToolCall, ToolCallParseError, ToolSet, Transition, tool
from resrl.core.messages import tool_message

ENV_ID = "test/lookup"
_TABLE = {"apple": 17, "river": 342, "cloud": 9, "stone": 1280, "maple": 55, "otter": 7}


@tool
def lookup(key: str) -> int:
    """The value stored under a key.

    Args:
        key: the key to look up.
    """
    if key not in _TABLE:
        raise resrl.ToolError(f"no key {key!r}")
    return _TABLE[key]


class LookupEnv(ChatEnv):
    """Call ``lookup`` then state the number; reward 1 for the right number."""

    description = "Look a key up with a tool, then answer its value."
    multi_turn = True
    tools = ToolSet([lookup])

    @classmethod
    def generate_tasks(cls, split, n, seed):
        rng = random.Random(seed)
        keys = sorted(_TABLE)
        return [
            Task(
                id=f"{split}-{seed}-{i}",
                env_id=ENV_ID,
                split=split,
                answer=_TABLE[k],
                metadata={"key": k},
                messages=[{"role": "user", "content": f"What value is stored under '{k}'? Use the tool."}],
                tools=cls.tools.schemas(),
            )
            for i, k in enumerate(rng.choice(keys) for _ in range(n))
        ]

    def _act(self, action):
        if isinstance(action, ToolCallParseError):
            return Transition([self.error_message(f"Error: {action}")])
        if action.tool_calls:
            results = [self.tools.call(c) for c in action.tool_calls]
            return Transition([tool_message(r.content, name=r.name, tool_call_id=r.call_id) for r in results])
        correct = action.content.strip() == str(self.task.answer)
        return Transition(reward=float(correct), terminated=True, info={"reward_components": {"correct": correct}})

    @classmethod
    def gold_actions(cls, task):
        call = ToolCall(name="lookup", arguments={"key": task.metadata["key"]})
        return [ParsedAction(tool_calls=[call]), ParsedAction(content=str(task.answer))]


def register() -> None:
    """Register the env (idempotent in effect: re-registering replaces it)."""
    resrl.register(ENV_ID, LookupEnv)
