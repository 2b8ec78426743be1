"""Request and response bodies of the env server API (``/v1``): the wire contract, shared with RemoteEnv."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from resrl.core.task import Task

ErrorKind = Literal[
    "unknown_env",
    "unknown_session",
    "unknown_task",
    "invalid_request",
    "session_closed",
    "env_error",
    "step_timeout",
    "capacity",
]
"""Every typed error the server returns; ``env_error``/``step_timeout`` close the session."""


class ToolSchema(BaseModel):
    """An OpenAI function schema (``{"type": "function", "function": {...}}``)."""

    model_config = ConfigDict(extra="allow")

    type: str = "function"
    function: dict[str, Any]


class EnvInfo(BaseModel):
    """One hosted environment as ``GET /v1/envs`` lists it."""

    id: str
    description: str = ""
    multi_turn: bool = False
    tags: list[str] = Field(default_factory=list)
    tools: list[dict[str, Any]] = Field(
        default_factory=list, description="tool schemas offered by a sample task (tasks may differ)"
    )


class EnvList(BaseModel):
    """Response of ``GET /v1/envs``."""

    envs: list[EnvInfo]


class EnvOptions(BaseModel):
    """Constructor settings every :class:`resrl.ChatEnv` accepts; unset ones keep the env's defaults."""

    model_config = ConfigDict(extra="forbid")

    tool_format: Literal["hermes", "openai", "pythonic", "llama3_json", "mistral"] | None = None
    max_steps: int | None = Field(None, ge=1, le=10_000)

    def kwargs(self) -> dict[str, Any]:
        """The settings given, as constructor keyword arguments."""
        return self.model_dump(exclude_none=True)


class AssistantTurn(BaseModel):
    """An assistant message in OpenAI form (``content`` and/or structured ``tool_calls``)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class CreateSession(BaseModel):
    """Body of ``POST /v1/sessions``: an env and at most one of ``task`` / ``task_id`` (else seeded)."""

    model_config = ConfigDict(extra="forbid")

    env_id: str = Field(min_length=1, max_length=200)
    task: Task | None = Field(None, description="a full task to play")
    task_id: str | None = Field(
        None,
        max_length=200,
        description="a task from a loaded task set, or '<split>/<seed>' generated on demand (e.g. 'test/7')",
    )
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    options: EnvOptions = Field(default_factory=lambda: EnvOptions(), description="per-session env settings")


class SessionCreated(BaseModel):
    """Response of ``POST /v1/sessions``: the reset's observation and info."""

    session_id: str
    env_id: str
    observation: list[dict[str, Any]]
    info: dict[str, Any]


class StepRequest(BaseModel):
    """Body of ``POST /v1/sessions/{id}/step``: the assistant turn, raw text or an OpenAI message."""

    model_config = ConfigDict(extra="forbid")

    action: str | AssistantTurn


class StepResult(BaseModel):
    """Response of a step: the gymnasium five-tuple as an object."""

    observation: list[dict[str, Any]]
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]


class Closed(BaseModel):
    """Response of ``DELETE /v1/sessions/{id}``."""

    session_id: str
    closed: bool = True


class ErrorDetail(BaseModel):
    """What went wrong, typed by ``kind``."""

    kind: ErrorKind
    message: str
    session_id: str | None = None
    retry_after_s: float | None = None


class ErrorBody(BaseModel):
    """Every non-2xx response of the ``/v1`` API."""

    error: ErrorDetail


class Health(BaseModel):
    """Response of ``GET /healthz``."""

    status: Literal["ok"] = "ok"
    envs: int
    sessions: int
    capacity: int
