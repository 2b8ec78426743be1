"""Drawing requests: a split's view of the pools and phrasings, and what one draw yields.

A :class:`Side` hands a recipe the split's entity pools, its phrasings and its random stream, so a recipe
written once produces train requests and test requests that never share an entity list or a wording.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from resrl_envs.fc.single.pools import pool

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


@dataclass
class Draw:
    """One request: the gold arguments, other acceptable values per argument, and the request in words."""

    args: dict[str, Any]
    text: str
    alternatives: dict[str, list[Any]] = field(default_factory=dict)


class Side:
    """The split-specific view a recipe draws from: its pools, its phrasings, its random stream."""

    def __init__(self, split: str, rng: random.Random) -> None:
        self.split = split
        self.rng = rng

    def pick(self, name: str) -> Any:
        """A random entry of pool ``name`` for this split."""
        return self.rng.choice(pool(name, self.split))

    def sample(self, name: str, k: int) -> list[Any]:
        """``k`` distinct entries of pool ``name``."""
        return self.rng.sample(pool(name, self.split), k)

    def say(self, train: list[str], test: list[str], **fields: Any) -> str:
        """One of this split's phrasings, filled in."""
        return self.rng.choice(train if self.split == "train" else test).format(**fields)

    def words(self, train: str, test: str) -> str:
        """The split's wording of an optional detail."""
        return train if self.split == "train" else test

    def chance(self, p: float) -> bool:
        """True with probability ``p``."""
        return self.rng.random() < p

    def date(self) -> tuple[str, str]:
        """A date as (ISO string, words in this split's style)."""
        month, day = self.rng.randint(1, 12), self.rng.randint(1, 28)
        words = f"{MONTHS[month - 1]} {day}, 2026" if self.split == "train" else f"{day} {MONTHS[month - 1]} 2026"
        return f"2026-{month:02d}-{day:02d}", words

    def clock(self) -> tuple[str, str]:
        """A time of day as (HH:MM, words in this split's style)."""
        hour, minute = self.rng.randint(7, 20), self.rng.choice([0, 15, 30, 45])
        if self.split == "train":
            return f"{hour:02d}:{minute:02d}", f"{(hour - 1) % 12 + 1}:{minute:02d} {'pm' if hour >= 12 else 'am'}"
        return f"{hour:02d}:{minute:02d}", f"{hour:02d}:{minute:02d}"


def listing(items: list[Any]) -> str:
    """``a, b and c``."""
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def orders(items: list[Any]) -> list[list[Any]]:
    """Every order of a short list, for arguments whose order the request does not fix."""
    return [list(p) for p in itertools.permutations(items)] if len(items) <= 4 else [list(items)]
