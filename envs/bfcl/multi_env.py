"""``bfcl/multi_turn_*``: BFCL v4's multi-turn categories, played against BFCL's own domain classes.

An episode is one BFCL entry: a sequence of user turns over one set of domain instances
(:class:`~resrl_envs.bfcl.domains.DomainSet`). In a turn the model may call functions for up to
:data:`MAX_STEPS_PER_TURN` steps, each call's result coming back as a tool message; a message without calls
(or one that cannot be read, as BFCL's decoding skips those) ends the turn and the next user turn follows.
``miss_func`` entries hold some functions back until a later turn, which then reveals them and says so;
``miss_param`` turns whose ground truth is empty are not checked. After the last turn the trajectory is scored
by :func:`~resrl_envs.bfcl.multi_turn.check_trajectory`: reward 1.0 when BFCL would mark it valid.
"""

from __future__ import annotations

import functools
import inspect
import json
import random
from typing import Any, ClassVar

from resrl import ChatEnv, Message, ParsedAction, Task, ToolCall, ToolCallParseError, Transition
from resrl.core.messages import tool_message
from resrl.core.task import Split
from resrl_envs.bfcl.data import package_dir
from resrl_envs.bfcl.domains import DOMAIN_MODULES, MULTI_TURN_CATEGORIES, DomainSet, domain_class, parse_calls
from resrl_envs.bfcl.multi_turn import Call, check_trajectory
from resrl_envs.bfcl.schema import openai_tools, prompt_mode_system

MAX_STEPS_PER_TURN = 20
"""BFCL's step limit per turn; going past it fails the entry."""
REVEAL_MESSAGE = "Some more functions are available to you now. Can you do it with them?"
_DONE = "Done."
PROMPT_MODE_FORMAT = "pythonic"


@functools.cache
def function_docs(domain: str) -> tuple[dict[str, Any], ...]:
    """BFCL's function docs of one domain (``multi_turn_func_doc/<module>.json``)."""
    path = package_dir() / "data" / "multi_turn_func_doc" / f"{DOMAIN_MODULES[domain]}.json"
    with path.open(encoding="utf-8") as fh:
        return tuple(json.loads(line) for line in fh if line.strip())


@functools.cache
def load_entries(category: str) -> tuple[dict[str, Any], ...]:
    """The category's entries in BFCL's order, each with its ground-truth turns under ``ground_truth``."""
    if category not in MULTI_TURN_CATEGORIES:
        raise ValueError(f"unknown BFCL multi-turn category {category!r}; choose one of {MULTI_TURN_CATEGORIES}")
    data = package_dir() / "data"
    with (data / "possible_answer" / f"BFCL_v4_{category}.json").open(encoding="utf-8") as fh:
        truth = {row["id"]: row["ground_truth"] for row in map(json.loads, fh)}
    with (data / f"BFCL_v4_{category}.json").open(encoding="utf-8") as fh:
        return tuple({**row, "ground_truth": truth[row["id"]]} for row in map(json.loads, fh))


def _docs(entry: dict[str, Any], names: set[str] | None = None) -> list[dict[str, Any]]:
    """The entry's function docs (all but the excluded ones), or only those named in ``names``."""
    excluded = set(entry.get("excluded_function", []))
    docs = [d for domain in entry["involved_classes"] for d in function_docs(domain) if d["name"] not in excluded]
    return [d for d in docs if names is None or d["name"] in names]


def _task(entry: dict[str, Any], env_id: str, category: str, split: Split) -> Task:
    held_back = {name for names in entry.get("missed_function", {}).values() for name in names}
    visible = [d for d in _docs(entry) if d["name"] not in held_back]
    return Task(
        id=entry["id"],
        env_id=env_id,
        messages=entry["question"][0],
        tools=openai_tools(visible, "python"),
        answer=entry["ground_truth"],
        metadata={
            "bfcl_category": category,
            "question": entry["question"],
            "involved_classes": entry["involved_classes"],
            "initial_config": entry["initial_config"],
            "missed_function": entry.get("missed_function", {}),
            "excluded_function": entry.get("excluded_function", []),
            "functions": visible,
        },
        split=split,
    )


