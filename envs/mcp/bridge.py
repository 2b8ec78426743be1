"""A blocking handle on one MCP client session, for synchronous gymnasium envs.

The ``mcp`` SDK is async; our envs are not. Every session runs on one shared event loop in a daemon thread
(:func:`mcp_loop`), and :class:`MCPConnection` bridges each call with ``run_coroutine_threadsafe`` under a
timeout. The SDK's ``Client`` must be entered and exited in the same task (anyio cancel scopes), so each
connection owns one *runner* task that opens the client, waits until it is told to close, and closes it;
calls are separate tasks on the same loop that race the runner (a runner that ends means the server went away).

Every failure that is not the model's fault (the server does not start, crashes, times out, or breaks the
protocol) raises :class:`MCPInfraError`, whose message names the cause; the env turns it into ``infra_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from pydantic import BaseModel, Field

log = logging.getLogger("resrl.envs.mcp")

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()

# JSON-RPC codes that mean the *caller's* request was bad (the model's arguments), not that the server failed
MODEL_ERROR_CODES = frozenset({-32602})  # INVALID_PARAMS


class MCPInfraError(RuntimeError):
    """An MCP session failed for a reason that is ours, not the model's; ``kind`` is one of ``start``,
    ``timeout``, ``crash`` or ``protocol``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"mcp {kind}: {message}")
        self.kind = kind


class ToolOutcome(BaseModel):
    """What one ``tools/call`` returned: the text the model reads, and whether the tool reported an error."""

    text: str
    is_error: bool = False
    structured: Any = None


class ServerTarget(BaseModel):
    """Where an MCP server lives: a command to start over stdio, or a streamable-HTTP URL."""

    command: list[str] | None = Field(None, description="argv of a stdio server, started once per session")
    url: str | None = Field(None, description="streamable-HTTP endpoint, e.g. http://127.0.0.1:8000/mcp")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment of the stdio process")
    cwd: str | None = None

    def describe(self) -> str:
        """The command line or URL, for messages."""
        return " ".join(self.command) if self.command else str(self.url)


