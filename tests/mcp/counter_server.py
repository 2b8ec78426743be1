"""A tiny stateful MCP server the MCP tests start over stdio or streamable HTTP.

State (a counter) lives per session. ``setup`` and ``grade`` are meant to be hidden; ``pid`` lets a test kill
the process mid-episode; ``hang`` never answers. ``python counter_server.py --http PORT`` serves HTTP;
``python counter_server.py --mute`` reads stdin and never answers anything (a server stuck at start).
"""

from __future__ import annotations

import os
import sys
import time

if "--mute" in sys.argv:  # never answers, not even the handshake
    while sys.stdin.readline():
        pass
    time.sleep(3600)

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("counter")
counters: dict[str, int] = {}


def key(ctx: Context) -> str:
    return (ctx.headers or {}).get("mcp-session-id", "stdio")


@server.tool()
def setup(start: int, ctx: Context) -> str:
    """Start the counter at ``start``."""
    counters[key(ctx)] = start
    return "ready"


@server.tool()
def add(n: int, ctx: Context) -> str:
    """Add n to the counter; returns the new total.

    Args:
        n: a positive amount.
    """
    if n <= 0:
        raise ToolError("n must be positive")
    counters[key(ctx)] = counters.get(key(ctx), 0) + n
    return str(counters[key(ctx)])


@server.tool()
def total(ctx: Context) -> str:
    """The counter's value."""
    return str(counters.get(key(ctx), 0))


@server.tool()
def grade(target: int, ctx: Context) -> dict[str, float]:
    """1 if the counter equals target."""
    return {"reward": float(counters.get(key(ctx), 0) == target)}


@server.tool()
def pid() -> int:
    """This process's id."""
    return os.getpid()


@server.tool()
async def hang() -> str:
    """Never returns."""
    await anyio.sleep(3600)
    return "unreachable"


if __name__ == "__main__":
    if "--http" in sys.argv:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[sys.argv.index("--http") + 1]))
    else:
        server.run()
