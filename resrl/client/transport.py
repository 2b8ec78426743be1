"""Retry and balancing rules shared by the sync and async remote envs.

Which failures are retried depends on whether the request may have reached the env: opening a session is
retried on any server (connection errors, 429, 5xx of a gateway or a server at capacity), while a step — not
idempotent — is retried only when the server provably did not run it (connection refused, 429). A refused
connection also marks the server down in the :class:`Balancer`; a step on a server already marked down is not
retried again, since the session it names died with that server.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Sequence
from typing import ClassVar

import httpx
from pydantic import BaseModel, Field

_NEVER_RAN = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_MAY_HAVE_RUN = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
# what a server that is gone looks like: nothing listens (refused), or the connection broke under a request.
# Timeouts are not among them: a slow server is alive.
_SERVER_GONE = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class EnvServerError(RuntimeError):
    """An infrastructure failure reaching or running a remote env; rollouts hitting it are ``infra_error``.

    ``kind`` is the server's error kind (``env_error``, ``step_timeout``, ``capacity``, ``unknown_session``…)
    or ``connection`` / ``timeout`` / ``protocol`` for transport failures.
    """

    infra_error = True

    def __init__(self, kind: str, message: str, *, status: int | None = None, url: str | None = None) -> None:
        super().__init__(f"{kind}: {message}" + (f" ({url})" if url else ""))
        self.kind, self.message, self.status, self.url = kind, message, status, url


class RetryPolicy(BaseModel):
    """Timeouts and retries of a remote env."""

    attempts: int = Field(6, ge=1, description="tries per request, over all servers")
    backoff_s: float = Field(0.1, ge=0, description="first back-off; doubles each retry, with jitter")
    max_backoff_s: float = Field(5.0, ge=0)
    timeout_s: float = Field(120.0, gt=0, description="read timeout of one request (a step may run code)")
    connect_timeout_s: float = Field(5.0, gt=0)

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based); a ``Retry-After`` header wins."""
        if retry_after is not None:
            try:
                return min(float(retry_after), self.max_backoff_s * 4)
            except ValueError:
                pass
        base = min(self.backoff_s * 2**attempt, self.max_backoff_s)
        return base * (0.5 + random.random() / 2)

    def timeout(self) -> httpx.Timeout:
        """The httpx timeout for these settings."""
        return httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s)


class Balancer:
    """Spreads new sessions over base URLs: live servers first, fewest open sessions first, round-robin among
    equals.

    A server whose connection was refused or broke (:func:`server_gone`) counts as down for ``down_s`` seconds,
    or until it answers again: new sessions go to the others, and the sessions it held are given up instead of
    retried (they died with the process). Envs built with the same URL list share one balancer
    (:meth:`shared`), so a collector's many envs spread over the servers, and learn of a dead one, together.
    """

    _shared: ClassVar[dict[tuple[str, ...], Balancer]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, urls: str | Sequence[str], down_s: float = 5.0) -> None:
        urls = [urls] if isinstance(urls, str) else list(urls)
        if not urls:
            raise ValueError("give at least one env server base URL")
        self.urls = [u.rstrip("/") for u in urls]
        self.open = dict.fromkeys(self.urls, 0)
        self.down_s = down_s
        self._down_until: dict[str, float] = {}
        self._turn = itertools.count()
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, urls: str | Sequence[str]) -> Balancer:
        """The process-wide balancer for this URL list."""
        key = tuple(u.rstrip("/") for u in ([urls] if isinstance(urls, str) else urls))
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(list(key))
            return cls._shared[key]

    def order(self) -> list[str]:
        """URLs to try for a new session, best first (servers marked down last)."""
        with self._lock:
            now = time.monotonic()
            start = next(self._turn) % len(self.urls)
            rotated = self.urls[start:] + self.urls[:start]
            return sorted(rotated, key=lambda u: (self._down_until.get(u, 0.0) > now, self.open[u]))

    def opened(self, url: str, delta: int = 1) -> None:
        """Count a session opened (``delta=1``) or closed (``-1``) on ``url``."""
        with self._lock:
            self.open[url] += delta

    def failed(self, url: str) -> None:
        """Mark ``url`` down for ``down_s`` seconds: its connection was refused or broke."""
        with self._lock:
            self._down_until[url] = time.monotonic() + self.down_s

    def answered(self, url: str) -> None:
        """``url`` answered a request: it is up."""
        if url in self._down_until:  # the common case takes no lock
            with self._lock:
                self._down_until.pop(url, None)

    def is_down(self, url: str) -> bool:
        """Whether ``url`` was marked down less than ``down_s`` seconds ago and has not answered since."""
        return self._down_until.get(url, 0.0) > time.monotonic()


def is_retryable(exc: Exception, *, idempotent: bool) -> bool:
    """Whether a transport exception may be retried for this kind of request."""
    if isinstance(exc, _NEVER_RAN):
        return True
    return idempotent and isinstance(exc, _MAY_HAVE_RUN)


def server_gone(exc: Exception) -> bool:
    """Whether a transport exception says the server is gone (refused, or the connection broke mid-request)."""
    return isinstance(exc, _SERVER_GONE)


def transport_error(exc: Exception, url: str) -> EnvServerError:
    """The typed error for a transport exception."""
    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
    if isinstance(exc, httpx.RemoteProtocolError):
        kind = "protocol"
    return EnvServerError(kind, f"{type(exc).__name__}: {exc}", url=url)


def retry_status(status: int, *, idempotent: bool) -> bool:
    """Whether an HTTP status may be retried: 429 always (nothing ran); gateway errors for session creation."""
    return status == 429 or (idempotent and status in (502, 503))


def server_error(response: httpx.Response) -> EnvServerError:
    """The typed error for a non-2xx response (the server's ``{"error": {...}}`` body when it sent one)."""
    kind, message = f"http_{response.status_code}", response.text[:500]
    try:
        detail = response.json().get("error", {})
        kind, message = detail.get("kind", kind), detail.get("message", message)
    except (ValueError, AttributeError):
        pass
    return EnvServerError(kind, message, status=response.status_code, url=str(response.request.url))
