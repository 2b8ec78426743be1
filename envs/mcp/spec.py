"""What an MCP-backed environment is made of: the server, its tasks, its reward, and the tools the model never sees.

The same :class:`MCPEnvSpec` comes from ``resrl.register_mcp(...)`` and from an ``mcp:`` entry of an env file.
Task and reward sources are Python callables, or ``"module:name"`` / ``"path/to/file.py:name"`` references
(paths relative to the env file's folder), or, for tasks, JSONL files; a reward may also be the name of a hidden
tool whose answer is the score (``reward: {tool: grade}``).

The task contract (what a task generator returns, and what reaches the server):

- ``generate(split, n, seed) -> list[dict | Task]``, the same list for the same arguments, train and test disjoint.
- A task dict has ``id``, ``prompt`` (one user message) or ``messages``, optional ``system``, ``arguments`` (a JSON
  object), ``answer`` (hidden ground truth, for the reward) and ``gold`` (the assistant turns of a correct episode,
  ``[{"content": ..., "tool_calls": [{"name": ..., "arguments": {...}}]}]``, used by ``resrl envs check`` and SFT).
- At the start of each episode the env opens a new server session and, when ``setup_tool`` is set, calls it with
  the task's ``arguments``: seeds and task parameters reach the server that way and only that way. A generator
  that wants the server seeded puts the seed in ``arguments``.
"""

from __future__ import annotations

import importlib
import importlib.util
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from resrl.core.messages import ParsedAction
from resrl.core.task import Split, Task, read_jsonl
from resrl_envs.mcp.bridge import ServerTarget


class RewardTool(BaseModel):
    """A reward read from a hidden tool: its text is a number, or JSON with a ``reward`` key."""

    model_config = ConfigDict(extra="forbid")

    tool: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(
        default_factory=dict, description="fixed arguments; the task's answer adds to them"
    )


