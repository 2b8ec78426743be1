"""``AsyncSocketEnv``: ``AsyncRemoteEnv`` over the server's ``/v1/ws`` WebSocket (one socket per env).

The same contract and errors as :class:`~resrl.client.AsyncRemoteEnv`, with no HTTP request per step — for
collectors that step many cheap envs. A dropped socket loses its session (the server closes it), so only
``reset`` is retried; a step on a broken socket raises :class:`EnvServerError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from resrl.client.remote_env import _Session
from resrl.client.transport import EnvServerError

log = logging.getLogger("resrl.client")


class AsyncSocketEnv(_Session):
    """An async remote env speaking the WebSocket session protocol; see :class:`AsyncRemoteEnv` for arguments."""

    def __init__(self, base_url: str | Sequence[str], env_id: str, **kwargs: Any) -> None:
        super().__init__(base_url, env_id, **kwargs)
        self._ws: ClientConnection | None = None

    async def __aenter__(self) -> AsyncSocketEnv:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self._ws is not None
        try:
            await self._ws.send(json.dumps(message))
            reply = await asyncio.wait_for(self._ws.recv(), self.retry.timeout_s)
        except (OSError, WebSocketException, TimeoutError) as exc:
            await self._drop()
            raise EnvServerError("connection", f"{type(exc).__name__}: {exc}", url=self.url) from exc
        return json.loads(reply)

    async def _drop(self) -> None:
        if self._ws is not None:
            ws, self._ws = self._ws, None
            await ws.close()
        self._forget()

    def _check(self, reply: dict[str, Any]) -> dict[str, Any]:
        error = reply.get("error")
        if error is None:
            return reply
        if reply.get("status") == 409:
            raise gym.error.ResetNeeded(error["message"])
        raise EnvServerError(error["kind"], error["message"], status=reply.get("status"), url=self.url)

    async def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Open a new session (on a fresh socket to the least-loaded server)."""
        await self._drop()
        body = {"op": "reset", **self._create_body(seed, options)}
        last: EnvServerError | None = None
        for attempt in range(self.retry.attempts):
            url = self.balancer.order()[0] if attempt == 0 else self.balancer.urls[attempt % len(self.balancer.urls)]
            delay = self.retry.delay(attempt)
            try:
                self._ws = await connect(
                    url.replace("http", "ws", 1) + "/v1/ws", open_timeout=self.retry.connect_timeout_s, max_size=None
                )
                self.url = url
                reply = await self._exchange(body)
                if reply.get("status") == 429:
                    delay = self.retry.delay(attempt, str(reply["error"].get("retry_after_s", 1)))
                    raise EnvServerError("capacity", reply["error"]["message"], status=429, url=url)
                created = self._check(reply)
            except (OSError, WebSocketException, TimeoutError) as exc:
                last = EnvServerError("connection", f"{type(exc).__name__}: {exc}", url=url)
            except EnvServerError as exc:
                if exc.kind not in ("connection", "capacity"):
                    await self._drop()
                    raise
                last = exc
            else:
                self.session_id, self.done = created["session_id"], False
                self.balancer.opened(url)
                return created["observation"], created["info"]
            await self._drop()
            if attempt + 1 < self.retry.attempts:
                log.info("retrying reset in %.2fs after %s", delay, last)
                await asyncio.sleep(delay)
        assert last is not None
        raise last

    async def step(self, action: Any):
        """Play one assistant turn (text or an OpenAI assistant message)."""
        self._check_step(action)
        reply = await self._exchange({"op": "step", "action": action})
        if reply.get("status") in (404, 500, 504):
            await self._drop()
        result = self._check(reply)
        self.done = result["terminated"] or result["truncated"]
        return result["observation"], result["reward"], result["terminated"], result["truncated"], result["info"]

    async def close(self) -> None:
        """Close the session and the socket."""
        if self._ws is not None and self.session_id is not None:
            try:
                await self._exchange({"op": "close"})
            except EnvServerError as exc:  # the server closes a socket's session anyway
                log.warning("could not close session %s: %s", self.session_id, exc)
        await self._drop()
