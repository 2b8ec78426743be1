"""Seeded task generators for the five single-turn categories.

A task is one user request (one or several clauses drawn by recipes) plus the offered tools; its ``answer`` is
the BFCL possible answer. Train and test differ in entity pools, clause phrasings and the sentence frames
that wrap the clauses, so no test prompt can appear in train. The same (category, split, n, seed) always
gives the same tasks: every random choice comes from one ``random.Random`` seeded with a string.
"""

from __future__ import annotations

import copy
import functools
import json
import random
from collections.abc import Callable
from typing import Any

from resrl import Task
from resrl.core.task import Split
from resrl_envs.fc.single.checker import OMIT
from resrl_envs.fc.single.drawing import Draw, Side, listing
from resrl_envs.fc.single.pools import pool
from resrl_envs.fc.single.recipes import RECIPES, Recipe

CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple", "irrelevance")

SYSTEM_PROMPT = (
    "You are a helpful assistant with access to tools. When the user's request can be served by the tools, "
    "call them with exactly the arguments the request gives; make one call per requested item. When no tool "
    "fits, do not call any tool: answer in plain text."
)


def _frames(split: str) -> tuple[list[str], list[Callable[[list[str]], str]]]:
    """Sentence frames of a split: for one clause, and for several."""
    if split == "train":
        return ["{0}.", "Could you {0}?", "Please {0}."], [
            lambda parts: f"Could you {listing(parts)}?",
            lambda parts: "Please do the following: " + "; ".join(parts) + ".",
        ]
    return ["I'd like you to {0}.", "Can you {0} for me?", "Quick request: {0}."], [
        lambda parts: "I have a few requests:\n" + "\n".join(f"- {p}" for p in parts),
        lambda parts: " ".join(
            f"{'First' if i == 0 else 'Finally' if i == len(parts) - 1 and i > 1 else 'Then'}, {p}."
            for i, p in enumerate(parts)
        ),
    ]


@functools.cache
def _schema(name: str) -> dict[str, Any]:
    # Building a schema through pydantic costs ~1 ms; tasks reuse a few dozen, so build each once.
    return RECIPES[name].tool.schema()


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def possible_answer(recipe: Recipe, draw: Draw) -> dict[str, dict[str, list[Any]]]:
    """The BFCL possible answer of one drawn call: acceptable values for every parameter of the tool."""
    arguments: dict[str, list[Any]] = {}
    for name, info in recipe.tool.model.model_fields.items():
        alternatives = draw.alternatives.get(name, [])
        if name in draw.args:
            values = [draw.args[name], *alternatives]
        elif info.is_required():
            raise ValueError(f"recipe for {recipe.tool.name} left out required argument {name!r}")
        else:
            values = [info.default, *alternatives, OMIT]
        unique = {_key(v): v for v in values}
        arguments[name] = list(unique.values())
    return {recipe.tool.name: arguments}


