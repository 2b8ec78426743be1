"""The ticket desk's reward: the hidden ``grade`` tool reads the session's desk, which the model never sees."""

from __future__ import annotations

import json
from typing import Any

from resrl_envs.mcp import Transcript


def score(transcript: Transcript, call_tool: Any) -> dict[str, float]:
    """1 when the requested change was made and nothing else changed; components say what held."""
    graded = json.loads(call_tool("grade", {"expected": transcript.task.answer["expected"]}).text)
    errors = sum(c.is_error for c in transcript.calls)
    return {**graded, "tool_errors": float(errors)}
