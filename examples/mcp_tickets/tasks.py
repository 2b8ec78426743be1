"""The ticket desk's task generator: seeded, with disjoint train and test splits.

Each task is a desk of 3-6 tickets and one request about one of them, named by its title (so the model must
list the tickets to find the id, then act). Train and test draw titles and agents from disjoint halves of the
pools. The task's ``arguments`` go to the server's hidden ``setup`` tool; ``answer`` is what ``grade`` checks.
"""

from __future__ import annotations

import random
from typing import Any

TITLES = [
    "VPN drops every hour",
    "Printer on floor 3 jams",
    "Laptop will not boot",
    "Password reset loop",
    "Email attachments bounce",
    "Monitor flickers",
    "Shared drive is read-only",
    "Badge reader rejects card",
    "Calendar invites vanish",
    "Wi-Fi slow in room B",
    "Keyboard keys stick",
    "Software licence expired",
    "Phone headset crackles",
    "Projector shows no signal",
    "Backup job failed",
    "Chat app crashes on start",
    "Cannot join video calls",
    "Disk almost full",
    "Timesheet page errors",
    "New hire needs an account",
]
AGENTS = ["maria", "omar", "lena", "tariq", "sofia", "kenji", "ines", "david", "amara", "piotr"]
PRIORITIES = ["low", "normal", "high", "urgent"]
RESOLUTIONS = ["fixed", "duplicate", "wont_fix"]


def _half(pool: list[str], split: str) -> list[str]:
    return pool[0::2] if split == "train" else pool[1::2]


def make_task(split: str, seed: int) -> dict[str, Any]:
    """The task of ``split`` for ``seed``."""
    rng = random.Random(f"mcp_tickets/{split}/{seed}")
    titles = rng.sample(_half(TITLES, split), rng.randint(3, 6))
    agents = rng.sample(_half(AGENTS, split), 3)
    first = rng.randint(100, 900)
    tickets = [
        {"id": f"T-{first + i}", "title": title, "priority": rng.choice(PRIORITIES[:3])}
        for i, title in enumerate(titles)
    ]
    target = rng.choice(tickets)
    kind = rng.choice(["assign", "close", "priority"])
    if kind == "assign":
        agent = rng.choice(agents)
        prompt = f'Please assign the ticket about "{target["title"]}" to {agent}.'
        call = {"name": "assign_ticket", "arguments": {"ticket_id": target["id"], "agent": agent}}
        expected = {"assignee": agent}
    elif kind == "close":
        resolution = rng.choice(RESOLUTIONS)
        prompt = f'Close the ticket about "{target["title"]}" as {resolution}.'
        call = {"name": "close_ticket", "arguments": {"ticket_id": target["id"], "resolution": resolution}}
        expected = {"status": "closed", "resolution": resolution}
    else:
        priority = rng.choice([p for p in PRIORITIES if p != target["priority"]])
        prompt = f'Set the priority of the ticket about "{target["title"]}" to {priority}.'
        call = {"name": "set_priority", "arguments": {"ticket_id": target["id"], "priority": priority}}
        expected = {"priority": priority}
    return {
        "id": f"mcp_tickets/{split}/{seed}",
        "prompt": prompt,
        "arguments": {"tickets": tickets, "agents": agents, "seed": seed},
        "answer": {"expected": {target["id"]: expected}},
        "gold": [
            {"content": "", "tool_calls": [{"name": "list_tickets", "arguments": {}}]},
            {"content": "", "tool_calls": [call]},
            {"content": "Done.", "tool_calls": []},
        ],
        "split": split,
    }


def generate_tasks(split: str, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` tasks of ``split``: the same for the same seed, and test never repeats a train request."""
    return [make_task(split, seed * 100_003 + i) for i in range(n)]
