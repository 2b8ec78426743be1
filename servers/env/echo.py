"""``debug/echo``: a trivial env for load tests and smoke checks (``resrl serve env --import resrl_servers.env.echo``).

Each turn's text comes back as a user message. Saying ``done`` ends the episode with reward 1; the gold
episode says ``hello`` then ``done``.
"""

from __future__ import annotations

import resrl
from resrl.core.env import ChatEnv, Transition
from resrl.core.formats import ToolCallParseError
from resrl.core.messages import ParsedAction, user_message
from resrl.core.task import Split, Task

ECHO_ID = "debug/echo"


class EchoEnv(ChatEnv):
    """Echoes each turn back; ``done`` ends the episode with reward 1."""

    description = "Echoes each assistant turn back; 'done' ends the episode with reward 1 (load tests)."
    multi_turn = True
    tags = ("debug",)
    fast_step = True  # microseconds of string work: runs inline on the server's event loop

    @classmethod
    def generate_tasks(cls, split: Split, n: int, seed: int) -> list[Task]:
        return [
            Task(
                id=f"echo-{split}-{seed}-{i}",
                env_id=ECHO_ID,
                split=split,
                messages=[user_message(f"Repeat after me ({split} {seed}.{i}), then say done.")],
                answer="done",
            )
            for i in range(n)
        ]

    def _act(self, action: ParsedAction | ToolCallParseError) -> Transition:
        if isinstance(action, ToolCallParseError):
            return Transition([self.error_message(f"Error: {action.message}")])
        if action.content == self.task.answer:
            return Transition(reward=1.0, terminated=True)
        return Transition([user_message(action.content)])

    @classmethod
    def gold_actions(cls, task: Task) -> list[ParsedAction]:
        return [ParsedAction(content="hello"), ParsedAction(content=str(task.answer))]


resrl.register(ECHO_ID, EchoEnv)
