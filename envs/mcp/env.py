"""An MCP server as a resrl environment: one server session per episode, its tools as the episode's tools.

An episode: reset opens a new session (a fresh stdio process, or a new streamable-HTTP session), calls the
spec's ``setup_tool`` with the task's arguments, and lists the tools; every listed tool but the hidden ones
becomes an OpenAI schema. Each assistant turn is parsed by the env's tool-call format; its calls go to the
server; a tool error (``isError``, or invalid params) is an observation the model reads. A turn without calls
ends the episode, and ``reward(transcript, call_tool)`` scores it (``call_tool`` reaches hidden tools, e.g. a
``grade`` that reads the server's state). A server that does not start, crashes, times out or breaks the
protocol ends the episode with ``info["infra_error"]`` naming the cause, so the trainer masks it.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from resrl.core.env import ChatEnv, Transition, _perturb_value
from resrl.core.formats import ToolCallParseError
from resrl.core.messages import Message, ParsedAction, assistant_message, tool_message, user_message
from resrl.core.registry import EnvSpec, register
from resrl.core.task import Split, Task
from resrl_envs.mcp.bridge import MCPConnection, MCPInfraError, ToolOutcome
from resrl_envs.mcp.spec import MCPEnvSpec, MCPTaskSpec, RewardTool

log = logging.getLogger("resrl.envs.mcp")


class CallRecord(BaseModel):
    """One tool call the model made in an episode, and what the server answered."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    text: str
    is_error: bool = False


class Transcript(BaseModel):
    """What the reward sees: the task (with its hidden answer), the conversation, and every call made."""

    task: Task
    messages: list[Message]
    calls: list[CallRecord] = Field(default_factory=list)
    final: str = Field("", description="the text of the last assistant turn")


CallTool = Callable[..., ToolOutcome]
"""``call_tool(name, arguments=None) -> ToolOutcome``: any tool of the episode's session, hidden ones too."""


def openai_schema(tool: Any) -> dict[str, Any]:
    """An MCP ``Tool`` as an OpenAI function schema."""
    params = dict(tool.input_schema or {})
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description or "", "parameters": params},
    }


