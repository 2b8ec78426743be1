"""Test envs and a real uvicorn server on 127.0.0.1 in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

import resrl
import resrl_servers.env.echo  # noqa: F401  (registers debug/echo)
from resrl.core.env import ChatEnv, Transition
from resrl.core.messages import user_message
from resrl.core.task import Task
from resrl_servers.env.app import ServerConfig, create_app


class CrashEnv(ChatEnv):
    """Raises when told ``boom``; otherwise echoes."""

    multi_turn = True

    @classmethod
    def generate_tasks(cls, split, n, seed):
        return [Task(id=f"crash-{seed}-{i}", env_id="test/crash", messages=[user_message("go")]) for i in range(n)]

    def _act(self, action):
        if getattr(action, "content", "") == "boom":
            raise RuntimeError("the env blew up")
        return Transition([user_message("ok")])


class SlowEnv(ChatEnv):
    """Each step sleeps the number of seconds the turn says."""

    multi_turn = True

    @classmethod
    def generate_tasks(cls, split, n, seed):
        return [Task(id=f"slow-{seed}-{i}", env_id="test/slow", messages=[user_message("go")]) for i in range(n)]

    def _act(self, action):
        time.sleep(float(action.content))
        return Transition([user_message("slept")])


class LoopEnv(ChatEnv):
    """Declares ``fast_step``; each step answers with its thread's name. ``sleep S`` breaks the promise."""

    multi_turn = True
    fast_step = True

    @classmethod
    def generate_tasks(cls, split, n, seed):
        return [Task(id=f"loop-{seed}-{i}", env_id="test/loop", messages=[user_message("go")]) for i in range(n)]

    def _act(self, action):
        if action.content.startswith("sleep "):
            time.sleep(float(action.content.split()[1]))
        return Transition([user_message(threading.current_thread().name)])


resrl.register("test/crash", CrashEnv)
resrl.register("test/loop", LoopEnv)
resrl.register("test/slow", SlowEnv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(config: ServerConfig | None = None) -> Iterator[str]:
    """Serve ``create_app(config)`` on a free loopback port; yields the base URL."""
    config = config or ServerConfig(env_patterns=["debug/*", "test/*"])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("env server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def wait_until(predicate, timeout_s: float = 30.0) -> None:
    """Poll ``predicate`` until true; fail after ``timeout_s`` (a guard against hangs, not a timing assert)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(0.01)
