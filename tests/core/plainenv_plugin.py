"""A third-party package's environments, installed into a temporary folder by tests/core/test_plugins.py.

``EchoWordEnv`` is a plain ``gymnasium.Env`` (no resrl base class): chat messages out, an assistant turn in.
``make_shout`` is a factory function. The rest are what the registry must refuse with a warning.
"""

from __future__ import annotations

import threading
import time

import gymnasium as gym

import resrl
from resrl import ChatEnv, ParsedAction, Task, Transition

WORDS = ("otter", "lynx", "heron", "walrus", "ibis", "marten")


class EchoWordEnv(gym.Env):
    """Repeat the word the user says, once per round."""

    multi_turn = True

    def __init__(self, rounds: int = 1) -> None:
        self.rounds = rounds

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.left = self.rounds
        return self._ask(), {"tools": []}

    def _ask(self) -> list[dict]:
        self.word = WORDS[int(self.np_random.integers(len(WORDS)))]
        return [{"role": "user", "content": f"Repeat after me: {self.word}"}]

    def step(self, action):
        text = action if isinstance(action, str) else action.get("content") or ""
        self.left -= 1
        if text.strip() != self.word:
            return [{"role": "user", "content": "wrong"}], 0.0, True, False, {"word": self.word}
        done = self.left <= 0
        return ([] if done else self._ask()), 1.0 / self.rounds, done, False, {}


class Shout(ChatEnv):
    description = "Say hi in capitals."

    @classmethod
    def generate_tasks(cls, split, n, seed):
        ask = [{"role": "user", "content": "say hi loudly"}]
        return [Task(id=f"{split}-{seed}-{i}", env_id="", split=split, answer="HI", messages=ask) for i in range(n)]

    def _act(self, action):
        ok = isinstance(action, ParsedAction) and action.content == self.task.answer
        return Transition(reward=float(ok), terminated=True)

    @classmethod
    def gold_actions(cls, task):
        return [ParsedAction(content="HI")]


def make_shout(**kwargs) -> Shout:
    """A factory function: what it builds is a ``ChatEnv``, but it is not a class."""
    return Shout(**kwargs)


def register_factory() -> None:
    resrl.register("plain/shout-factory", make_shout, description="Shout, built by a registered factory.")


def register_slowly() -> None:
    """A plugin that takes a while to register: threads asking meanwhile must wait for it."""
    time.sleep(0.5)
    resrl.register("plain/slow", Shout, description=f"registered by {threading.current_thread().name}")


class NotAnEnv:
    """A class, but not a gymnasium.Env."""


NOT_AN_ENV = 42

ENTRY_POINTS = {
    "plain/echo": "plainenv_plugin:EchoWordEnv",
    "plain/shout-ep": "plainenv_plugin:make_shout",
    "factory": "plainenv_plugin:register_factory",
    "slow": "plainenv_plugin:register_slowly",
    "plain/not-an-env": "plainenv_plugin:NOT_AN_ENV",
    "plain/bad-class": "plainenv_plugin:NotAnEnv",
}
"""What the test package declares in its ``resrl.envs`` entry-point group."""
