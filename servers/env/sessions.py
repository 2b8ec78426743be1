"""Sessions: each holds one env instance across steps; capacity, a bounded wait queue, timeouts and reaping.

Synchronous env code runs on a thread pool so that one slow env never stalls the event loop; a per-session
lock keeps a session's steps in order. An env that raises or overruns the step timeout is closed (its thread
cannot be killed, so it is never reused) and the error is typed; the server carries on.

The one exception to the pool: an env class that declares ``fast_step = True`` promises steps of pure
computation well under a millisecond (no I/O, no waiting); its steps run inline on the event loop, which saves
the thread hop (most of a trivial step's cost). The promise is checked: an inline step slower than
``inline_limit_s`` moves that env id back to the pool for good, with a warning. Envs are not promoted by
measured speed alone: a step that was fast so far (a parse error) can be slow next time (a sandbox call), and
inline there is no timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from pydantic import BaseModel

from resrl.core.registry import make
from resrl.core.task import Task
from resrl_servers.env.metrics import ServerMetrics
from resrl_servers.env.taskstore import TaskStore, UnknownTask

log = logging.getLogger("resrl.server.env")


class SessionLimits(BaseModel):
    """Capacity and timing knobs."""

    max_sessions: int = 4096
    max_waiting: int = 256
    queue_timeout_s: float = 10.0
    session_ttl_s: float = 600.0
    step_timeout_s: float = 60.0
    threads: int = 32
    retry_after_s: float = 1.0
    inline_steps: bool = True
    inline_limit_s: float = 0.02


class ApiError(Exception):
    """An error with an HTTP status and a typed kind (rendered as :class:`~resrl_servers.env.models.ErrorBody`)."""

    def __init__(
        self, status: int, kind: str, message: str, session_id: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.session_id, self.retry_after_s = session_id, retry_after_s


@dataclass
class Session:
    """One open episode."""

    id: str
    env_id: str
    env: Any
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    inline: bool = False


class SessionManager:
    """Creates, steps and closes sessions for the hosted env ids."""

    def __init__(
        self, env_ids: set[str], limits: SessionLimits, metrics: ServerMetrics, tasks: TaskStore | None = None
    ) -> None:
        self.env_ids = env_ids
        self.limits = limits
        self.metrics = metrics
        self.tasks = tasks or TaskStore()
        self.sessions: dict[str, Session] = {}
        self.executor = ThreadPoolExecutor(limits.threads, thread_name_prefix="resrl-env")
        self._slots = asyncio.Semaphore(limits.max_sessions)
        self._waiting = 0
        self._reaper: asyncio.Task | None = None
        self.demoted: set[str] = set()  # env ids whose fast_step promise an inline step broke

    # -- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the idle-session reaper (call from the running event loop)."""
        self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def stop(self) -> None:
        """Close every session and stop the reaper."""
        if self._reaper:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for sid in list(self.sessions):
            await self.close(sid)
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _reap_forever(self) -> None:
        period = max(0.05, min(self.limits.session_ttl_s / 4, 5.0))
        while True:
            await asyncio.sleep(period)
            await self.reap_idle()

    async def reap_idle(self) -> int:
        """Close sessions idle for longer than the TTL (never one in the middle of a step)."""
        cutoff = time.monotonic() - self.limits.session_ttl_s
        idle = [s.id for s in self.sessions.values() if s.last_used < cutoff and not s.lock.locked()]
        for sid in idle:
            log.info("reaping idle session %s", sid)
            await self.close(sid)
            self.metrics.sessions_reaped.inc()
        return len(idle)

    # -- the API ----------------------------------------------------------------------------------------------
    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))
        return await asyncio.wait_for(future, self.limits.step_timeout_s)

    async def _reserve(self) -> None:
        if self._slots.locked() and self._waiting >= self.limits.max_waiting:
            raise ApiError(
                429,
                "capacity",
                f"server full ({self.limits.max_sessions} sessions, {self._waiting} waiting)",
                retry_after_s=self.limits.retry_after_s,
            )
        self._waiting += 1
        self.metrics.sessions_waiting.set(self._waiting)
        try:
            await asyncio.wait_for(self._slots.acquire(), self.limits.queue_timeout_s)
        except TimeoutError:
            raise ApiError(
                429,
                "capacity",
                f"no session slot freed within {self.limits.queue_timeout_s}s",
                retry_after_s=self.limits.retry_after_s,
            ) from None
        finally:
            self._waiting -= 1
            self.metrics.sessions_waiting.set(self._waiting)

    def _resolve_task(self, env_id: str, task: Task | None, task_id: str | None) -> Task | None:
        if task_id is None:
            return task
        try:
            return self.tasks.get(env_id, task_id, lambda split, n, seed: _generate(env_id, split, n, seed))
        except UnknownTask as exc:
            raise ApiError(404, "unknown_task", str(exc)) from None

    async def create(
        self,
        env_id: str,
        *,
        task: Task | None = None,
        task_id: str | None = None,
        seed: int | None = None,
        env_kwargs: dict[str, Any] | None = None,
    ) -> tuple[Session, list[dict[str, Any]], dict[str, Any]]:
        """Open a session on ``env_id`` and reset it; returns the session, observation and info."""
        if env_id not in self.env_ids:
            raise ApiError(404, "unknown_env", f"no environment {env_id!r} on this server; see GET /v1/envs")
        if task is not None and task_id is not None:
            raise ApiError(422, "invalid_request", "give at most one of 'task' and 'task_id'")
        resolved = await self._run(self._resolve_task, env_id, task, task_id) if task_id else task
        await self._reserve()
        env = None
        started = time.perf_counter()
        try:
            try:
                env = await self._run(make, env_id, **(env_kwargs or {}))
            except TypeError as exc:
                raise ApiError(422, "invalid_request", f"bad env_kwargs for {env_id!r}: {exc}") from None
            options = {"task": resolved} if resolved is not None else None
            observation, info = await self._run(env.reset, seed=seed, options=options)
        except ApiError:
            self._release(env)
            raise
        except TimeoutError:
            self._release(env)
            raise ApiError(
                504, "step_timeout", f"reset of {env_id!r} took over {self.limits.step_timeout_s}s"
            ) from None
        except Exception as exc:
            self._release(env)
            log.exception("env %s failed to start", env_id)
            if task is not None:  # the caller's own task broke it: their input, not our fault
                raise ApiError(422, "invalid_request", f"{env_id!r} rejected the task: {exc!r}") from None
            raise ApiError(500, "env_error", f"{env_id!r} raised during reset: {exc!r}") from None
        inline = self.limits.inline_steps and getattr(type(env), "fast_step", False) is True
        session = Session(id=uuid.uuid4().hex, env_id=env_id, env=env, inline=inline and env_id not in self.demoted)
        self.sessions[session.id] = session
        self.metrics.reset_seconds.labels(env_id).observe(time.perf_counter() - started)
        self.metrics.sessions_active.labels(env_id).inc()
        self.metrics.sessions_total.labels(env_id).inc()
        return session, observation, info

    def get(self, session_id: str) -> Session:
        """The open session ``session_id``, or a 404."""
        session = self.sessions.get(session_id)
        if session is None:
            raise ApiError(
                404,
                "unknown_session",
                f"no open session {session_id!r} (closed, reaped or never created)",
                session_id=session_id,
            )
        return session

    async def step(self, session_id: str, action: str | dict[str, Any]) -> tuple[Any, float, bool, bool, dict]:
        """One step of the session's env."""
        session = self.get(session_id)
        async with session.lock:
            if session.id not in self.sessions:  # closed while this request waited for the lock
                raise ApiError(409, "session_closed", "the session was closed", session_id=session_id)
            started = time.perf_counter()
            self.metrics.steps_in_flight.inc()
            try:
                if session.inline and session.env_id not in self.demoted:
                    result = session.env.step(action)
                    self._check_inline(session, time.perf_counter() - started)
                else:
                    result = await self._run(session.env.step, action)
            except gym.error.ResetNeeded as exc:
                raise ApiError(409, "session_closed", f"episode over: {exc}", session_id=session_id) from None
            except TimeoutError:
                await self.close(session_id)
                raise ApiError(
                    504,
                    "step_timeout",
                    f"step took over {self.limits.step_timeout_s}s; session closed",
                    session_id=session_id,
                ) from None
            except Exception as exc:
                log.exception("env %s raised in session %s", session.env_id, session_id)
                await self.close(session_id)
                raise ApiError(
                    500, "env_error", f"{session.env_id!r} raised: {exc!r}; session closed", session_id=session_id
                ) from None
            finally:
                self.metrics.steps_in_flight.dec()
                session.last_used = time.monotonic()
            self.metrics.step_seconds.labels(session.env_id).observe(time.perf_counter() - started)
            self.metrics.steps.labels(session.env_id).inc()
            return result

    def _check_inline(self, session: Session, seconds: float) -> None:
        if seconds > self.limits.inline_limit_s and session.env_id not in self.demoted:
            self.demoted.add(session.env_id)
            log.warning(
                "%s declares fast_step but a step took %.1f ms on the event loop (limit %.1f ms): "
                "its steps run on the thread pool from now on",
                session.env_id,
                seconds * 1000,
                self.limits.inline_limit_s * 1000,
            )

    async def close(self, session_id: str) -> bool:
        """Close a session; False if it was not open."""
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        self.metrics.sessions_active.labels(session.env_id).dec()
        self._release(session.env)
        return True

    def _release(self, env: Any) -> None:
        self._slots.release()
        if env is not None:
            # close() of a stuck env could block too: hand it to the pool, never wait on it here
            self.executor.submit(_close_quietly, env)


def _generate(env_id: str, split: str, n: int, seed: int) -> list[Task]:
    from resrl.core.registry import spec

    env_cls = spec(env_id).env_class()
    try:
        return env_cls.generate_tasks(split, n, seed)
    except Exception as exc:
        raise UnknownTask(f"{env_id!r} cannot generate task {split}/{seed}: {exc!r}") from None


def _close_quietly(env: Any) -> None:
    try:
        env.close()
    except Exception:
        log.exception("error closing an env")
