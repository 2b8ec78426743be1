"""Which environment each episode runs in: the collector builds one per episode from the task's ``env_id``.

In process (:func:`resrl.make`, with per-env constructor kwargs) or on env-server replicas (``RemoteEnv``; each
session stays on the replica that opened it, and a replica that dies mid-episode fails only its episodes, as
``infra_error``, while new sessions go to the others).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from resrl.core.task import Task


class EnvRouter:
    """Builds the env of a task: ``router(task)`` → a fresh env for ``task.env_id``, not yet reset.

    ``servers``: base URLs of ``resrl serve env`` replicas (empty: in process). ``env_kwargs`` (per env id)
    are constructor arguments, so they apply in process only; a server builds its envs with its own settings.
    """

    def __init__(
        self,
        tool_format: str,
        env_kwargs: dict[str, dict[str, Any]] | None = None,
        servers: Sequence[str] = (),
    ) -> None:
        self.tool_format = tool_format
        self.env_kwargs = dict(env_kwargs or {})
        self.servers = list(servers)
        if self.servers and self.env_kwargs:
            raise ValueError(
                "env constructor kwargs (data.env_kwargs) cannot be sent to env servers: configure the envs "
                f"where the servers start them, or drop env_servers (got kwargs for {', '.join(self.env_kwargs)})"
            )

    def __call__(self, task: Task | dict[str, Any]) -> Any:
        env_id = task.env_id if isinstance(task, Task) else task["env_id"]
        if self.servers:
            from resrl.client import RemoteEnv

            return RemoteEnv(self.servers, env_id, tool_format=self.tool_format)
        import resrl

        return resrl.make(env_id, tool_format=self.tool_format, **self.env_kwargs.get(env_id, {}))
