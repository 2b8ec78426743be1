"""``/v1/ws``: the session API over one WebSocket, for clients that step fast (no HTTP per step).

One connection holds at most one session. Messages are JSON objects with an ``op``:
``{"op": "reset", <POST /v1/sessions body>}`` → the ``SessionCreated`` body (a previous session is closed);
``{"op": "step", "action": ...}`` → the ``StepResult`` body; ``{"op": "close"}`` → the ``Closed`` body.
Errors come back as the ``ErrorBody`` of the HTTP API (with its ``status``) and the connection stays open;
the session is closed when the socket goes away.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from resrl_servers.env.metrics import ServerMetrics
from resrl_servers.env.models import CreateSession, StepRequest
from resrl_servers.env.sessions import ApiError, SessionManager


class WsReset(CreateSession):
    """Open (or replace) this connection's session."""

    op: Literal["reset"]


class WsStep(StepRequest):
    """Step this connection's session."""

    op: Literal["step"]


class WsClose(BaseModel):
    """Close this connection's session."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["close"]


_MESSAGE: TypeAdapter[Any] = TypeAdapter(Annotated[WsReset | WsStep | WsClose, Field(discriminator="op")])


def _error(exc: ApiError) -> str:
    detail = {"kind": exc.kind, "message": exc.message}
    if exc.session_id:
        detail["session_id"] = exc.session_id
    return json.dumps({"status": exc.status, "error": detail})


async def serve_socket(ws: WebSocket, manager: SessionManager, metrics: ServerMetrics) -> None:
    """Run one connection until the client goes away."""
    await ws.accept()
    session_id: str | None = None
    try:
        while True:
            raw = await ws.receive_text()
            try:
                message = _MESSAGE.validate_json(raw)
                reply, session_id = await _handle(message, manager, session_id)
            except ValidationError as exc:
                metrics.errors.labels("invalid_request").inc()
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                reply = _error(ApiError(422, "invalid_request", f"invalid message: {where}: {first['msg']}"))
            except ApiError as exc:
                metrics.errors.labels(exc.kind).inc()
                if exc.kind in ("env_error", "step_timeout", "unknown_session"):
                    session_id = None
                reply = _error(exc)
            await ws.send_text(reply)
    except WebSocketDisconnect:
        pass
    finally:
        if session_id is not None:
            await manager.close(session_id)


async def _handle(message: Any, manager: SessionManager, session_id: str | None) -> tuple[str, str | None]:
    if isinstance(message, WsReset):
        if session_id is not None:
            await manager.close(session_id)
            session_id = None
        session, observation, info = await manager.create(
            message.env_id,
            task=message.task,
            task_id=message.task_id,
            seed=message.seed,
            env_kwargs=message.options.kwargs(),
        )
        body = {"session_id": session.id, "env_id": session.env_id, "observation": observation, "info": info}
        return json.dumps(body, default=str), session.id
    if session_id is None:
        raise ApiError(409, "session_closed", "no session on this connection: send a reset first")
    if isinstance(message, WsStep):
        action = message.action if isinstance(message.action, str) else message.action.model_dump(exclude_none=True)
        observation, reward, terminated, truncated, info = await manager.step(session_id, action)
        body = {
            "observation": observation,
            "reward": float(reward),
            "terminated": bool(terminated),
            "truncated": bool(truncated),
            "info": info,
        }
        return json.dumps(body, default=str), session_id
    await manager.close(session_id)
    return json.dumps({"session_id": session_id, "closed": True}), None
