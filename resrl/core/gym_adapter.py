"""Plain ``gymnasium.Env`` classes in the registry: wrapped as a :class:`ChatEnv`.

An environment written without resrl — a ``gymnasium.Env`` whose ``reset`` returns chat messages and whose
``step`` takes an assistant turn (text or an assistant message) and returns chat messages — is registered like
a ``ChatEnv``: the registry wraps its class in a :class:`GymChatEnv`. Its tasks are seeds: a task is the
opening of ``reset(seed=..., options={"split": ...})``, so the trainer, the env server and task files name
its episodes like any other env's. It has no gold solution, so ``resrl envs check`` skips the gold and
perturbed checks for it.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

import gymnasium as gym

from resrl.core.env import Action, ChatEnv
from resrl.core.spaces import MessagesSpace
from resrl.core.task import Split, Task

_MESSAGES = MessagesSpace()


class GymChatEnv(ChatEnv):
    """A :class:`ChatEnv` that plays a plain ``gymnasium.Env`` (``inner_cls``) turn by turn.

    Actions reach the inner env as the policy wrote them (no tool-call parsing: the inner env reads its own
    turns). ``tool_format``, ``split`` and ``max_steps`` are the wrapper's; every other keyword argument goes
    to ``inner_cls``. ``info["tools"]`` at reset is the inner env's, if it gives one.
    """

    inner_cls: ClassVar[type[gym.Env]]

    def __init__(self, *, tool_format: str = "hermes", split: Split = "train", max_steps: int = 16, **kwargs: Any):
        super().__init__(tool_format=tool_format, split=split, max_steps=max_steps)
        self.inner = self.inner_cls(**kwargs)

    @classmethod
    def generate_tasks(cls, split: Split, n: int, seed: int) -> list[Task]:
        """``n`` openings of the inner env, seeded from ``split`` and ``seed`` (each split has its own seeds)."""
        rng = random.Random(f"{split}/{seed}")
        inner = cls.inner_cls()
        try:
            return [cls._open(inner, split, rng.randrange(2**31))[0] for _ in range(n)]
        finally:
            inner.close()

    @classmethod
    def _open(cls, inner: gym.Env, split: Split, task_seed: int) -> tuple[Task, dict[str, Any]]:
        obs, info = inner.reset(seed=task_seed, options={"split": split})
        info = dict(info) if isinstance(info, dict) else {}
        task = Task(
            id=f"{split}-{task_seed}",
            env_id=cls.env_id,
            split=split,
            messages=_messages(obs, f"{cls.inner_cls.__name__}.reset"),
            tools=list(info.get("tools") or []),
            metadata={"seed": task_seed},
        )
        return task, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        gym.Env.reset(self, seed=seed)
        options = options or {}
        given = options.get("task")
        if given is None:
            split = options.get("split", self.split)
            task_seed = seed if seed is not None else int(self.np_random.integers(2**31))
            self.task, inner_info = self._open(self.inner, split, task_seed)
        else:
            task = given if isinstance(given, Task) else Task.model_validate(given)
            if not isinstance(task.metadata.get("seed"), int):
                raise ValueError(f"task {task.id!r} has no integer metadata['seed'] to reset {self.env_id!r} with")
            opened, inner_info = self._open(self.inner, task.split, task.metadata["seed"])
            # the opening is the env's own; the id is the caller's (a task file's)
            self.task = opened.model_copy(update={"id": task.id, "env_id": task.env_id or opened.env_id})
        self.steps = 0
        self.done = False
        info = {**inner_info, "tools": self.tools_schema(), "task_id": self.task.id, "env_id": self.env_id}
        return list(self.task.messages), info

    def step(self, action: Action):
        if self.task is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self.done:
            raise gym.error.ResetNeeded("the episode has ended; call reset() to start another")
        obs, reward, terminated, truncated, info = self.inner.step(action)
        self.steps += 1
        terminated = bool(terminated)
        truncated = bool(truncated) or (not terminated and self.steps >= self.max_steps)
        self.done = terminated or truncated
        info = dict(info) if isinstance(info, dict) else {}
        return _messages(obs, f"{self.inner_cls.__name__}.step"), float(reward), terminated, truncated, info

    def close(self) -> None:
        self.inner.close()
        super().close()


def _messages(obs: Any, where: str) -> list[dict[str, Any]]:
    if not _MESSAGES.contains(obs):
        raise TypeError(f"{where} returned {obs!r:.120}, not a list of chat messages ({{'role', 'content'}} dicts)")
    return list(obs)


def wrap_gym_class(env_id: str, inner: type[gym.Env]) -> type[GymChatEnv]:
    """A :class:`GymChatEnv` subclass playing ``inner`` under ``env_id``, with its description and flags."""
    doc = (inner.__doc__ or "").strip().splitlines()
    return type(
        f"GymChatEnv[{inner.__name__}]",
        (GymChatEnv,),
        {
            "inner_cls": inner,
            "env_id": env_id,
            "description": getattr(inner, "description", None) or (doc[0] if doc else ""),
            "multi_turn": bool(getattr(inner, "multi_turn", False)),
            "tags": tuple(getattr(inner, "tags", ())),
            "__module__": inner.__module__,
        },
    )


def has_gold_solution(env_cls: type[ChatEnv]) -> bool:
    """Whether ``env_cls`` has gold turns to play (a wrapped plain gymnasium env has none)."""
    return not issubclass(env_cls, GymChatEnv)
