"""``test/parity`` and its variants, in a module of their own so env servers can host them too
(``resrl serve env --import tests.trainer.parity_env``)."""

from __future__ import annotations

import time

import resrl
from resrl import ChatEnv, ParsedAction, Task, Transition
from resrl.core.messages import tool_message


class ParityEnv(ChatEnv):
    description = "Two turns; the second is rewarded when its length in characters is even."
    multi_turn = True
    tags = ("test",)

    @classmethod
    def generate_tasks(cls, split, n, seed):
        return [
            Task(
                id=f"parity-{split}-{seed}-{i}",
                env_id="test/parity",
                split=split,
                messages=[{"role": "user", "content": f"Say something ({split} {i})."}],
            )
            for i in range(n)
        ]

    def _act(self, action):
        if self.steps == 0:
            return Transition([tool_message("noted; now answer", name="note")])
        text = action.content if isinstance(action, ParsedAction) else str(action)
        return Transition(reward=float(len(text) % 2 == 0), terminated=True)

    @classmethod
    def gold_actions(cls, task):
        return [ParsedAction(content="hello"), ParsedAction(content="ok")]


class FlakyParityEnv(ParityEnv):
    """``test/parity`` whose env crashes (an infrastructure fault) in every episode reset with seed 0."""

    def reset(self, *, seed=None, options=None):
        if seed == 0:
            raise RuntimeError("simulated env crash")
        return super().reset(seed=seed, options=options)


resrl.register("test/parity", ParityEnv)
resrl.register("test/flaky-parity", FlakyParityEnv)


class SlowParityEnv(ParityEnv):
    """``test/parity`` whose first step takes 2 s (so an env-server replica can be killed mid-episode)."""

    def _act(self, action):
        if self.steps == 0:
            time.sleep(2.0)
        return super()._act(action)


resrl.register("test/slow-parity", SlowParityEnv)
