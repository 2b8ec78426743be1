"""Real MCP servers for the MCP tests: the counter server over stdio (a process per episode) and over HTTP."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SERVER = Path(__file__).with_name("counter_server.py")
STDIO = [sys.executable, str(SERVER)]
_ids = itertools.count()

TASKS = [
    {"id": "count/0", "prompt": "Bring the counter to 10.", "arguments": {"start": 5}, "answer": {"target": 10}},
    {"id": "count/1", "prompt": "Bring the counter to 3.", "arguments": {"start": 1}, "answer": {"target": 3}},
]


def fresh_id(name: str) -> str:
    """A new env id per registration (the registry is process-wide)."""
    return f"test-mcp/{name}-{next(_ids)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@contextmanager
def http_server() -> Iterator[tuple[str, subprocess.Popen]]:
    """The counter server over streamable HTTP on a free loopback port: its URL and process."""
    port = free_port()
    proc = subprocess.Popen([*STDIO, "--http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}/mcp", proc
    finally:
        proc.kill()
        proc.wait(10)


@pytest.fixture(scope="session")
def http_url() -> Iterator[str]:
    """The counter server over streamable HTTP, shared by the session's tests."""
    with http_server() as (url, _):
        yield url