class MCPTaskSpec(BaseModel):
    """One task as a generator or a file writes it (see the module docstring for the contract)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    system: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    answer: Any = None
    gold: list[ParsedAction] = Field(default_factory=list)
    split: Split = "train"

    @model_validator(mode="after")
    def _one_prompt(self) -> MCPTaskSpec:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError(f"task {self.id!r} needs exactly one of 'prompt' and 'messages'")
        return self


class MCPEnvSpec(BaseModel):
    """An MCP server as an environment."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    id: str = Field(min_length=1)
    command: list[str] | None = Field(None, description="stdio server argv (a string is split like a shell)")
    url: str | None = Field(None, description="streamable-HTTP endpoint")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment for a stdio server")
    cwd: str | None = Field(None, description="working folder of a stdio server (default: the env file's)")
    tasks: Any = Field(description="generator callable or reference, a JSONL path, {split: path}, or a list")
    reward: Any = Field(description="reward(transcript, call_tool) callable or reference, or {tool: name}")
    hidden_tools: list[str] = Field(default_factory=list, description="listed by the server, never shown the model")
    setup_tool: str | None = Field(None, description="called with the task's arguments when an episode starts")
    system_prompt: str | None = None
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    timeout_s: float = Field(30.0, gt=0, description="seconds one tool call or listing may take")
    start_timeout_s: float = Field(30.0, gt=0, description="seconds to start the server and finish the handshake")
    max_steps: int = Field(16, ge=1)
    max_calls_per_turn: int = Field(8, ge=1)
    base_dir: str | None = Field(None, description="folder that relative paths are read from")

    @field_validator("command", mode="before")
    @classmethod
    def _split_command(cls, value: Any) -> Any:
        return shlex.split(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_server(self) -> MCPEnvSpec:
        if bool(self.command) == bool(self.url):
            raise ValueError(f"MCP env {self.id!r} needs exactly one of 'command' (stdio) and 'url' (HTTP)")
        if isinstance(self.reward, dict):
            self.reward = RewardTool.model_validate(self.reward)
        if self.setup_tool and self.setup_tool not in self.hidden_tools:
            self.hidden_tools = [*self.hidden_tools, self.setup_tool]
        if isinstance(self.reward, RewardTool) and self.reward.tool not in self.hidden_tools:
            self.hidden_tools = [*self.hidden_tools, self.reward.tool]
        return self

    def target(self) -> ServerTarget:
        """The server to connect to; a command starting with ``python`` runs under this interpreter (so a
        server written against the installed ``mcp`` SDK finds it, whatever ``python`` is on the PATH)."""
        command = self.command
        if command and command[0] in ("python", "python3"):
            command = [sys.executable, *command[1:]]
        cwd = self.cwd or self.base_dir
        return ServerTarget(command=command, url=self.url, env=self.env, cwd=cwd)

    def path(self, name: str) -> Path:
        """``name`` resolved against ``base_dir``."""
        p = Path(name)
        return p if p.is_absolute() or self.base_dir is None else Path(self.base_dir) / p

    # -- sources -------------------------------------------------------------------------------------------
    def task_specs(self, split: Split, n: int, seed: int) -> list[MCPTaskSpec]:
        """``n`` task specs of ``split`` from the configured source."""
        source = self.tasks
        if isinstance(source, str) and source.endswith(".jsonl"):
            source = {"train": source, "test": source}
        if isinstance(source, dict):
            if split not in source:
                raise ValueError(f"MCP env {self.id!r} has no {split!r} task file (has {sorted(source)})")
            raw: list[Any] = read_jsonl_any(self.path(source[split]))
        elif isinstance(source, list):
            raw = list(source)
        else:
            raw = list(resolve(source, self.base_dir)(split, n, seed))
        specs = [t if isinstance(t, MCPTaskSpec) else _task_spec(t, split) for t in raw]
        if not callable(source) and not isinstance(source, str):
            specs = [s for s in specs if s.split == split] or specs
        return specs[:n]

    def reward_fn(self) -> Callable[..., Any] | RewardTool:
        """The reward: a callable ``reward(transcript, call_tool)``, or a :class:`RewardTool`."""
        if isinstance(self.reward, RewardTool):
            return self.reward
        return resolve(self.reward, self.base_dir)


def _task_spec(raw: Any, split: Split) -> MCPTaskSpec:
    if isinstance(raw, Task):
        meta = raw.metadata
        return MCPTaskSpec(
            id=raw.id,
            messages=list(raw.messages),
            arguments=meta.get("arguments", {}),
            answer=raw.answer,
            gold=meta.get("gold", []),
            split=raw.split,
        )
    if not isinstance(raw, dict):
        raise ValueError(f"a task must be a dict or a resrl Task, got {type(raw).__name__}")
    return MCPTaskSpec.model_validate({"split": split, **raw})


def read_jsonl_any(path: Path) -> list[Any]:
    """Task dicts from a JSONL file (MCP task dicts, or resrl tasks written by ``resrl tasks generate``)."""
    import json

    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if lines and "env_id" in lines[0]:
        return list(read_jsonl(path))
    return lines


def resolve(ref: Any, base_dir: str | None = None) -> Callable[..., Any]:
    """A callable, or the object a ``"module:name"`` / ``"file.py:name"`` reference names."""
    if callable(ref):
        return ref
    if not isinstance(ref, str) or ":" not in ref:
        raise ValueError(f"{ref!r} is neither a callable nor a 'module:name' / 'file.py:name' reference")
    where, _, name = ref.rpartition(":")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        if not path.is_file():
            raise FileNotFoundError(f"{path} (named by {ref!r}) does not exist")
        module_name = f"resrl_mcp_user.{path.stem}_{abs(hash(str(path.resolve())))}"
        module = sys.modules.get(module_name)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(module_name, path)
            assert loader_spec is not None and loader_spec.loader is not None
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[module_name] = module
            loader_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    try:
        obj = getattr(module, name)
    except AttributeError:
        raise ValueError(f"{where} has no attribute {name!r} (named by {ref!r})") from None
    if not callable(obj):
        raise ValueError(f"{ref!r} is not callable")
    return obj
