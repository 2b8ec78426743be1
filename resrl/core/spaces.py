"""Gymnasium spaces for chat: observations are lists of messages, actions are assistant turns."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.spaces import Space

_ROLES = {"system", "user", "assistant", "tool"}


class MessagesSpace(Space[list[dict[str, Any]]]):
    """Lists of chat messages (``{"role", "content", ...}``)."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(shape=None, dtype=None, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, list) and all(
            isinstance(m, dict) and m.get("role") in _ROLES and isinstance(m.get("content", ""), str) for m in x
        )

    def sample(self, mask: Any = None, probability: Any = None) -> list[dict[str, Any]]:
        return [{"role": "user", "content": _random_text(self.np_random)}]

    @property
    def is_np_flattenable(self) -> bool:
        return False


class ActionSpace(Space[Any]):
    """An assistant turn: raw text, or an assistant message (possibly with OpenAI ``tool_calls``)."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(shape=None, dtype=None, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) or (isinstance(x, dict) and x.get("role", "assistant") == "assistant")

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return _random_text(self.np_random)

    @property
    def is_np_flattenable(self) -> bool:
        return False


def _random_text(rng: np.random.Generator, max_len: int = 64) -> str:
    alphabet = list('abcdefghijklmnopqrstuvwxyz {}[]()<>":,=_/\n0123456789')
    return "".join(rng.choice(alphabet, size=int(rng.integers(0, max_len))))
