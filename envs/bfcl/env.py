"""``bfcl/<category>``: BFCL v4's single-turn categories as evaluation-only environments.

The tasks are BFCL's own entries (task id = BFCL id) read from the ``bfcl-eval`` package at run time
(:mod:`resrl_envs.bfcl.data`). ``tool_format`` picks BFCL's mode: ``pythonic`` is prompt mode (the functions
are listed in a system prompt, a Python call list is expected back); every other format is FC mode (the
functions are offered as OpenAI tools, converted as BFCL's FC handlers convert them). One turn, scored by
:mod:`resrl_envs.bfcl.checker`: reward 1.0 exactly when the turn is valid.
"""

from __future__ import annotations

import logging
import random
from typing import Any, ClassVar

from resrl import ChatEnv, Message, ParsedAction, Task, ToolCall, ToolCallParseError, Transition
from resrl.core.task import Split
from resrl_envs.bfcl.checker import check_turn
from resrl_envs.bfcl.data import AST_CATEGORIES, CategoryInfo, Entry, load_entries
from resrl_envs.bfcl.gold import canonical_calls
from resrl_envs.bfcl.schema import fc_name, openai_tools, prompt_mode_system

log = logging.getLogger("resrl.envs.bfcl")
PROMPT_MODE_FORMAT = "pythonic"
_NO_CALL_REPLY = "None of the given functions can answer this request."


def _task(entry: Entry, info: CategoryInfo, env_id: str, split: Split) -> Task:
    return Task(
        id=entry.id,
        env_id=env_id,
        messages=entry.question[0],
        tools=openai_tools(entry.function, info.language),
        answer=entry.ground_truth,
        metadata={"bfcl_category": info.name, "language": info.language, "functions": entry.function},
        split=split,
    )


class BFCLEnv(ChatEnv):
    """One BFCL entry, one assistant turn; valid (1.0) or not (0.0), with BFCL's error type in the info."""

    multi_turn = False
    fast_step = True  # parsing and checking calls in memory
    category: ClassVar[str] = ""

    def __init__(self, *, tool_format: str = "hermes", split: Split = "test", max_steps: int = 1) -> None:
        super().__init__(tool_format=tool_format, split=split, max_steps=max_steps)

    @classmethod
    def info(cls) -> CategoryInfo:
        """The category this env serves."""
        return AST_CATEGORIES[cls.category]

    @classmethod
    def generate_tasks(cls, split: Split, n: int, seed: int) -> list[Task]:
        """The first ``n`` entries in BFCL's order (all of them when ``n`` is larger); ``seed`` is unused.

        BFCL is a benchmark: its entries are evaluation data, so a ``train`` split is refused.
        """
        if split == "train":
            raise ValueError(
                f"{cls.env_id} is the BFCL benchmark, an evaluation set: it has no train split "
                "(use --split test or eval; train on fc/* instead)"
            )
        return [_task(e, cls.info(), cls.env_id, split) for e in load_entries(cls.category)[:n]]

    @property
    def prompt_mode(self) -> bool:
        """True when the functions go into the system prompt instead of the tools."""
        return self.format.name == PROMPT_MODE_FORMAT

    def _start(self, task: Task) -> list[Message]:
        if "functions" not in task.metadata:
            raise ValueError(f"task {task.id!r} lacks metadata.functions (BFCL's docs); regenerate it")
        if not self.prompt_mode:
            return list(task.messages)
        system = prompt_mode_system(task.metadata["functions"], task.metadata.get("language", "python"))
        rest = list(task.messages)
        if rest and rest[0].get("role") == "system":  # BFCL puts its prompt before the entry's own system text
            system += "\n" + str(rest.pop(0).get("content") or "")
        return [{"role": "system", "content": system}, *rest]

    def tools_schema(self) -> list[dict[str, Any]]:
        return [] if self.prompt_mode else super().tools_schema()

    def _act(self, action: ParsedAction | ToolCallParseError) -> Transition:
        assert self.task is not None  # the base class only calls _act after reset
        functions = self.task.metadata["functions"]
        original = {fc_name(f["name"]): f["name"] for f in functions}
        # A turn that cannot be read counts as no call, as BFCL's failed decoding does.
        calls = [] if isinstance(action, ToolCallParseError) else action.tool_calls
        named = [(original.get(c.name, c.name), dict(c.arguments)) for c in calls]
        verdict = check_turn(self.category, functions, named, self.task.answer)
        log.debug("%s %s: valid=%s %s", self.env_id, self.task.id, verdict.valid, verdict.error_type)
        info = {
            "correct": verdict.valid,
            "error_type": verdict.error_type,
            "errors": [verdict.error] if verdict.error else [],
        }
        info["bfcl_category"] = self.category
        return Transition([], float(verdict.valid), True, info=info)

    @classmethod
    def perturbed_actions(cls, task: Task, rng: random.Random) -> list[ParsedAction]:
        """Irrelevance: calling a function anyway; relevance: answering in text; AST: a wrong argument."""
        kind = AST_CATEGORIES[task.metadata["bfcl_category"]].kind
        if kind == "irrelevance":
            return [_first_function_call(task)]
        if kind == "relevance":
            return [ParsedAction(content=_NO_CALL_REPLY)]
        return super().perturbed_actions(task, rng)

    @classmethod
    def gold_actions(cls, task: Task) -> list[ParsedAction]:
        info = AST_CATEGORIES[task.metadata["bfcl_category"]]
        if info.kind == "irrelevance":
            return [ParsedAction(content=_NO_CALL_REPLY)]
        if info.kind == "relevance":  # any call counts
            return [_first_function_call(task)]
        calls = canonical_calls(task.metadata["functions"], task.answer, info.language)
        return [ParsedAction(tool_calls=[ToolCall(name=name, arguments=args) for name, args in calls])]


def _first_function_call(task: Task) -> ParsedAction:
    """A call of the entry's first function with a placeholder for each required parameter."""
    fn = task.metadata["functions"][0]
    args = {p: "x" for p in fn["parameters"].get("required", [])}
    return ParsedAction(tool_calls=[ToolCall(name=fn["name"], arguments=args)])


def _env_class(info: CategoryInfo) -> type[BFCLEnv]:
    kind = {"ast": "AST-checked calls", "irrelevance": "no call is right", "relevance": "some call is right"}
    return type(
        f"BFCL_{info.name}",
        (BFCLEnv,),
        {
            "env_id": f"bfcl/{info.name}",
            "category": info.name,
            "description": f"BFCL v4 {info.name} ({info.language}, {kind[info.kind]}); evaluation only",
            "tags": ("function-calling", "single-turn", "bfcl", "eval-only", info.language),
            "__doc__": f"BFCL v4's ``{info.name}`` entries.",
            "__module__": __name__,
        },
    )


BFCL_ENVS: tuple[type[BFCLEnv], ...] = tuple(_env_class(info) for info in AST_CATEGORIES.values())
