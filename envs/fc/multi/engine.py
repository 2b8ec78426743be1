"""The episode engine shared by every multi-turn function-calling domain (BFCL multi-turn style).

A domain supplies a state class (pydantic fields plus ``@resrl.tool`` methods), an initial-state builder and a
list of *operations* that each turn a scratch state into one user request with its gold calls. This module
turns those into seeded tasks (with the ``miss_param`` / ``miss_func`` variants) and runs episodes: tool calls
act on the episode's state, a turn with no calls closes the user turn, and the turn is correct when the state
equals the state the gold program reaches from the same start and every gold call's result reached the model.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import random
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from resrl.core.env import ChatEnv, Transition
from resrl.core.formats import ToolCallParseError
from resrl.core.messages import Message, ParsedAction, ToolCall, tool_message, user_message
from resrl.core.task import Split, Task
from resrl.core.tools import Tool, ToolSet

log = logging.getLogger("resrl.envs.fc.multi")

Variant = Literal["base", "miss_param", "miss_func"]
RewardMode = Literal["binary", "fraction"]

ASK_CLOSING = "I need one more detail before I can do that. Could you tell me the missing value?"
CANNOT_CLOSING = "I can't do that with the tools I have right now."


# per state class, computed once: tool lookup and schema generation are not free
_CLASS_TOOLS: dict[type, dict[str, Tool]] = {}
_SCHEMAS: dict[type, dict[str, dict[str, Any]]] = {}


def _class_tools(cls: type) -> dict[str, Tool]:
    """The unbound ``@tool`` members of a state class, by tool name (looked up once per class)."""
    if cls not in _CLASS_TOOLS:
        found = (inspect.getattr_static(cls, attr, None) for attr in dir(cls))
        _CLASS_TOOLS[cls] = {t.name: t for t in found if isinstance(t, Tool)}
    return _CLASS_TOOLS[cls]


class DomainState(BaseModel):
    """Base of a domain's state: the pydantic fields are the state, the ``@tool`` methods act on it."""

    model_config = ConfigDict(ignored_types=(Tool,), extra="forbid")

    @classmethod
    def tool_names(cls) -> list[str]:
        """Names of every tool the domain defines."""
        return sorted(_class_tools(cls))

    def bound_tools(self) -> ToolSet:
        """This state's tools, bound to it.

        ``ToolSet.from_object`` rebuilds each tool's pydantic model on every bind; copying the class-level
        tools and binding only the function keeps per-episode setup cheap (the model is shared, read-only).
        """
        tools = []
        for unbound in _class_tools(type(self)).values():
            bound = copy.copy(unbound)
            bound.fn = unbound.fn.__get__(self, type(self))
            tools.append(bound)
        return ToolSet(tools)

    @classmethod
    def tool_schemas(cls) -> dict[str, dict[str, Any]]:
        """Every tool's OpenAI schema by name (built once per class: schema generation is not free)."""
        if cls not in _SCHEMAS:
            schemas = ToolSet.from_object(cls.model_construct()).schemas()
            _SCHEMAS[cls] = {s["function"]["name"]: s for s in schemas}
        return _SCHEMAS[cls]


class TurnSpec(BaseModel):
    """One user request as an operation writes it: the text, the gold calls, the assistant's closing line.

    ``missing_user``/``supply`` (optional) are the same request with a required value left out, and the
    follow-up message that gives it; they make the turn usable by the ``miss_param`` variant.
    """

    user: str
    calls: list[ToolCall]
    closing: str = "Done."
    missing_user: str | None = None
    supply: str | None = None
    mutating: list[str] = Field(default_factory=list, description="tools whose gold calls changed the state")


class GoldTurn(BaseModel):
    """The gold program of one user turn: ``act`` (run the calls), ``ask`` (clarify) or ``cannot`` (decline)."""

    kind: Literal["act", "ask", "cannot"] = "act"
    calls: list[ToolCall] = Field(default_factory=list)
    closing: str = "Done."


