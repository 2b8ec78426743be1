"""Chat messages and tool calls as they cross every boundary (OpenAI wire format)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

Message = dict[str, Any]
"""A chat message in OpenAI form: ``{"role": ..., "content": ..., "tool_calls"?: ..., "tool_call_id"?: ...}``."""


class ToolCall(BaseModel):
    """One function call requested by the model."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None

    def to_openai(self, index: int = 0) -> dict[str, Any]:
        """The OpenAI ``tool_calls`` entry (``arguments`` as a JSON string, as the API sends it)."""
        return {
            "id": self.id or f"call_{index}",
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments)},
        }

    def same_call(self, other: ToolCall) -> bool:
        """Equal name and arguments; ids are transport detail."""
        return self.name == other.name and self.arguments == other.arguments


class ParsedAction(BaseModel):
    """An assistant turn split into its free text and its tool calls."""

    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)


def assistant_message(content: str, tool_calls: list[ToolCall] | None = None) -> Message:
    """An assistant message in OpenAI form."""
    message: Message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [call.to_openai(i) for i, call in enumerate(tool_calls)]
    return message


def chat_template_message(content: str, tool_calls: list[ToolCall] | None = None) -> Message:
    """An assistant message as chat templates expect it: ``arguments`` as an object (templates apply ``tojson``
    to them), each call's ``id`` kept, and no ``tool_calls`` key at all when there are no calls (some templates
    test for the key, not its value)."""
    message: Message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id or f"call_{i}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for i, call in enumerate(tool_calls)
        ]
    return message


def tool_message(content: str, *, name: str, tool_call_id: str | None = None) -> Message:
    """A tool result message in OpenAI form."""
    message: Message = {"role": "tool", "name": name, "content": content}
    if tool_call_id is not None:
        message["tool_call_id"] = tool_call_id
    return message


def user_message(content: str) -> Message:
    """A user message."""
    return {"role": "user", "content": content}
