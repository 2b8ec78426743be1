"""A small stateful ticket desk as an MCP server (the ``mcp`` SDK's MCPServer, formerly FastMCP).

Run it over stdio (``python server.py``, what the env file does: one process per episode) or streamable HTTP
(``python server.py --http --port 8765``: one server, a session per episode). State lives per MCP session, so
both transports give every episode a desk of its own. ``setup`` fills the desk from a task's arguments and
``grade`` compares it with the expected end state; the env file hides both from the model.
"""

from __future__ import annotations

import argparse
from collections import OrderedDict
from typing import Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

Priority = Literal["low", "normal", "high", "urgent"]


class Ticket(BaseModel):
    """One ticket on the desk."""

    id: str
    title: str
    status: Literal["open", "closed"] = "open"
    priority: Priority = "normal"
    assignee: str | None = None
    resolution: str | None = None


class Desk(BaseModel):
    """Everything one session's tools act on."""

    tickets: dict[str, Ticket] = {}
    agents: list[str] = []
    initial: dict[str, Ticket] = {}


server = MCPServer("ticket-desk", instructions="A help-desk ticket queue.")
_desks: OrderedDict[str, Desk] = OrderedDict()
MAX_DESKS = 4096  # an HTTP server is never told a session ended: forget the oldest desks


def session_key(ctx: Context) -> str:
    """Which session is calling: the streamable-HTTP session id, or the one stdio session of this process."""
    return (ctx.headers or {}).get("mcp-session-id", "stdio")


def desk(ctx: Context) -> Desk:
    """The desk of the calling session (created empty on first use)."""
    key = session_key(ctx)
    if key not in _desks:
        _desks[key] = Desk()
        while len(_desks) > MAX_DESKS:
            _desks.popitem(last=False)
    return _desks[key]


def _ticket(ctx: Context, ticket_id: str) -> Ticket:
    found = desk(ctx).tickets.get(ticket_id)
    if found is None:
        raise ToolError(f"no ticket {ticket_id!r}; list_tickets shows the ids")
    return found


@server.tool()
def setup(tickets: list[dict[str, Any]], agents: list[str], seed: int, ctx: Context) -> str:
    """Fill this session's desk from a task (hidden from the model)."""
    current = desk(ctx)
    current.tickets = {t["id"]: Ticket.model_validate(t) for t in tickets}
    current.initial = {k: v.model_copy() for k, v in current.tickets.items()}
    current.agents = list(agents)
    return f"desk ready: {len(tickets)} tickets, seed {seed}"


@server.tool()
def list_tickets(ctx: Context, status: Literal["open", "closed", "all"] = "open") -> str:
    """List tickets, one per line: id | status | priority | assignee | title.

    Args:
        status: which tickets to list: open, closed or all.
    """
    rows = [
        f"{t.id} | {t.status} | {t.priority} | {t.assignee or '-'} | {t.title}"
        for t in desk(ctx).tickets.values()
        if status == "all" or t.status == status
    ]
    return "\n".join(rows) or f"no {status} tickets"


@server.tool()
def list_agents(ctx: Context) -> list[str]:
    """The support agents tickets can be assigned to."""
    return list(desk(ctx).agents)


@server.tool()
def assign_ticket(ticket_id: str, agent: str, ctx: Context) -> str:
    """Assign a ticket to a support agent.

    Args:
        ticket_id: the ticket's id, e.g. T-104.
        agent: an agent's name, as list_agents gives it.
    """
    ticket = _ticket(ctx, ticket_id)
    if agent not in desk(ctx).agents:
        raise ToolError(f"no agent {agent!r}; list_agents shows who can take tickets")
    ticket.assignee = agent
    return f"{ticket_id} assigned to {agent}"


@server.tool()
def set_priority(ticket_id: str, priority: Priority, ctx: Context) -> str:
    """Change a ticket's priority.

    Args:
        ticket_id: the ticket's id.
        priority: low, normal, high or urgent.
    """
    _ticket(ctx, ticket_id).priority = priority
    return f"{ticket_id} priority is now {priority}"


@server.tool()
def close_ticket(ticket_id: str, resolution: Literal["fixed", "duplicate", "wont_fix"], ctx: Context) -> str:
    """Close a ticket.

    Args:
        ticket_id: the ticket's id.
        resolution: fixed, duplicate or wont_fix.
    """
    ticket = _ticket(ctx, ticket_id)
    if ticket.status == "closed":
        raise ToolError(f"{ticket_id} is already closed")
    ticket.status, ticket.resolution = "closed", resolution
    return f"{ticket_id} closed"


@server.tool()
def grade(expected: dict[str, dict[str, Any]], ctx: Context) -> dict[str, float]:
    """Compare the desk with the expected end state (hidden from the model).

    ``expected`` maps ticket ids to the field values they must have; every other ticket must be untouched.
    """
    current = desk(ctx)
    checks = [
        tid in current.tickets and getattr(current.tickets[tid], field) == value
        for tid, fields in expected.items()
        for field, value in fields.items()
    ]
    untouched = all(t == current.initial.get(tid) for tid, t in current.tickets.items() if tid not in expected)
    met = sum(checks) / len(checks) if checks else 1.0
    return {"reward": float(met == 1.0 and untouched), "fields_met": met, "others_untouched": float(untouched)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if args.http:
        server.run("streamable-http", host=args.host, port=args.port)
    else:
        server.run()


if __name__ == "__main__":
    main()
