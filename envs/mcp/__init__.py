"""MCP servers as resrl environments (``resrl.register_mcp``, ``mcp:`` env files); see docs/mcp.md."""

from resrl_envs.mcp.bridge import MCPConnection, MCPInfraError, ServerTarget, ToolOutcome
from resrl_envs.mcp.env import CallRecord, MCPEnv, Transcript, register_mcp, register_spec
from resrl_envs.mcp.files import load_env_file
from resrl_envs.mcp.spec import MCPEnvSpec, MCPTaskSpec, RewardTool

__all__ = [
    "CallRecord",
    "MCPConnection",
    "MCPEnv",
    "MCPEnvSpec",
    "MCPInfraError",
    "MCPTaskSpec",
    "RewardTool",
    "ServerTarget",
    "ToolOutcome",
    "Transcript",
    "load_env_file",
    "register_mcp",
    "register_spec",
]
