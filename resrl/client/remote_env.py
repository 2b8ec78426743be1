"""``RemoteEnv`` / ``AsyncRemoteEnv``: a chat env hosted by ``resrl serve env``, with the ``ChatEnv`` contract.

``reset`` opens a session (closing the previous one) on the least-loaded live one of the given servers, ``step``
plays a turn in it, ``close`` deletes it. When a server dies, the episodes it held fail with
:class:`EnvServerError` (rollouts record them as ``infra_error``) and new sessions go to the other servers (see
:class:`~resrl.client.transport.Balancer`). Failures that are ours, not the model's, raise :class:`EnvServerError`
(``infra_error = True``) after the retries the :class:`RetryPolicy` allows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import httpx

from resrl.client.transport import (
    Balancer,
    EnvServerError,
    RetryPolicy,
    is_retryable,
    retry_status,
    server_error,
    server_gone,
    transport_error,
)
from resrl.core.spaces import ActionSpace, MessagesSpace
from resrl.core.task import Task
from resrl_servers.env.models import CreateSession, SessionCreated, StepResult

log = logging.getLogger("resrl.client")


class _Session:
    """Request building and response reading common to both clients."""

    def __init__(
        self,
        base_url: str | Sequence[str],
        env_id: str,
        *,
        tool_format: str | None = None,
        max_steps: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.env_id = env_id
        self.balancer = Balancer.shared(base_url)
        self.retry = retry or RetryPolicy()
        self.env_options = {k: v for k, v in {"tool_format": tool_format, "max_steps": max_steps}.items() if v}
        self.observation_space = MessagesSpace()
        self.action_space = ActionSpace()
        self.session_id: str | None = None
        self.url: str | None = None
        self.done = False

    def _create_body(self, seed: int | None, options: dict[str, Any] | None) -> dict[str, Any]:
        options = options or {}
        task = options.get("task")
        if isinstance(task, Task):
            task = task.model_dump(mode="json")
        body = CreateSession(
            env_id=self.env_id, task=task, task_id=options.get("task_id"), seed=seed, options=self.env_options
        )
        return body.model_dump(mode="json", exclude_none=True)

    def _opened(self, url: str, response: httpx.Response) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        created = SessionCreated.model_validate_json(response.content)
        self.session_id, self.url, self.done = created.session_id, url, False
        self.balancer.opened(url)
        return created.observation, created.info

    def _stepped(self, response: httpx.Response) -> tuple[list[dict[str, Any]], float, bool, bool, dict[str, Any]]:
        result = StepResult.model_validate_json(response.content)
        self.done = result.terminated or result.truncated
        return result.observation, result.reward, result.terminated, result.truncated, result.info

    def _check_step(self, action: Any) -> tuple[str, str, dict[str, Any]]:
        if self.session_id is None or self.url is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self.done:
            raise gym.error.ResetNeeded("the episode has ended; call reset() to start another")
        return self.url, f"/v1/sessions/{self.session_id}/step", {"action": action}

    def _forget(self) -> tuple[str, str] | None:
        if self.session_id is None or self.url is None:
            return None
        target = (self.url, self.session_id)
        self.balancer.opened(self.url, -1)
        self.session_id = self.url = None
        return target

    def _judge(
        self,
        method: str,
        path: str,
        url: str,
        attempt: int,
        outcome: httpx.Response | httpx.HTTPError,
        *,
        idempotent: bool,
    ) -> float | None:
        """What one attempt of a request came to: None when ``outcome`` is the answer to return, else the
        seconds to wait before the next attempt; raises the typed error when it must not (or can no longer)
        be retried."""
        if isinstance(outcome, httpx.HTTPError):
            error = transport_error(outcome, url)
            known_down = self.balancer.is_down(url)
            if server_gone(outcome):
                self.balancer.failed(url)
            # a session lives in its server's memory: once that server is known to be gone, a step in it cannot
            # succeed, so only the first env to find out pays for the retries
            if not is_retryable(outcome, idempotent=idempotent) or (known_down and not idempotent):
                raise error from outcome
            delay = self.retry.delay(attempt)
        else:
            self.balancer.answered(url)
            if outcome.status_code < 400 or not retry_status(outcome.status_code, idempotent=idempotent):
                return None
            error = server_error(outcome)
            delay = self.retry.delay(attempt, outcome.headers.get("retry-after"))
        if attempt + 1 >= self.retry.attempts:
            raise error
        log.info("retrying %s %s in %.2fs after %s", method, path, delay, error)
        return delay

    @staticmethod
    def _raise_for(response: httpx.Response) -> None:
        if response.status_code == 409:
            raise gym.error.ResetNeeded(server_error(response).message)
        raise server_error(response)


class RemoteEnv(_Session, gym.Env):
    """A ``gymnasium.Env`` whose episodes run on env servers (synchronous client).

    Args:
        base_url: one server URL or several (new sessions go to the least loaded).
        env_id: the env to play, as ``GET /v1/envs`` lists it.
        tool_format: the tool-call format the policy writes (server default otherwise).
        max_steps: turn limit override.
        retry: timeouts and retries.
    """

    def __init__(self, base_url: str | Sequence[str], env_id: str, **kwargs: Any) -> None:
        super().__init__(base_url, env_id, **kwargs)
        self._http = httpx.Client(timeout=self.retry.timeout())

    def _send(self, method: str, urls: list[str], path: str, body: Any, *, idempotent: bool):
        for attempt in range(self.retry.attempts):
            url = urls[attempt % len(urls)]
            try:
                outcome: httpx.Response | httpx.HTTPError = self._http.request(method, url + path, json=body)
            except httpx.HTTPError as exc:
                outcome = exc
            delay = self._judge(method, path, url, attempt, outcome, idempotent=idempotent)
            if delay is None:
                return url, outcome
            time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Open a new session (closing the current one); ``options`` may carry ``task`` or ``task_id``."""
        super(_Session, self).reset(seed=seed)
        self._delete()
        url, response = self._send(
            "POST", self.balancer.order(), "/v1/sessions", self._create_body(seed, options), idempotent=True
        )
        if response.status_code >= 400:
            self._raise_for(response)
        return self._opened(url, response)

    def step(self, action: Any):
        """Play one assistant turn (text or an OpenAI assistant message)."""
        url, path, body = self._check_step(action)
        _, response = self._send("POST", [url], path, body, idempotent=False)
        if response.status_code >= 400:
            if response.status_code in (404, 500, 504):
                self._forget()  # the server closed it
            self._raise_for(response)
        return self._stepped(response)

    def _delete(self) -> None:
        target = self._forget()
        if target is None:
            return
        url, sid = target
        if self.balancer.is_down(url):  # its sessions died with it
            return
        try:
            self._send("DELETE", [url], f"/v1/sessions/{sid}", None, idempotent=True)
        except EnvServerError as exc:  # the TTL reaper frees it anyway
            log.warning("could not close session %s on %s: %s", sid, url, exc)

    def close(self) -> None:
        """Delete the session and close the HTTP client."""
        self._delete()
        self._http.close()