def mcp_loop() -> asyncio.AbstractEventLoop:
    """The event loop every MCP session of this process runs on (started on first use, in a daemon thread)."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="resrl-mcp-loop", daemon=True).start()
            _loop = loop
        return _loop


def run_on_loop(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    """Run ``coro`` on the MCP loop and wait for it; cancel it and raise ``TimeoutError`` after ``timeout``."""
    future = asyncio.run_coroutine_threadsafe(coro, mcp_loop())
    try:
        return future.result(timeout)
    except TimeoutError:
        future.cancel()
        raise


def tool_text(result: Any) -> str:
    """The text of a ``CallToolResult``: its text blocks joined, other blocks named, structured data as JSON."""
    parts = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource" and getattr(block.resource, "text", None) is not None:
            parts.append(block.resource.text)
        else:
            parts.append(f"[{kind or 'content'} omitted]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, sort_keys=True, default=str)
    return "\n".join(parts)


class MCPConnection:
    """One client session with one MCP server (a fresh process for stdio, a fresh session for HTTP).

    ``open()`` connects (within ``start_timeout_s``), ``list_tools()`` and ``call_tool()`` block for at most
    ``timeout_s`` each, ``close()`` ends the session and, for stdio, stops the process (the SDK closes its
    stdin, then terminates and kills the process tree). A stdio server whose parent dies sees its stdin close.
    """

    def __init__(self, target: ServerTarget, *, timeout_s: float = 30.0, start_timeout_s: float = 30.0) -> None:
        if bool(target.command) == bool(target.url):
            raise ValueError("an MCP server needs exactly one of 'command' (stdio) or 'url' (streamable HTTP)")
        self.target = target
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self._client: Any = None
        self._runner: asyncio.Task | None = None
        self._closing: asyncio.Event | None = None
        self._stderr: Any = None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def open(self) -> None:
        """Start the server session; :class:`MCPInfraError` (``start``) if it is not up in time."""
        try:
            run_on_loop(self._open(), self.start_timeout_s)
        except TimeoutError:
            self.close()
            raise MCPInfraError(
                "start", f"{self.target.describe()} did not complete the handshake within {self.start_timeout_s}s"
            ) from None
        except MCPInfraError:
            self.close()
            raise

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._closing = asyncio.Event()
        self._runner = loop.create_task(self._run(ready))
        await ready

    async def _run(self, ready: asyncio.Future[None]) -> None:
        from mcp import Client

        try:
            # the initialize handshake ("legacy" mode): episode state lives in a session, and the 2026-07-28
            # protocol has no sessions (each HTTP request stands alone)
            async with Client(self._transport(), mode="legacy", cache=None, read_timeout_seconds=self.timeout_s) as c:
                self._client = c
                ready.set_result(None)
                await self._closing.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(MCPInfraError("start", f"{self.target.describe()}: {_describe(exc)}"))
            if not isinstance(exc, Exception):
                raise
            log.debug("mcp session with %s ended: %s", self.target.describe(), _describe(exc))
        finally:
            self._client = None

    def _transport(self) -> Any:
        from mcp.client.stdio import StdioServerParameters, stdio_client
        from mcp.client.streamable_http import streamable_http_client

        if self.target.url:
            return streamable_http_client(self.target.url)
        # the server's stderr goes to a file: its last lines explain a crash in the infra_error
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115 (closed by close())
        command, *args = self.target.command or []
        params = StdioServerParameters(command=command, args=args, env=self.target.env or None, cwd=self.target.cwd)
        return stdio_client(params, errlog=self._stderr)

    def close(self) -> None:
        """End the session (idempotent); waits a few seconds for the process to go, never forever."""
        runner, closing = self._runner, self._closing
        self._runner = None
        if runner is not None and closing is not None:
            with contextlib.suppress(Exception):
                run_on_loop(_stop(runner, closing, started=self._client is not None), 10.0)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    @property
    def alive(self) -> bool:
        """Whether the session is open and its runner has not ended."""
        return self._runner is not None and not self._runner.done() and self._client is not None

    # -- calls ----------------------------------------------------------------------------------------------
    def list_tools(self) -> list[Any]:
        """Every tool the server lists (all pages), as ``mcp.types.Tool``."""

        async def listing() -> list[Any]:
            tools, cursor = [], None
            for _ in range(100):  # a server whose cursor never ends must not hang us
                page = await self._client.list_tools(cursor=cursor)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    break
            return tools

        return self._call("tools/list", listing)

    def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> ToolOutcome:
        """Call ``name``; a tool error comes back as ``is_error``, a request the server rejects as invalid
        params as an error outcome too (the model's arguments), everything else raises :class:`MCPInfraError`."""
        from mcp import MCPError

        async def call() -> ToolOutcome:
            try:
                result = await self._client.call_tool(name, arguments or {})
            except MCPError as exc:
                if exc.code in MODEL_ERROR_CODES:
                    return ToolOutcome(text=f"Error: {exc.error.message}", is_error=True)
                raise
            return ToolOutcome(
                text=tool_text(result), is_error=bool(result.is_error), structured=result.structured_content
            )

        return self._call(f"tools/call {name}", call)

    def _call(self, what: str, make: Any) -> Any:
        if not self.alive:
            raise MCPInfraError("crash", f"{self.target.describe()}: the session is closed ({self._stderr_tail()})")
        try:
            return run_on_loop(self._race(make()), self.timeout_s + 1.0)
        except TimeoutError:
            raise MCPInfraError("timeout", f"{what} got no answer within {self.timeout_s}s") from None
        except MCPInfraError:
            raise
        except Exception as exc:
            kind = "crash" if not self.alive or "closed" in str(exc).lower() else "protocol"
            tail = f" ({self._stderr_tail()})" if kind == "crash" else ""
            raise MCPInfraError(kind, f"{what} failed: {_describe(exc)}{tail}") from None

    async def _race(self, coro: Coroutine[Any, Any, T]) -> T:
        """``coro``'s result, unless the session's runner ends first (the server went away)."""
        call = asyncio.ensure_future(coro)
        assert self._runner is not None
        done, _ = await asyncio.wait({call, self._runner}, timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED)
        if call in done:
            return call.result()
        call.cancel()
        if self._runner in done:
            raise MCPInfraError("crash", f"{self.target.describe()}: the session ended ({self._stderr_tail()})")
        raise TimeoutError

    def _stderr_tail(self, chars: int = 400) -> str:
        if self._stderr is None:
            return "no stderr"
        with contextlib.suppress(Exception):
            self._stderr.flush()
            self._stderr.seek(0)
            text = self._stderr.read().strip()
            return f"server stderr: {text[-chars:]}" if text else "server stderr empty"
        return "stderr unreadable"


async def _stop(runner: asyncio.Task, closing: asyncio.Event, *, started: bool) -> None:
    closing.set()
    if not started:  # still in the handshake: nothing to close politely (the SDK's process cleanup is shielded)
        runner.cancel()
    try:
        await asyncio.wait_for(asyncio.shield(runner), 8.0)
    except (TimeoutError, asyncio.CancelledError):
        runner.cancel()
    except Exception as exc:
        log.debug("mcp session close: %s", _describe(exc))


def _describe(exc: BaseException) -> str:
    """One line naming the innermost useful exception (the SDK wraps failures in exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