class TurnOutcome(BaseModel):
    """How one user turn went."""

    turn: int
    state_match: bool
    results_returned: bool

    @property
    def correct(self) -> bool:
        """Both conditions of the BFCL multi-turn checker hold."""
        return self.state_match and self.results_returned


def split_pool(pool: list[str] | tuple[str, ...], split: Split) -> list[str]:
    """The half of an entity pool a split may use (train: even positions, test/eval: odd) — disjoint."""
    return list(pool[0::2] if split == "train" else pool[1::2])


class Builder:
    """What an operation sees while a task is generated: the rng, the split, and the scratch state."""

    def __init__(self, state: DomainState, rng: random.Random, split: Split, templates: dict[str, Any]) -> None:
        self.state = state
        self.rng = rng
        self.split = split
        self.templates = templates

    def say(self, key: str, **fields: Any) -> str:
        """One of the split's phrasings of template ``key`` (train uses the first list, test the second)."""
        train, test = self.templates[key]
        return self.rng.choice(train if self.split == "train" else test).format(**fields)

    def pick(self, pool: list[str] | tuple[str, ...]) -> Any:
        """A random member of the split's half of ``pool``."""
        return self.rng.choice(split_pool(pool, self.split))


Operation = Callable[[Builder], TurnSpec | None]


def call(tool_name: str, /, **arguments: Any) -> ToolCall:
    """A gold call (shorthand for the domain modules)."""
    return ToolCall(name=tool_name, arguments=arguments)


