"""Clients of ``resrl serve env``: :class:`RemoteEnv`, :class:`AsyncRemoteEnv` (HTTP), :class:`AsyncSocketEnv` (WS)."""

from resrl.client.remote_env import AsyncRemoteEnv, RemoteEnv
from resrl.client.socket_env import AsyncSocketEnv
from resrl.client.transport import Balancer, EnvServerError, RetryPolicy

__all__ = ["AsyncRemoteEnv", "AsyncSocketEnv", "Balancer", "EnvServerError", "RemoteEnv", "RetryPolicy"]
