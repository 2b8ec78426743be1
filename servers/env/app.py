"""The env server's FastAPI app: ``/v1/envs``, ``/v1/sessions``, ``/healthz``, ``/metrics``, and MCP at ``/mcp``.

``create_app(ServerConfig(...))`` builds it; ``resrl serve env`` runs it under uvicorn. See
``resrl_servers.env.models`` for the bodies and ``resrl_servers.env.sessions`` for the session rules.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from resrl.core.registry import EnvSpec, list_envs
from resrl_servers.env.fastlane import StepFastLane
from resrl_servers.env.mcp import MCPEndpoint
from resrl_servers.env.metrics import ServerMetrics
from resrl_servers.env.models import (
    Closed,
    CreateSession,
    EnvInfo,
    EnvList,
    ErrorBody,
    ErrorDetail,
    Health,
    SessionCreated,
    StepRequest,
    StepResult,
)
from resrl_servers.env.sessions import ApiError, SessionLimits, SessionManager
from resrl_servers.env.taskstore import TaskStore
from resrl_servers.env.ws import serve_socket

log = logging.getLogger("resrl.server.env")

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        404: "unknown env, session or task",
        409: "the session's episode is over, or it was closed meanwhile",
        422: "invalid request body",
        429: "at capacity: retry after the Retry-After header's seconds",
        500: "the env raised (the session is closed; the server is fine)",
        504: "the env overran the step timeout (the session is closed)",
    }.items()
}


class ServerConfig(SessionLimits):
    """What to host and the session limits."""

    env_patterns: list[str] | None = Field(None, description="globs over env ids; None hosts all")
    task_files: list[str] = Field(default_factory=list)


def hosted_specs(patterns: list[str] | None) -> list[EnvSpec]:
    """The registered specs matching any of ``patterns`` (all of them for None)."""
    if not patterns:
        return list_envs()
    found: dict[str, EnvSpec] = {}
    for pattern in patterns:
        matched = list_envs(pattern)
        if not matched:
            raise ValueError(f"no registered environment matches {pattern!r}; see `resrl envs list`")
        found.update((s.id, s) for s in matched)
    return [found[k] for k in sorted(found)]


def _describe(spec: EnvSpec) -> EnvInfo:
    tools: list[dict[str, Any]] = []
    try:  # tools come with tasks; a sample task shows the usual set
        tools = list(spec.env_class().generate_tasks("train", 1, 0)[0].tools)
    except Exception as exc:
        log.warning("could not sample a task of %s to list its tools: %r", spec.id, exc)
    return EnvInfo(id=spec.id, description=spec.description, multi_turn=spec.multi_turn, tags=spec.tags, tools=tools)


def _error(exc: ApiError) -> JSONResponse:
    body = ErrorBody(
        error=ErrorDetail(
            kind=exc.kind, message=exc.message, session_id=exc.session_id, retry_after_s=exc.retry_after_s
        )
    )
    headers = {"Retry-After": str(max(1, round(exc.retry_after_s)))} if exc.retry_after_s is not None else None
    return JSONResponse(body.model_dump(exclude_none=True), status_code=exc.status, headers=headers)


def create_app(config: ServerConfig | None = None) -> FastAPI:
    """The env server app for ``config`` (defaults: every registered env, default limits)."""
    config = config or ServerConfig()
    specs = hosted_specs(config.env_patterns)
    envs = EnvList(envs=[_describe(s) for s in specs])
    metrics = ServerMetrics()
    limits = SessionLimits(**config.model_dump(include=set(SessionLimits.model_fields)))
    manager = SessionManager({s.id for s in specs}, limits, metrics, TaskStore(config.task_files))
    mcp = MCPEndpoint(manager, [s.id for s in specs])

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager.start()
        async with mcp.run():
            # everything loaded so far lives for the whole run: keep it out of the collector's full scans, which
            # otherwise walk every FastAPI/pydantic object and show up as tens of milliseconds of step tail latency
            gc.freeze()
            yield
        await manager.stop()

    app = FastAPI(
        title="resrl env server",
        version="1",
        description="Sessions over registered resrl chat environments (gymnasium reset/step over HTTP).",
        lifespan=lifespan,
    )
    # steps skip FastAPI's per-request machinery; the route below documents them and answers invalid bodies
    app.add_middleware(StepFastLane, manager=manager, metrics=metrics, render_error=_error)
    app.state.envs = envs.envs
    app.state.sessions = manager
    app.state.metrics = metrics
    app.router.routes.append(mcp.route("/mcp"))  # MCP streamable HTTP (see resrl_servers.env.mcp)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        metrics.errors.labels(exc.kind).inc()
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.errors.labels("invalid_request").inc()
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        return _error(ApiError(422, "invalid_request", f"invalid request: {problems}"))

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> Health:
        """Liveness and load."""
        return Health(envs=len(envs.envs), sessions=len(manager.sessions), capacity=limits.max_sessions)

    @app.get("/metrics", response_class=Response, tags=["ops"])
    async def prometheus() -> Response:
        """Prometheus text exposition."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/envs", response_model=EnvList, tags=["envs"])
    async def get_envs() -> EnvList:
        """Hosted environments with their descriptions and tool schemas."""
        return envs

    @app.post("/v1/sessions", response_model=SessionCreated, responses=_ERRORS, tags=["sessions"])
    async def create_session(body: CreateSession) -> SessionCreated:
        """Open a session on an env and reset it on the given task, task id, or seed."""
        session, observation, info = await manager.create(
            body.env_id, task=body.task, task_id=body.task_id, seed=body.seed, env_kwargs=body.options.kwargs()
        )
        return SessionCreated(session_id=session.id, env_id=session.env_id, observation=observation, info=info)

    @app.post("/v1/sessions/{session_id}/step", response_model=StepResult, responses=_ERRORS, tags=["sessions"])
    async def step_session(session_id: str, body: StepRequest) -> StepResult:
        """Play one assistant turn. A malformed turn is the model's error: 200 with an error observation."""
        action = body.action if isinstance(body.action, str) else body.action.model_dump(exclude_none=True)
        observation, reward, terminated, truncated, info = await manager.step(session_id, action)
        return StepResult(observation=observation, reward=reward, terminated=terminated, truncated=truncated, info=info)

    @app.delete("/v1/sessions/{session_id}", response_model=Closed, responses=_ERRORS, tags=["sessions"])
    async def delete_session(session_id: str) -> Closed:
        """Close a session and free its slot."""
        if not await manager.close(session_id):
            manager.get(session_id)  # raises the typed 404
        return Closed(session_id=session_id)

    @app.websocket("/v1/ws")
    async def ws_sessions(ws: WebSocket) -> None:
        """The session API over one WebSocket (see ``resrl_servers.env.ws``)."""
        await serve_socket(ws, manager, metrics)

    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        # the hosted ids are known only now: list them in the schema so clients and fuzzers see them
        schema = build_openapi()
        if envs.envs:
            env_id = schema["components"]["schemas"]["CreateSession"]["properties"]["env_id"]
            env_id["enum"] = sorted(e.id for e in envs.envs)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
