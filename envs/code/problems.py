"""Our own generated coding problems: parameterised families, each with a reference solution and tests.

Every problem takes a list of ints ``nums``; its parameters are baked into the statement. A problem belongs to
train or test by a hash of its prompt, so the splits never share a prompt whatever the seed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Family:
    """A problem template: ``params`` are drawn from ``space``; ``reference`` and ``solution`` agree."""

    name: str
    statement: Callable[[dict[str, int]], str]
    space: Callable[[random.Random], dict[str, int]]
    reference: Callable[[dict[str, int], list[int]], Any]
    solution: Callable[[dict[str, int]], str]


def _windows(p: dict[str, int], nums: list[int]) -> int:
    k = p["k"]
    return max((sum(nums[i : i + k]) for i in range(len(nums) - k + 1)), default=0)


FAMILIES = [
    Family(
        "sum_divisible",
        lambda p: f"return the sum of the elements of nums that are divisible by {p['d']}",
        lambda r: {"d": r.randint(2, 13)},
        lambda p, nums: sum(x for x in nums if x % p["d"] == 0),
        lambda p: f"def solve(nums):\n    return sum(x for x in nums if x % {p['d']} == 0)\n",
    ),
    Family(
        "count_greater",
        lambda p: f"return how many elements of nums are strictly greater than {p['t']}",
        lambda r: {"t": r.randint(-30, 30)},
        lambda p, nums: sum(x > p["t"] for x in nums),
        lambda p: f"def solve(nums):\n    return sum(1 for x in nums if x > {p['t']})\n",
    ),
    Family(
        "max_window",
        lambda p: f"return the largest sum of {p['k']} consecutive elements of nums (0 if nums is shorter)",
        lambda r: {"k": r.randint(1, 6)},
        _windows,
        lambda p: (
            f"def solve(nums):\n    k = {p['k']}\n    if len(nums) < k:\n        return 0\n"
            "    return max(sum(nums[i:i + k]) for i in range(len(nums) - k + 1))\n"
        ),
    ),
    Family(
        "rotate_left",
        lambda p: f"return nums rotated left by {p['k']} positions (a list; an empty list stays empty)",
        lambda r: {"k": r.randint(1, 9)},
        lambda p, nums: nums[p["k"] % len(nums) :] + nums[: p["k"] % len(nums)] if nums else [],
        lambda p: (
            f"def solve(nums):\n    if not nums:\n        return []\n    k = {p['k']} % len(nums)\n"
            "    return nums[k:] + nums[:k]\n"
        ),
    ),
    Family(
        "pairs_with_sum",
        lambda p: f"return the number of index pairs i < j with nums[i] + nums[j] == {p['s']}",
        lambda r: {"s": r.randint(-10, 20)},
        lambda p, nums: sum(nums[i] + nums[j] == p["s"] for i in range(len(nums)) for j in range(i + 1, len(nums))),
        lambda p: (
            "def solve(nums):\n    count = 0\n    for i in range(len(nums)):\n"
            "        for j in range(i + 1, len(nums)):\n"
            f"            if nums[i] + nums[j] == {p['s']}:\n                count += 1\n    return count\n"
        ),
    ),
    Family(
        "product_mod",
        lambda p: (
            f"return the product of all elements of nums modulo {p['m']} (1 for an empty list, as a "
            "non-negative number)"
        ),
        lambda r: {"m": r.choice([7, 11, 13, 17, 19, 23, 29, 31, 97, 101, 1009])},
        lambda p, nums: _product_mod(nums, p["m"]),
        lambda p: (
            f"def solve(nums):\n    result = 1 % {p['m']}\n    for x in nums:\n"
            f"        result = result * x % {p['m']}\n    return result\n"
        ),
    ),
    Family(
        "prefix_sums_mod",
        lambda p: f"return the list of running (prefix) sums of nums, each taken modulo {p['m']}",
        lambda r: {"m": r.randint(5, 60)},
        lambda p, nums: [sum(nums[: i + 1]) % p["m"] for i in range(len(nums))],
        lambda p: (
            "def solve(nums):\n    out, total = [], 0\n    for x in nums:\n        total += x\n"
            f"        out.append(total % {p['m']})\n    return out\n"
        ),
    ),
    Family(
        "kth_largest_distinct",
        lambda p: (
            f"return the {p['k']}-th largest distinct value of nums, or -1 if there are fewer than "
            f"{p['k']} distinct values"
        ),
        lambda r: {"k": r.randint(1, 5)},
        lambda p, nums: sorted(set(nums), reverse=True)[p["k"] - 1] if len(set(nums)) >= p["k"] else -1,
        lambda p: (
            f"def solve(nums):\n    values = sorted(set(nums), reverse=True)\n"
            f"    return values[{p['k']} - 1] if len(values) >= {p['k']} else -1\n"
        ),
    ),
]


def _product_mod(nums: list[int], m: int) -> int:
    result = 1 % m
    for x in nums:
        result = result * x % m
    return result


def split_of(family: str, params: dict[str, int]) -> str:
    """``test`` for one problem in five (by a hash of the prompt), ``train`` otherwise."""
    key = family + repr(sorted(params.items()))
    return "test" if int(hashlib.sha256(key.encode()).hexdigest(), 16) % 5 == 0 else "train"


@dataclass
class Problem:
    """One drawn problem: its statement, gold solution and test inputs with expected outputs."""

    family: str
    params: dict[str, int]
    statement: str
    solution: str
    cases: list[tuple[list[int], Any]]

    @property
    def key(self) -> str:
        """Identifies the prompt (family + parameters)."""
        return f"{self.family}-" + "-".join(f"{k}{v}" for k, v in sorted(self.params.items()))


def draw_problems(split: str, n: int, seed: int, n_cases: int = 6) -> list[Problem]:
    """``n`` problems of ``split``; the same seed gives the same problems."""
    if split not in ("train", "test"):
        raise ValueError(f"generated code problems come in train and test splits, not {split!r}")
    rng = random.Random(f"code-{split}-{seed}")
    out: list[Problem] = []
    for _ in range(n * 200):
        if len(out) == n:
            break
        fam = rng.choice(FAMILIES)
        params = fam.space(rng)
        if split_of(fam.name, params) != split:
            continue
        cases = []
        for c in range(n_cases):
            length = 0 if c == 0 else rng.randint(1, 12)
            nums = [rng.randint(-20, 40) for _ in range(length)]
            cases.append((nums, fam.reference(params, nums)))
        out.append(Problem(fam.name, params, fam.statement(params), fam.solution(params), cases))
    if len(out) < n:
        raise ValueError(f"could not draw {n} {split} problems")
    return out
