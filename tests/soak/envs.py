"""``soak/nap``: a multi-turn env whose steps take as long as the turn asks, for the replica-kill test.

``nap S`` sleeps S seconds in the server and echoes; ``done`` ends the episode with reward 1. Imported by the
test and by each server (``resrl serve env --import tests.soak.envs``).
"""

from __future__ import annotations

import time

import resrl
from resrl.core.env import ChatEnv, Transition
from resrl.core.messages import ParsedAction, user_message
from resrl.core.task import Task

NAP_ID = "soak/nap"


class NapEnv(ChatEnv):
    """``nap S`` sleeps S seconds (capped at 10) and answers ``napped S``; ``done`` ends with reward 1."""

    description = "Sleeps as long as each turn says ('nap 0.5'); 'done' ends the episode (fault tests)."
    multi_turn = True
    tags = ("test",)

    @classmethod
    def generate_tasks(cls, split, n, seed):
        return [
            Task(id=f"nap-{split}-{seed}-{i}", env_id=NAP_ID, split=split, messages=[user_message(f"Nap {i}.")])
            for i in range(n)
        ]

    def _act(self, action):
        text = action.content.strip() if isinstance(action, ParsedAction) else ""
        if text == "done":
            return Transition(reward=1.0, terminated=True)
        seconds = min(float(text.removeprefix("nap ")), 10.0) if text.startswith("nap ") else 0.0
        time.sleep(seconds)
        return Transition([user_message(f"napped {seconds}")])


resrl.register(NAP_ID, NapEnv)