class _Builder:
    """Draws one task of a category; a draw it cannot complete returns None and is retried."""

    def __init__(self, category: str, split: str, rng: random.Random) -> None:
        self.category, self.split, self.rng = category, split, rng
        self.side = Side(split, rng)
        self.recipes = [RECIPES[name] for name in sorted(RECIPES)]

    def _distinct_draws(self, recipe: Recipe, k: int) -> list[Draw] | None:
        # Distinct in the first argument (the city, the amount, the symbol…), so that two requests of one
        # turn never differ only in an optional detail.
        draws: dict[str, Draw] = {}
        for _ in range(k * 8):
            draw = recipe.draw(self.side)
            draws.setdefault(_key(next(iter(draw.args.values()))), draw)
            if len(draws) == k:
                return list(draws.values())
        return None

    def _others(self, exclude: set[str], k: int, *, domain_free: str | None = None) -> list[Recipe]:
        pool_ = [r for r in self.recipes if r.tool.name not in exclude and r.domain != domain_free]
        return self.rng.sample(pool_, min(k, len(pool_)))

    def build(self) -> tuple[str, list[Recipe], list[tuple[Recipe, Draw]], list[Recipe]] | None:
        """(user prompt, offered tools, expected calls, requested recipes), or None to retry this draw; an
        irrelevance request asks for a recipe whose tool is not offered (or for none)."""
        rng = self.rng
        calls: list[tuple[Recipe, Draw]] = []
        if self.category == "irrelevance":
            if rng.random() < 0.25:
                clause, offered = self.side.pick("no_tool_request"), self._others(set(), rng.randint(1, 3))
                return self._frame([clause]), offered, [], []
            recipe = rng.choice(self.recipes)
            clause = recipe.draw(self.side).text
            offered = self._others({recipe.tool.name}, rng.randint(1, 3), domain_free=recipe.domain)
            return self._frame([clause]), offered, [], [recipe]
        if self.category in ("simple", "multiple"):
            recipe = rng.choice(self.recipes)
            calls = [(recipe, recipe.draw(self.side))]
            offered = [recipe]
            if self.category == "multiple":
                siblings = [r for r in self.recipes if r.family == recipe.family and r is not recipe]
                if siblings and rng.random() < 0.5:
                    offered.append(rng.choice(siblings))
                exclude = {r.tool.name for r in offered}
                offered += self._others(exclude, rng.randint(2, 4) - len(offered))
        elif self.category == "parallel":
            recipe = rng.choice(self.recipes)
            draws = self._distinct_draws(recipe, rng.randint(2, 4))
            if draws is None:
                return None
            calls, offered = [(recipe, d) for d in draws], [recipe]
        else:  # parallel_multiple: two or three tools, one to two calls each, four calls at most
            chosen = rng.sample(self.recipes, rng.randint(2, 3))
            counts = [1] * len(chosen)
            for _ in range(rng.randint(1, 4 - len(chosen))):
                counts[rng.randrange(len(chosen))] += 1
            for recipe, count in zip(chosen, counts, strict=True):
                draws = self._distinct_draws(recipe, count)
                if draws is None:
                    return None
                calls += [(recipe, d) for d in draws]
            offered = list(chosen)
            if rng.random() < 0.5:
                offered += self._others({r.tool.name for r in chosen}, 1)
            rng.shuffle(calls)
        rng.shuffle(offered)
        return self._frame([d.text for _, d in calls]), offered, calls, [r for r, _ in calls]

    def _frame(self, clauses: list[str]) -> str:
        one, many = _frames(self.split)
        if len(clauses) == 1:
            return _capital(self.rng.choice(one).format(clauses[0]))
        return _capital(self.rng.choice(many)(clauses))


def generate(category: str, env_id: str, split: Split, n: int, seed: int) -> list[Task]:
    """``n`` distinct tasks of ``category`` for ``split``; the same arguments always give the same tasks."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown single-turn category {category!r}; choose one of {CATEGORIES}")
    if split not in ("train", "test", "eval"):
        raise ValueError(f"unknown split {split!r}; use train, test or eval")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    pool("city", split)  # fail early on a split the pools do not know
    rng = random.Random(f"resrl-fc-{category}-{split}-{seed}")
    builder = _Builder(category, split, rng)
    tasks: list[Task] = []
    seen: set[str] = set()
    attempts = 0
    while len(tasks) < n:
        attempts += 1
        if attempts > 50 * n + 100:
            raise ValueError(f"could only generate {len(tasks)} distinct {category} tasks for {split}, not {n}")
        built = builder.build()
        if built is None or built[0] in seen:
            continue
        prompt, offered, calls, requested = built
        seen.add(prompt)
        tasks.append(
            Task(
                id=f"fc-{category}-{split}-{seed}-{len(tasks):05d}",
                env_id=env_id,
                split=split,
                messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
                tools=[copy.deepcopy(_schema(r.tool.name)) for r in offered],
                answer=[possible_answer(r, d) for r, d in calls],
                metadata={
                    "category": category,
                    "families": sorted({r.family for r in offered}),
                    "expected_tools": [r.tool.name for r, _ in calls],
                    "requested_domains": sorted({r.domain for r in requested}),
                    # what the request asks for, offered or not (an irrelevance task's is missing from the tools)
                    "requested_tools": list(dict.fromkeys(r.tool.name for r in requested)),
                },
            )
        )
    return tasks
