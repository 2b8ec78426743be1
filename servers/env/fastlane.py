"""The step fast lane: ``POST /v1/sessions/{id}/step`` served as plain ASGI, in front of FastAPI.

A step is the one request clients send in a tight loop, and for a fast env FastAPI's per-request machinery
(dependency solving, validating the response model again, encoding it) costs several times the step itself.
This lane parses the body straight into :class:`StepRequest`, steps the session and writes
:class:`StepResult` as JSON — the same models, the same status codes and error bodies as the FastAPI route,
which stays the documented operation in the OpenAPI schema. A body that does not validate is handed on to that
route untouched, so invalid requests keep FastAPI's canonical 422 handling; every other path goes straight on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import ValidationError

from resrl_servers.env.metrics import ServerMetrics
from resrl_servers.env.models import StepRequest, StepResult
from resrl_servers.env.sessions import ApiError, SessionManager

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_PREFIX, _SUFFIX = "/v1/sessions/", "/step"
_JSON_HEADERS = [(b"content-type", b"application/json")]


def _session_of(scope: Scope) -> str | None:
    """The session id if this is a step request, else None."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    session_id = path[len(_PREFIX) : -len(_SUFFIX)]
    return session_id if session_id and "/" not in session_id else None


class StepFastLane:
    """ASGI middleware: steps are answered here; everything else goes to the wrapped app."""

    def __init__(
        self,
        app: ASGIApp,
        manager: SessionManager,
        metrics: ServerMetrics,
        render_error: Callable[[ApiError], Any],
    ) -> None:
        self.app = app
        self.manager = manager
        self.metrics = metrics
        self.render_error = render_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = _session_of(scope)
        if session_id is None:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            request = StepRequest.model_validate_json(body)
        except ValidationError:
            await self.app(scope, _replay(body, receive), send)
            return
        action = request.action if isinstance(request.action, str) else request.action.model_dump(exclude_none=True)
        try:
            observation, reward, terminated, truncated, info = await self.manager.step(session_id, action)
        except ApiError as exc:
            self.metrics.errors.labels(exc.kind).inc()
            await self.render_error(exc)(scope, receive, send)
            return
        result = StepResult(
            observation=observation, reward=reward, terminated=terminated, truncated=truncated, info=info
        )
        # fallback=str: an env's info may carry values JSON has no type for (the WebSocket path does the same)
        payload = result.model_dump_json(fallback=str).encode()
        headers = [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive callable that yields the already-read body once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
