"""Test environments for the evaluation tests.

``test/coin``: one turn, rewarded when the answer has an even number of characters — a coin flip for a tiny
model that has learned to end its turn, so groups hold both outcomes. ``test/coin-flaky``: the same, but its
env crashes (an infrastructure fault, not the model's) on every sample of its task 0 and on sample 0 of its task 1.
"""

from __future__ import annotations

import resrl
from resrl import ChatEnv, ParsedAction, Task, Transition

WORDS = ["ok", "yes", "sure", "fine", "maybe", "no", "right", "done"]


class CoinEnv(ChatEnv):
    description = "One turn, rewarded when the answer's length in characters is even."
    tags = ("test",)
    env_name = "test/coin"

    @classmethod
    def generate_tasks(cls, split, n, seed):
        return [
            Task(
                id=f"{cls.env_name}-{split}-{seed}-{i}",  # distinct across the two envs: one group per task
                env_id=cls.env_name,
                split=split,
                messages=[{"role": "user", "content": f"Answer in a word ({split} {seed} {i})."}],
            )
            for i in range(n)
        ]

    def _act(self, action):
        text = action.content if isinstance(action, ParsedAction) else str(action)
        return Transition(reward=float(len(text.strip()) % 2 == 0), terminated=True)

    @classmethod
    def gold_actions(cls, task):
        return [ParsedAction(content=WORDS[int(task.id.rsplit("-", 1)[1]) % len(WORDS)])]


class FlakyCoinEnv(CoinEnv):
    env_name = "test/coin-flaky"

    def reset(self, *, seed=None, options=None):
        task_id = (options or {})["task"].id
        index = int(task_id.rsplit("-", 1)[1])
        if index == 0 or (index == 1 and seed == 0):
            raise RuntimeError("simulated env crash")
        return super().reset(seed=seed, options=options)


def register() -> None:
    """Register both environments (idempotent)."""
    if not resrl.list_envs("test/coin"):
        resrl.register("test/coin", CoinEnv)
        resrl.register("test/coin-flaky", FlakyCoinEnv)