class MCPEnv(ChatEnv):
    """Base of every MCP-backed env; :func:`register_mcp` makes one subclass per spec."""

    mcp_spec: ClassVar[MCPEnvSpec]
    multi_turn: ClassVar[bool] = True
    _tools_cache: ClassVar[list[dict[str, Any]] | None] = None
    _tools_lock: ClassVar[threading.Lock]

    def __init__(self, *, tool_format: str = "hermes", split: Split = "train", max_steps: int | None = None) -> None:
        super().__init__(tool_format=tool_format, split=split, max_steps=max_steps or self.mcp_spec.max_steps)
        self.connection: MCPConnection | None = None
        self.infra: str | None = None
        self.visible: list[dict[str, Any]] = []
        self.transcript: Transcript | None = None

    # -- tasks ------------------------------------------------------------------------------------------------
    @classmethod
    def generate_tasks(cls, split: Split, n: int, seed: int) -> list[Task]:
        specs = cls.mcp_spec.task_specs(split, n, seed)
        tools = cls.listed_tools()
        return [cls._task(s, tools) for s in specs]

    @classmethod
    def _task(cls, s: MCPTaskSpec, tools: list[dict[str, Any]]) -> Task:
        messages = list(s.messages or [user_message(s.prompt or "")])
        system = s.system or cls.mcp_spec.system_prompt
        if system and not any(m.get("role") == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": system})
        gold = [g.model_dump() for g in s.gold]
        return Task(
            id=s.id,
            env_id=cls.mcp_spec.id,
            messages=messages,
            tools=tools,
            answer=s.answer,
            metadata={"arguments": s.arguments, "gold": gold},
            split=s.split,
        )

    @classmethod
    def listed_tools(cls) -> list[dict[str, Any]]:
        """The server's visible tools, listed once per process from a session without setup (what tasks carry;
        each episode lists its own session's tools again)."""
        with cls._tools_lock:
            if cls._tools_cache is None:
                connection = MCPConnection(
                    cls.mcp_spec.target(),
                    timeout_s=cls.mcp_spec.timeout_s,
                    start_timeout_s=cls.mcp_spec.start_timeout_s,
                )
                try:
                    connection.open()
                    cls._tools_cache = cls._visible(connection.list_tools())
                finally:
                    connection.close()
            return list(cls._tools_cache)

    @classmethod
    def _visible(cls, tools: Sequence[Any]) -> list[dict[str, Any]]:
        hidden = set(cls.mcp_spec.hidden_tools)
        return [openai_schema(t) for t in sorted(tools, key=lambda t: t.name) if t.name not in hidden]

    @classmethod
    def gold_actions(cls, task: Task) -> list[ParsedAction]:
        gold = task.metadata.get("gold") or []
        if not gold:
            raise NotImplementedError(f"task {task.id} of {cls.mcp_spec.id} has no gold turns")
        return [ParsedAction.model_validate(g) for g in gold]

    @classmethod
    def perturbed_actions(cls, task: Task, rng: random.Random) -> list[ParsedAction]:
        """The gold episode with one argument of its last tool call changed (gold episodes here usually end
        with a confirmation, which the base class would change instead: a wrong reply to a right state)."""
        turns = [a.model_copy(deep=True) for a in cls.gold_actions(task)]
        with_calls = [t for t in turns if t.tool_calls]
        if not with_calls:
            return super().perturbed_actions(task, rng)
        call = with_calls[-1].tool_calls[-1]
        if call.arguments:
            key = rng.choice(sorted(call.arguments))
            call.arguments[key] = _perturb_value(call.arguments[key], rng)
        else:
            call.name = f"{call.name}_unknown"
        return turns

    # -- episodes ---------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        observation, info = super().reset(seed=seed, options=options)
        if self.infra:
            info["infra_error"] = self.infra
        return observation, info

    def _start(self, task: Task) -> list[Message]:
        self._disconnect()
        self.infra = None
        self.visible = []
        messages = list(task.messages)
        self.transcript = Transcript(task=task, messages=list(messages))
        spec = self.mcp_spec
        try:
            self.connection = MCPConnection(
                spec.target(), timeout_s=spec.timeout_s, start_timeout_s=spec.start_timeout_s
            )
            self.connection.open()
            if spec.setup_tool:
                outcome = self.connection.call_tool(spec.setup_tool, task.metadata.get("arguments") or {})
                if outcome.is_error:
                    raise MCPInfraError("protocol", f"setup tool {spec.setup_tool!r} failed: {outcome.text[:300]}")
            self.visible = self._visible(self.connection.list_tools())
        except MCPInfraError as exc:
            self._fail(exc)
        return messages

    def tools_schema(self) -> list[dict[str, Any]]:
        return list(self.visible) if self.visible else (list(self.task.tools) if self.task else [])

    def _act(self, action: ParsedAction | ToolCallParseError) -> Transition:
        if self.infra:
            return Transition([], truncated=True, info={"infra_error": self.infra})
        assert self.transcript is not None
        if isinstance(action, ToolCallParseError):
            text = f"Error: your tool call could not be read ({action.kind}): {action.message}"
            self.transcript.messages.append(assistant_message(""))
            return Transition([self.error_message(text)])
        self.transcript.messages.append(assistant_message(action.content, action.tool_calls))
        self.transcript.final = action.content
        if not action.tool_calls:
            return self._score(terminated=True)
        observation, errors = [], []
        names = {s["function"]["name"] for s in self.visible}
        for i, call in enumerate(action.tool_calls):
            call_id = call.id or f"call_{self.steps}_{i}"
            if i >= self.mcp_spec.max_calls_per_turn:
                outcome = ToolOutcome(
                    text=f"Error: too many calls in one turn (at most {self.mcp_spec.max_calls_per_turn}); not run.",
                    is_error=True,
                )
            elif call.name not in names:  # hidden tools answer exactly like absent ones
                known = ", ".join(sorted(names)) or "none"
                outcome = ToolOutcome(
                    text=f"Error: unknown tool '{call.name}'. Available tools: {known}.", is_error=True
                )
            else:
                try:
                    outcome = self.connection.call_tool(call.name, call.arguments)  # type: ignore[union-attr]
                except MCPInfraError as exc:
                    self._fail(exc)
                    observation.append(
                        tool_message(
                            "Error: the tool failed on our side; this is not your fault.",
                            name=call.name,
                            tool_call_id=call_id,
                        )
                    )
                    return Transition(observation, truncated=True, info={"infra_error": self.infra})
                if outcome.is_error and not outcome.text.startswith("Error"):
                    outcome = outcome.model_copy(update={"text": f"Error: {outcome.text}"})
            if outcome.is_error:
                errors.append({"name": call.name, "error": outcome.text[:200]})
            self.transcript.calls.append(
                CallRecord(name=call.name, arguments=call.arguments, text=outcome.text, is_error=outcome.is_error)
            )
            message = tool_message(outcome.text, name=call.name, tool_call_id=call_id)
            observation.append(message)
            self.transcript.messages.append(message)
        if self.steps + 1 >= self.max_steps:  # the last turn allowed: score the state the model left
            last = self._score(terminated=False)
            return Transition(
                observation, reward=last.reward, truncated=True, info={**last.info, "tool_errors": errors}
            )
        return Transition(observation, info={"tool_errors": errors})

    def _score(self, *, terminated: bool) -> Transition:
        assert self.transcript is not None and self.connection is not None
        try:
            value = self._reward()
        except MCPInfraError as exc:
            self._fail(exc)
            return Transition([], truncated=True, info={"infra_error": self.infra})
        except Exception as exc:  # the reward function is the env author's code: its failure is not the model's
            log.exception("%s: reward of task %s raised", self.mcp_spec.id, self.transcript.task.id)
            self.infra = f"reward raised {type(exc).__name__}: {exc}"
            return Transition([], truncated=True, info={"infra_error": self.infra})
        reward, components = _read_reward(value)
        info: dict[str, Any] = {"reward_components": components} if components else {}
        return Transition([], reward=reward, terminated=terminated, truncated=not terminated, info=info)

    def _reward(self) -> Any:
        reward = self.mcp_spec.reward_fn()
        connection = self.connection
        assert connection is not None and self.transcript is not None

        def call_tool(name: str, arguments: dict[str, Any] | None = None) -> ToolOutcome:
            return connection.call_tool(name, arguments or {})

        if isinstance(reward, RewardTool):
            answer = self.transcript.task.answer
            arguments = {**reward.arguments, **(answer if isinstance(answer, dict) else {})}
            outcome = call_tool(reward.tool, arguments)
            if outcome.is_error:
                raise MCPInfraError("protocol", f"reward tool {reward.tool!r} failed: {outcome.text[:300]}")
            return outcome.structured if isinstance(outcome.structured, dict) else outcome.text
        return reward(self.transcript, call_tool)

    def _fail(self, exc: MCPInfraError) -> None:
        log.warning("%s: %s", self.mcp_spec.id, exc)
        self.infra = str(exc)
        self._disconnect()

    def _disconnect(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def close(self) -> None:
        self._disconnect()
        super().close()


def _read_reward(value: Any) -> tuple[float, dict[str, float]]:
    """A reward function's (or tool's) answer as a float and its components."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(f"the reward tool answered {text[:80]!r}, not a number or JSON with a 'reward'") from None
    if isinstance(value, dict):
        if "reward" not in value:
            raise ValueError(f"a reward dict needs a 'reward' key, got keys {sorted(value)}")
        components = {k: float(v) for k, v in value.items() if k != "reward" and isinstance(v, int | float)}
        return float(value["reward"]), components
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"a reward must be a number or a dict with 'reward', got {type(value).__name__}")
    return float(value), {}


def env_class(spec: MCPEnvSpec) -> type[MCPEnv]:
    """A :class:`MCPEnv` subclass bound to ``spec``."""
    name = "MCPEnv_" + "".join(c if c.isalnum() else "_" for c in spec.id)
    attrs = {
        "mcp_spec": spec,
        "description": spec.description or f"MCP server {spec.target().describe()}",
        "tags": ("mcp", *spec.tags),
        "_tools_cache": None,
        "_tools_lock": threading.Lock(),
        "__module__": __name__,
    }
    return type(name, (MCPEnv,), attrs)


def register_spec(spec: MCPEnvSpec) -> EnvSpec:
    """Register an :class:`MCPEnvSpec` in the resrl registry."""
    cls = env_class(spec)
    return register(spec.id, cls, description=cls.description, multi_turn=True, tags=list(cls.tags))


def register_mcp(
    env_id: str,
    *,
    command: str | Sequence[str] | None = None,
    url: str | None = None,
    tasks: Any,
    reward: Any,
    hidden_tools: Sequence[str] = (),
    setup_tool: str | None = None,
    **options: Any,
) -> EnvSpec:
    """Register an MCP server as the environment ``env_id``.

    Args:
        env_id: the id ``resrl.make`` and configs use.
        command: argv (or a shell-style string) of a stdio server; a fresh process per episode.
        url: a streamable-HTTP endpoint instead; a fresh session per episode.
        tasks: ``generate(split, n, seed)`` (or a ``"module:name"`` reference), a JSONL path, ``{split: path}``,
            or a list of task dicts (``id``, ``prompt``, ``arguments``, ``answer``, ``gold``).
        reward: ``reward(transcript, call_tool) -> float | {"reward": float, ...}``, or ``{"tool": name}``.
        hidden_tools: tools the server lists that the model never sees (``setup_tool`` and a reward tool are
            always hidden).
        setup_tool: a tool called with the task's ``arguments`` when each episode starts.
        options: the other :class:`MCPEnvSpec` fields (``env``, ``cwd``, ``system_prompt``, ``timeout_s``,
            ``start_timeout_s``, ``max_steps``, ``max_calls_per_turn``, ``description``, ``tags``).
    """
    spec = MCPEnvSpec(
        id=env_id,
        command=command if command is None or isinstance(command, str) else list(command),
        url=url,
        tasks=tasks,
        reward=reward,
        hidden_tools=list(hidden_tools),
        setup_tool=setup_tool,
        **options,
    )
    return register_spec(spec)
