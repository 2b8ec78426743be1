"""resrl: reinforcement learning for tool-using LLM agents, with the ResRL optimizer."""

from resrl.core.env import Action, ChatEnv, Transition
from resrl.core.formats import ToolCallParseError, get_format
from resrl.core.messages import Message, ParsedAction, ToolCall
from resrl.core.registry import EnvSpec, list_envs, make, register, spec
from resrl.core.task import Task, read_jsonl, write_jsonl
from resrl.core.tools import Injected, Tool, ToolError, ToolResult, ToolSet, tool

__version__ = "0.1.0"

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
    "spec",
    "tool",
    "write_jsonl",
]
