"""Clients of resrl's servers: :class:`RemoteEnv` and :class:`AsyncRemoteEnv` for ``resrl serve env``."""

from resrl.client.remote_env import AsyncRemoteEnv, RemoteEnv
from resrl.client.transport import Balancer, EnvServerError, RetryPolicy

__all__ = ["AsyncRemoteEnv", "Balancer", "EnvServerError", "RemoteEnv", "RetryPolicy"]
