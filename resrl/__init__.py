"""resrl: reinforcement learning for tool-using LLM agents, with the ResRL optimizer."""

from resrl.core.env import Action, ChatEnv, Transition
from resrl.core.formats import ToolCallParseError, get_format
from resrl.core.messages import Message, ParsedAction, ToolCall
from resrl.core.registry import EnvSpec, list_envs, make, register, spec
from resrl.core.task import Task, read_jsonl, write_jsonl
from resrl.core.tools import Injected, Tool, ToolError, ToolResult, ToolSet, tool

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # register_mcp lives with the MCP envs (resrl_envs.mcp): loaded on first use, not by every `import resrl`
    if name == "register_mcp":
        from resrl_envs.mcp import register_mcp

        return register_mcp
    raise AttributeError(f"module 'resrl' has no attribute {name!r}")


__all__ = [
    "Action",
    "ChatEnv",
    "EnvSpec",
    "Injected",
    "Message",
    "ParsedAction",
    "Task",
    "Tool",
    "ToolCall",
    "ToolCallParseError",
    "ToolError",
    "ToolResult",
    "ToolSet",
    "Transition",
    "get_format",
    "list_envs",
    "make",
    "read_jsonl",
    "register",
    "register_mcp",
    "spec",
    "tool",
    "write_jsonl",
]