class MultiTurnFCEnv(ChatEnv):
    """A stateful multi-turn function-calling episode over one domain (subclass per domain).

    Constructor kwargs: ``reward_mode`` (``binary``: 1 only when every user turn is correct; ``fraction``: the
    share of correct turns) and ``max_calls_per_step`` (calls past it in one assistant turn are not run).
    """

    multi_turn = True
    fast_step = True  # parsing and checking calls over in-memory state
    domain: ClassVar[str] = ""
    variant: ClassVar[Variant] = "base"
    state_cls: ClassVar[type[DomainState]]
    system_prompt: ClassVar[str] = ""
    templates: ClassVar[dict[str, Any]] = {}
    ops: ClassVar[tuple[Operation, ...]] = ()

    def __init__(
        self, *, reward_mode: RewardMode = "binary", max_calls_per_step: int = 8, max_steps: int = 48, **kwargs: Any
    ) -> None:
        if reward_mode not in ("binary", "fraction"):
            raise ValueError(f"reward_mode must be 'binary' or 'fraction', got {reward_mode!r}")
        super().__init__(max_steps=max_steps, **kwargs)
        self.reward_mode = reward_mode
        self.max_calls_per_step = max_calls_per_step

    # -- what a domain provides ------------------------------------------------------------------------------
    @classmethod
    def initial_state(cls, rng: random.Random, split: Split) -> DomainState:
        """A fresh start state for one task."""
        raise NotImplementedError

    # -- task generation ----------------------------------------------------------------------------------------
    @classmethod
    def env_name(cls) -> str:
        """The registered id of this class (``fc/multi/<domain>[/<variant>]``)."""
        base = f"fc/multi/{cls.domain}"
        return base if cls.variant == "base" else f"{base}/{cls.variant}"

    @classmethod
    def generate_tasks(cls, split: Split, n: int, seed: int) -> list[Task]:
        """``n`` distinct tasks; train and test draw on disjoint phrasings and entity pools."""
        rng = random.Random(f"{cls.env_name()}|{split}|{seed}")
        tasks: list[Task] = []
        seen: set[tuple[str, ...]] = set()
        attempts = 0
        while len(tasks) < n:
            attempts += 1
            if attempts > 50 * n + 100:
                raise RuntimeError(f"{cls.env_name()}: could not generate {n} distinct {split} tasks")
            task = cls._one_task(rng, split, f"{cls.env_name()}-{split}-{seed}-{len(tasks)}")
            key = tuple(task.metadata["user_turns"])
            if key not in seen:
                seen.add(key)
                tasks.append(task)
        return tasks

    @classmethod
    def _scenario(cls, rng: random.Random, split: Split) -> tuple[dict[str, Any], list[TurnSpec]]:
        state = cls.initial_state(rng, split)
        start = state.model_dump()
        builder = Builder(state, rng, split, cls.templates)
        tools = state.bound_tools()
        specs: list[TurnSpec] = []
        for _ in range(rng.randint(2, 5)):
            for _attempt in range(20):
                spec = rng.choice(cls.ops)(builder)
                if spec is not None and (not specs or spec.user != specs[-1].user):
                    break
            else:
                continue
            for c in spec.calls:
                before = state.model_dump()
                result = tools.call(c)
                if not result.ok:  # an operation bug, not a model error: fail loudly at generation time
                    raise RuntimeError(f"{cls.domain}: gold call {c.name}{c.arguments} failed: {result.content}")
                if state.model_dump() != before and c.name not in spec.mutating:
                    spec.mutating.append(c.name)
            specs.append(spec)
        return start, specs

    @classmethod
    def _one_task(cls, rng: random.Random, split: Split, task_id: str) -> Task:
        for _ in range(50):
            start, specs = cls._scenario(rng, split)
            if len(specs) < 2:
                continue
            built = cls._apply_variant(rng, specs)
            if built is not None:
                break
        else:
            raise RuntimeError(f"{cls.env_name()}: no usable scenario for the {cls.variant} variant")
        users, gold, hidden, reveal = built
        schemas = cls.state_cls.tool_schemas()
        visible = [schemas[name] for name in sorted(schemas) if name not in hidden]
        messages: list[Message] = [{"role": "system", "content": cls.system_prompt}, user_message(users[0])]
        return Task(
            id=task_id,
            env_id=cls.env_name(),
            split=split,
            messages=messages,
            tools=visible,
            answer={"turns": [g.model_dump() for g in gold]},
            metadata={
                "domain": cls.domain,
                "variant": cls.variant,
                "initial_state": start,
                "user_turns": users,
                "hidden_tools": hidden,
                "reveal_turn": reveal,
            },
        )

    @classmethod
    def _apply_variant(
        cls, rng: random.Random, specs: list[TurnSpec]
    ) -> tuple[list[str], list[GoldTurn], list[str], int | None] | None:
        users = [s.user for s in specs]
        gold = [GoldTurn(calls=s.calls, closing=s.closing) for s in specs]
        if cls.variant == "miss_param":
            usable = [i for i, s in enumerate(specs) if s.missing_user and s.supply]
            if not usable:
                return None
            i = rng.choice(usable)
            users[i : i + 1] = [specs[i].missing_user, specs[i].supply]
            gold[i:i] = [GoldTurn(kind="ask", closing=ASK_CLOSING)]
            return users, gold, [], None
        if cls.variant == "miss_func":
            # only a tool that changes the state: without it the request truly cannot be done, whereas a
            # missing read (a search, a listing) can often be worked around by a model that guesses
            options = []
            for i, s in enumerate(specs):
                earlier = {c.name for prev in specs[:i] for c in prev.calls}
                options += [(i, name) for name in sorted(set(s.mutating) - earlier)]
            if not options:
                return None
            i, name = rng.choice(options)
            users[i : i + 1] = [specs[i].user, f"The '{name}' tool is available now. Please go ahead: {specs[i].user}"]
            gold[i:i] = [GoldTurn(kind="cannot", closing=CANNOT_CLOSING)]
            return users, gold, [name], i + 1
        return users, gold, [], None

    # -- gold and perturbed episodes ---------------------------------------------------------------------------
    @classmethod
    def gold_actions(cls, task: Task) -> list[ParsedAction]:
        """Per user turn: one assistant turn with the gold calls (if any), then the closing text."""
        actions = []
        for raw in task.answer["turns"]:
            turn = GoldTurn.model_validate(raw)
            if turn.calls:
                actions.append(ParsedAction(tool_calls=[c.model_copy() for c in turn.calls]))
            actions.append(ParsedAction(content=turn.closing))
        return actions

    @classmethod
    def perturbed_actions(cls, task: Task, rng: random.Random) -> list[ParsedAction]:
        """The gold episode with one argument of one call changed, checked to lose the reward.

        Candidates are tried in random order. Best is a wrong value the tool accepts that leaves a different
        state (the kind of mistake a model makes); next a value that changes the state by failing; last any
        change that loses the reward (a wrong read whose result never reaches the model).
        """
        gold = cls.gold_actions(task)
        # values the same argument takes elsewhere in the task: plausible mix-ups (the other account, device)
        seen: dict[str, list[Any]] = {}
        for action in gold:
            for tc in action.tool_calls:
                for key, value in tc.arguments.items():
                    if value not in seen.setdefault(key, []):
                        seen[key].append(value)
        candidates = [
            (a, c, key, wrong)
            for a, action in enumerate(gold)
            for c, tc in enumerate(action.tool_calls)
            for key, value in sorted(tc.arguments.items())
            for wrong in (*[v for v in seen[key] if v != value][:2], _wrong_value(value, rng))
        ]
        rng.shuffle(candidates)
        fallback: list[ParsedAction] | None = None
        for a, c, key, wrong in candidates:
            actions = [x.model_copy(deep=True) for x in gold]
            actions[a].tool_calls[c].arguments[key] = wrong
            reward, env = cls._replay(task, actions)
            if reward >= cls.max_reward:
                continue
            if any(not o.state_match for o in env.outcomes) and not env.tool_error_count:
                return actions
            fallback = fallback or actions
        if fallback is not None:
            return fallback
        # no argument to change (or none mattered): skip the first turn's calls, so its results never arrive
        actions = [x.model_copy(deep=True) for x in gold]
        first = next((x for x in actions if x.tool_calls), actions[0])
        first.tool_calls, first.content = [], first.content or "Done."
        return actions

    @classmethod
    def replay(cls, task: Task, actions: list[ParsedAction], **kwargs: Any) -> float:
        """Total reward of playing ``actions`` on ``task`` in a fresh env."""
        return cls._replay(task, actions, **kwargs)[0]

    @classmethod
    def _replay(cls, task: Task, actions: list[ParsedAction], **kwargs: Any) -> tuple[float, MultiTurnFCEnv]:
        env = cls(**kwargs)
        env.reset(options={"task": task})
        total = 0.0
        for action in actions:
            _, reward, terminated, truncated, _ = env.step(env.render_action(action))
            total += reward
            if terminated or truncated:
                break
        return total, env

    # -- the episode ---------------------------------------------------------------------------------------------
    def _start(self, task: Task) -> list[Message]:
        meta = task.metadata
        self.state = self.state_cls.model_validate(meta["initial_state"])
        self.gold_state = self.state_cls.model_validate(meta["initial_state"])
        # bound once per episode: the state object lives for the whole episode, and binding builds models
        self.tools = self.state.bound_tools()
        self.gold_tools = self.gold_state.bound_tools()
        self.gold_turns = [GoldTurn.model_validate(t) for t in task.answer["turns"]]
        self.user_turns: list[str] = list(meta["user_turns"])
        self.hidden: set[str] = set(meta.get("hidden_tools") or [])
        self.reveal_turn: int | None = meta.get("reveal_turn")
        self.turn = 0
        self.received: list[str] = []
        self.outcomes: list[TurnOutcome] = []
        self.tool_error_count = 0
        return list(task.messages)

    def available_tools(self) -> list[str]:
        """Tool names the model may call now (``miss_func`` hides some until their turn)."""
        hidden = self.hidden if self.reveal_turn is None or self.turn < self.reveal_turn else set()
        return [n for n in self.state_cls.tool_names() if n not in hidden]

    def tools_schema(self) -> list[dict[str, Any]]:
        if self.task is None:
            return []
        schemas = self.state_cls.tool_schemas()
        return [schemas[name] for name in self.available_tools()]

    def _act(self, action: ParsedAction | ToolCallParseError) -> Transition:
        if isinstance(action, ToolCallParseError):
            text = f"Error: your tool call could not be read ({action.kind}): {action.message}"
            return Transition([self.error_message(text)], info={"turn": self.turn})
        if not action.tool_calls:
            return self._end_turn()
        tools = ToolSet(self.tools.tools[name] for name in self.available_tools())
        observation, errors = [], []
        for i, tc in enumerate(action.tool_calls):
            tc = tc.model_copy(update={"id": tc.id or f"call_{self.steps}_{i}"})
            if i >= self.max_calls_per_step:
                content = f"Error: too many calls in one turn (at most {self.max_calls_per_step}); not run."
                errors.append({"name": tc.name, "error": "too_many_calls"})
            else:
                try:
                    result = tools.call(tc)
                except Exception as exc:  # a bug in our tool code, not the model's fault: flag, don't score
                    log.exception("%s: tool %s crashed on %s", self.env_id or self.task.env_id, tc.name, tc.arguments)
                    infra = f"tool {tc.name} crashed: {type(exc).__name__}: {exc}"
                    text = "Error: the tool failed on our side; this is not your fault."
                    observation.append(tool_message(text, name=tc.name, tool_call_id=tc.id))
                    return Transition(observation, truncated=True, info={"turn": self.turn, "infra_error": infra})
                content = result.content
                self.received.append(content)
                if not result.ok:
                    errors.append({"name": tc.name, "error": result.error})
            observation.append(tool_message(content, name=tc.name, tool_call_id=tc.id))
        self.tool_error_count += len(errors)
        return Transition(observation, info={"turn": self.turn, "tool_errors": errors})

    def _end_turn(self) -> Transition:
        gold = self.gold_turns[self.turn]
        expected = [self.gold_tools.call(c).content for c in gold.calls]
        outcome = TurnOutcome(
            turn=self.turn,
            state_match=self.state.model_dump() == self.gold_state.model_dump(),
            results_returned=all(content in self.received for content in expected),
        )
        self.outcomes.append(outcome)
        log.debug(
            "%s task=%s turn=%d state_match=%s results_returned=%s",
            self.env_id or self.task.env_id,
            self.task.id,
            outcome.turn,
            outcome.state_match,
            outcome.results_returned,
        )
        self.turn += 1
        self.received = []
        info: dict[str, Any] = {"turn": outcome.turn, "turn_correct": outcome.correct}
        info["turn_outcomes"] = [o.model_dump() | {"correct": o.correct} for o in self.outcomes]
        if self.turn >= len(self.gold_turns):
            correct = sum(o.correct for o in self.outcomes)
            fraction = correct / len(self.gold_turns)
            all_correct = float(correct == len(self.gold_turns))
            info["reward_components"] = {"all_turns_correct": all_correct, "turn_accuracy": fraction}
            reward = fraction if self.reward_mode == "fraction" else all_correct
            return Transition([], reward=reward, terminated=True, info=info)
        text = self.user_turns[self.turn]
        if self.turn == self.reveal_turn and self.hidden:
            names = ", ".join(sorted(self.hidden))
            # the definitions travel in the message: a rollout that rendered the tool list into the prompt
            # once (token-in-token-out) has no other way to show the model the new schema
            schemas = json.dumps([self.state_cls.tool_schemas()[n] for n in sorted(self.hidden)])
            text = f"[New tools are now available: {names}. Definitions: {schemas}]\n\n{text}"
            info["tools"] = self.tools_schema()
            info["new_tools"] = sorted(self.hidden)
        return Transition([user_message(text)], info=info)


def _wrong_value(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + rng.choice([1, 3, 7])
    if isinstance(value, str):
        return value + "_x" if value else "x"
    if isinstance(value, list):
        return [*value, "extra"]
    return "wrong"


def variants(cls: type[MultiTurnFCEnv]) -> list[type[MultiTurnFCEnv]]:
    """The domain class and its ``miss_param`` / ``miss_func`` subclasses."""
    made = [cls]
    for variant in ("miss_param", "miss_func"):
        name = cls.__name__ + "".join(part.title() for part in variant.split("_"))
        made.append(type(name, (cls,), {"variant": variant, "__module__": cls.__module__}))
    return made