class AsyncRemoteEnv(_Session):
    """The same as :class:`RemoteEnv` with ``async`` methods, for concurrent rollout collection."""

    def __init__(self, base_url: str | Sequence[str], env_id: str, **kwargs: Any) -> None:
        super().__init__(base_url, env_id, **kwargs)
        self._http = httpx.AsyncClient(timeout=self.retry.timeout())

    async def __aenter__(self) -> AsyncRemoteEnv:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _send(self, method: str, urls: list[str], path: str, body: Any, *, idempotent: bool):
        for attempt in range(self.retry.attempts):
            url = urls[attempt % len(urls)]
            try:
                outcome: httpx.Response | httpx.HTTPError = await self._http.request(method, url + path, json=body)
            except httpx.HTTPError as exc:
                outcome = exc
            delay = self._judge(method, path, url, attempt, outcome, idempotent=idempotent)
            if delay is None:
                return url, outcome
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Open a new session (closing the current one); ``options`` may carry ``task`` or ``task_id``."""
        await self._delete()
        url, response = await self._send(
            "POST", self.balancer.order(), "/v1/sessions", self._create_body(seed, options), idempotent=True
        )
        if response.status_code >= 400:
            self._raise_for(response)
        return self._opened(url, response)

    async def step(self, action: Any):
        """Play one assistant turn (text or an OpenAI assistant message)."""
        url, path, body = self._check_step(action)
        _, response = await self._send("POST", [url], path, body, idempotent=False)
        if response.status_code >= 400:
            if response.status_code in (404, 500, 504):
                self._forget()
            self._raise_for(response)
        return self._stepped(response)

    async def _delete(self) -> None:
        target = self._forget()
        if target is None:
            return
        url, sid = target
        if self.balancer.is_down(url):
            return
        try:
            await self._send("DELETE", [url], f"/v1/sessions/{sid}", None, idempotent=True)
        except EnvServerError as exc:
            log.warning("could not close session %s on %s: %s", sid, url, exc)

    async def close(self) -> None:
        """Delete the session and close the HTTP client."""
        await self._delete()
        await self._http.aclose()
