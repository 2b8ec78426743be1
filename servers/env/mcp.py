"""The env server speaks MCP: streamable HTTP at ``/mcp``, so an agent that only knows MCP can play our envs.

Each MCP session holds at most one episode, an ordinary session of the server's :class:`SessionManager` (the
same capacity, timeouts and reaping as ``/v1/sessions``). Tools of an MCP session:

- ``start_episode(env_id, task_id=None, seed=None)``: opens an episode (ending the previous one) and returns
  its opening messages; from then on ``tools/list`` shows the episode's tools too (a ``tools/list_changed``
  notification says so).
- each of the episode's tools: the call is the assistant turn ``{"tool_calls": [that call]}``; the result's
  text is the env's observation, and its structured content carries ``reward``, ``terminated``, ``truncated``.
- ``reply(message)``: an assistant turn of plain text (what ends a request in most envs: the reward follows).
- ``end_episode()``: closes the episode early.

Episodes live in a session, so ``/mcp`` speaks the session-scoped protocol (the ``initialize`` handshake). A
2026-07-28 request, which has no session, is refused with 400, which makes the SDK's ``mode="auto"`` clients
fall back to the handshake by themselves.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from mcp.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from resrl_servers.env.sessions import ApiError, SessionManager

log = logging.getLogger("resrl.server.env.mcp")

CONTROL_TOOLS = ("start_episode", "reply", "end_episode")


@dataclass
class Episode:
    """The episode an MCP session is playing."""

    session_id: str
    env_id: str
    tools: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    total_reward: float = 0.0
    steps: int = 0


def _control_tools(env_ids: list[str]) -> list[types.Tool]:
    start = types.Tool(
        name="start_episode",
        description="Start an episode of a resrl environment (ends the current one). Give a task_id from the "
        "server's task sets, or '<split>/<seed>' (e.g. 'test/3'), or a seed. Returns the opening messages; the "
        "episode's tools then appear in tools/list.",
        input_schema={
            "type": "object",
            "properties": {
                "env_id": {"type": "string", "enum": sorted(env_ids), "description": "environment id"},
                "task_id": {"type": "string", "description": "task id, or '<split>/<seed>'"},
                "seed": {"type": "integer", "minimum": 0, "description": "seed of a generated train task"},
            },
            "required": ["env_id"],
        },
    )
    reply = types.Tool(
        name="reply",
        description="Answer the user in plain text, without a tool call (in most environments this ends the "
        "request and the reward follows).",
        input_schema={
            "type": "object",
            "properties": {"message": {"type": "string", "description": "what to tell the user"}},
            "required": ["message"],
        },
    )
    end = types.Tool(
        name="end_episode",
        description="Close the current episode early.",
        input_schema={"type": "object", "properties": {}},
    )
    return [start, reply, end]


def _mcp_tool(schema: dict[str, Any]) -> types.Tool:
    fn = schema.get("function", {})
    params = dict(fn.get("parameters") or {"type": "object", "properties": {}})
    params.setdefault("type", "object")
    return types.Tool(name=fn["name"], description=fn.get("description") or "", input_schema=params)


def _text(result: str, structured: dict[str, Any], is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=result)], structured_content=structured, is_error=is_error
    )


class MCPEndpoint:
    """The ``/mcp`` endpoint over a :class:`SessionManager`: build it, add :meth:`route` to the app, and
    enter :meth:`run` in the app's lifespan."""

    def __init__(self, manager: SessionManager, env_ids: list[str]) -> None:
        self.manager = manager
        self.env_ids = sorted(env_ids)
        self.episodes: dict[str, Episode] = {}  # MCP session id -> its episode
        self.server: Server[Any] = Server(
            "resrl-env-server",
            instructions="Play resrl environments: call start_episode, then the episode's tools; reply ends a request.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        self.sessions = StreamableHTTPSessionManager(app=self.server)
        self._asgi = StreamableHTTPASGIApp(self.sessions)

    def route(self, path: str = "/mcp") -> Route:
        """The Starlette route serving MCP at ``path`` (GET, POST and DELETE, as streamable HTTP needs)."""
        return Route(path, endpoint=self, methods=["GET", "POST", "DELETE"], include_in_schema=False)

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """The MCP session manager's lifetime (inside the app's lifespan); closes every episode at the end."""
        async with self.sessions.run():
            yield
        for key in list(self.episodes):
            await self._end(key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry (an object, not a function, so Starlette hands it the raw scope)."""
        version = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"mcp-protocol-version"), None)
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            body = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {
                    "code": types.INVALID_REQUEST,
                    "message": f"protocol {version} has no sessions; episodes need the initialize handshake",
                },
            }
            await JSONResponse(body, status_code=400)(scope, receive, send)
            return
        await self._asgi(scope, receive, send)

    # -- handlers -----------------------------------------------------------------------------------------
    @staticmethod
    def _key(ctx: Any) -> str:
        headers = getattr(ctx.request, "headers", None) or {}
        key = headers.get("mcp-session-id")
        if not key:
            raise ValueError("no MCP session id on the request")
        return key

    async def _list_tools(self, ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        tools = _control_tools(self.env_ids)
        episode = self.episodes.get(self._key(ctx))
        if episode is not None and not episode.done:
            tools += [_mcp_tool(s) for s in episode.tools if s.get("function", {}).get("name") not in CONTROL_TOOLS]
        return types.ListToolsResult(tools=tools)

    async def _call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        key = self._key(ctx)
        args = dict(params.arguments or {})
        try:
            if params.name == "start_episode":
                result = await self._start(key, args)
                with contextlib.suppress(Exception):  # a client without a notification stream still lists again
                    await ctx.session.send_tool_list_changed()
                return result
            if params.name == "end_episode":
                ended = await self._end(key)
                return _text("episode closed" if ended else "no episode was running", {"closed": ended})
            episode = self.episodes.get(key)
            if episode is None or episode.done:
                return _text("Error: no episode is running; call start_episode first.", {}, is_error=True)
            if params.name == "reply":
                action: dict[str, Any] = {"role": "assistant", "content": str(args.get("message", ""))}
            elif params.name in {s["function"]["name"] for s in episode.tools}:
                call = {"id": f"call_{episode.steps}", "type": "function"}
                call["function"] = {"name": params.name, "arguments": json.dumps(args)}
                action = {"role": "assistant", "content": "", "tool_calls": [call]}
            else:
                return _text(f"Error: unknown tool {params.name!r}", {}, is_error=True)
            return await self._step(key, episode, action)
        except ApiError as exc:
            if exc.kind in ("env_error", "step_timeout", "session_closed"):
                self.episodes.pop(key, None)
            return _text(f"Error ({exc.kind}): {exc.message}", {"error": exc.kind}, is_error=True)

    async def _start(self, key: str, args: dict[str, Any]) -> types.CallToolResult:
        env_id = args.get("env_id")
        if env_id not in self.env_ids:
            return _text(f"Error: unknown env_id {env_id!r}; hosted: {', '.join(self.env_ids)}", {}, is_error=True)
        seed = args.get("seed")
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            return _text("Error: seed must be a non-negative integer", {}, is_error=True)
        await self._end(key)
        # sessions that went away without end_episode: their env sessions were reaped, forget them too
        for stale in [k for k, e in self.episodes.items() if e.done or e.session_id not in self.manager.sessions]:
            del self.episodes[stale]
        session, observation, info = await self.manager.create(
            env_id, task_id=args.get("task_id"), seed=seed, env_kwargs={"tool_format": "openai"}
        )
        episode = Episode(session_id=session.id, env_id=env_id, tools=list(info.get("tools") or []))
        self.episodes[key] = episode
        text = "\n\n".join(f"[{m.get('role')}] {m.get('content') or ''}" for m in observation)
        names = ", ".join(s["function"]["name"] for s in episode.tools) or "none"
        structured = {"observation": observation, "task_id": info.get("task_id"), "env_id": env_id}
        if info.get("infra_error"):
            structured["infra_error"] = info["infra_error"]
        return _text(f"{text}\n\n(episode tools: {names})", structured)

    async def _step(self, key: str, episode: Episode, action: dict[str, Any]) -> types.CallToolResult:
        observation, reward, terminated, truncated, info = await self.manager.step(episode.session_id, action)
        episode.steps += 1
        episode.total_reward += float(reward)
        parts = [str(m.get("content") or "") for m in observation]
        structured: dict[str, Any] = {
            "observation": observation,
            "reward": float(reward),
            "total_reward": episode.total_reward,
            "terminated": terminated,
            "truncated": truncated,
        }
        for name in ("reward_components", "infra_error", "parse_error", "tool_errors"):
            if info.get(name):
                structured[name] = info[name]
        if terminated or truncated:
            episode.done = True
            await self.manager.close(episode.session_id)
            parts.append(f"[episode over: reward {episode.total_reward:g}]")
        is_error = bool(info.get("tool_errors") or info.get("parse_error") or info.get("infra_error"))
        return _text("\n".join(p for p in parts if p), structured, is_error=is_error)

    async def _end(self, key: str) -> bool:
        episode = self.episodes.pop(key, None)
        if episode is None:
            return False
        if episode.done:
            return False
        await self.manager.close(episode.session_id)
        return True