class BFCLMultiTurnEnv(ChatEnv):
    """One BFCL multi-turn entry per episode; the reward (at the end) is 1.0 exactly when it is valid."""

    multi_turn = True
    category: ClassVar[str] = ""

    def __init__(self, *, tool_format: str = "hermes", split: Split = "test", max_steps: int = 400) -> None:
        super().__init__(tool_format=tool_format, split=split, max_steps=max_steps)

    @classmethod
    def generate_tasks(cls, split: Split, n: int, seed: int) -> list[Task]:
        """The first ``n`` entries in BFCL's order; a ``train`` split is refused (BFCL is evaluation data)."""
        if split == "train":
            raise ValueError(f"{cls.env_id} is the BFCL benchmark, an evaluation set: it has no train split")
        return [_task(e, cls.env_id, cls.category, split) for e in load_entries(cls.category)[:n]]

    @property
    def prompt_mode(self) -> bool:
        """True when the functions go into the prompt instead of the tools."""
        return self.format.name == PROMPT_MODE_FORMAT

    def _entry(self) -> dict[str, Any]:
        assert self.task is not None
        return {**self.task.metadata, "id": self.task.id, "ground_truth": self.task.answer}

    def _start(self, task: Task) -> list[Message]:
        meta = task.metadata
        self.domains = DomainSet(
            meta["involved_classes"], meta["initial_config"], long_context="long_context" in self.category
        )
        self.turn = 0
        self.steps_in_turn = 0
        self.played: list[list[list[Call]]] = [[]]
        self.visible = list(meta["functions"])
        if not self.prompt_mode:
            return list(task.messages)
        return [{"role": "system", "content": prompt_mode_system(self.visible, "python")}, *task.messages]

    def tools_schema(self) -> list[dict[str, Any]]:
        return [] if self.prompt_mode or self.task is None else openai_tools(self.visible, "python")

    def _next_turn(self) -> Transition:
        assert self.task is not None
        self.turn += 1
        questions = self.task.metadata["question"]
        if self.turn >= len(questions):
            verdict = check_trajectory(self._entry(), self.category, self.played)
            info = {
                "correct": verdict.valid,
                "error_type": verdict.error_type,
                "errors": [verdict.error] * bool(verdict.error),
            }
            return Transition([], float(verdict.valid), True, info={**info, "failed_turn": verdict.turn})
        self.played.append([])
        self.steps_in_turn = 0
        messages = list(questions[self.turn])
        revealed = self.task.metadata["missed_function"].get(str(self.turn), [])
        if revealed:
            new = _docs(self._entry(), set(revealed))
            self.visible += new
            text = REVEAL_MESSAGE
            if self.prompt_mode:
                text = json.dumps(new, ensure_ascii=False) + "\n" + text
            messages = [{"role": "user", "content": text}]
        return Transition(messages, 0.0, False, info={"turn": self.turn})

    def _act(self, action: ParsedAction | ToolCallParseError) -> Transition:
        calls = [] if isinstance(action, ToolCallParseError) else action.tool_calls
        if not calls:
            return self._next_turn()
        self.steps_in_turn += 1
        if self.steps_in_turn > MAX_STEPS_PER_TURN:
            info = {"correct": False, "error_type": "multi_turn:force_terminated", "errors": ["step limit"]}
            return Transition([], 0.0, True, info=info)
        step = [(c.name, [], dict(c.arguments)) for c in calls]
        self.played[-1].append(step)
        results = [self.domains.call(name, args, kwargs) for name, args, kwargs in step]
        observation = [
            tool_message(self.format.render_response(r), name=c.name, tool_call_id=c.id)
            for c, r in zip(calls, results, strict=True)
        ]
        return Transition(observation, 0.0, False, info={"turn": self.turn})

    @classmethod
    def perturbed_actions(cls, task: Task, rng: random.Random) -> list[ParsedAction]:
        """The gold episode without its last calling message: that turn's work is never done."""
        actions = cls.gold_actions(task)
        last = max(i for i, a in enumerate(actions) if a.tool_calls)
        return actions[:last] + actions[last + 1 :]

    @classmethod
    def gold_actions(cls, task: Task) -> list[ParsedAction]:
        """Per turn: the ground truth's calls in one message (keyword arguments), then a closing text."""
        methods = _methods(tuple(task.metadata["involved_classes"]))
        actions = []
        for turn in task.answer:
            calls = []
            for text in turn:
                for name, args, kwargs in parse_calls(text):
                    bound = inspect.signature(methods[name]).bind(*args, **kwargs)
                    calls.append(ToolCall(name=name, arguments=dict(bound.arguments)))
            if calls:
                actions.append(ParsedAction(tool_calls=calls))
            actions.append(ParsedAction(content=_DONE))
        return actions


def _methods(domains: tuple[str, ...]) -> dict[str, Any]:
    """Public methods of the domain classes, by name (unbound: only their signatures are read)."""
    out = {}
    for domain in domains:
        for name, fn in inspect.getmembers(domain_class(domain), predicate=inspect.isfunction):
            if not name.startswith("_"):
                out[name] = functools.partial(fn, None)
    return out


def _env_class(category: str) -> type[BFCLMultiTurnEnv]:
    return type(
        f"BFCL_{category}",
        (BFCLMultiTurnEnv,),
        {
            "env_id": f"bfcl/{category}",
            "category": category,
            "description": f"BFCL v4 {category} (multi-turn, BFCL's domain classes, state and response checks)",
            "tags": ("function-calling", "multi-turn", "bfcl", "eval-only"),
            "__doc__": f"BFCL v4's ``{category}`` entries.",
            "__module__": __name__,
        },
    )


BFCL_MULTI_TURN_ENVS: tuple[type[BFCLMultiTurnEnv], ...] = tuple(_env_class(c) for c in MULTI_TURN_CATEGORIES)
