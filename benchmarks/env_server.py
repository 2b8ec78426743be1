"""Env server load benchmark: ours vs openenv-core's server, same echo env, same client, same run.

    python benchmarks/env_server.py [--seconds 5] [--repeats 3] [--sessions 64] [--burst 1000] [--json out.json]

1. Burst: ``--burst`` sessions open at once on our server, each plays 5 steps and closes; no errors allowed.
2. Steady: ``--sessions`` concurrent sessions step in a closed loop for ``--seconds``, like against like:
   - resrl HTTP sessions (``POST /v1/sessions/{id}/step``) vs openenv-core HTTP ``POST /step`` (stateless: it
     builds an env per request — its only HTTP step);
   - resrl WebSocket sessions (``/v1/ws``) vs openenv-core WebSocket sessions (``/ws``, one env per socket).
   The four runs alternate ``--repeats`` times; steps/s is the median over repeats, p50/p99 over all steps,
   and our steps/s over the peer's is printed for each transport, with each server's and the client's CPU
   time per step (from /proc), which shows the servers' own cost whatever the client.

How each side runs, each in its own subprocess on 127.0.0.1, one process and one event loop each:
- ours: ``python -m resrl serve env --envs debug/echo --import resrl_servers.env.echo --log-level warning
  --max-sessions 4096 --threads 32`` (its defaults otherwise: uvicorn with uvloop/httptools when installed,
  echo steps inline on the event loop because ``EchoEnv.fast_step`` is set; ``--ours-arg`` adds options);
- openenv-core: its documented server, ``create_fastapi_app(EchoEnvironment, EchoAction, EchoObservation,
  max_concurrent_envs=2048)`` (the limit raised so 64 sockets fit) under ``uvicorn.run(app, host, port,
  log_level="warning", access_log=False)`` — the same uvicorn, loop and parser as ours, no access log.
The load generator is one asyncio process with a bare keep-alive connection per session (:class:`Wire`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 150)  # a log file gets the whole table


# -- the openenv-core side: the same echo env written against its API ---------------------------------------
def serve_openenv(port: int) -> None:
    """Run openenv-core's server hosting an echo env (called in a subprocess)."""
    import uvicorn
    from openenv.core.env_server.http_server import create_fastapi_app
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, Observation, State

    class EchoAction(Action):
        message: str

    class EchoObservation(Observation):
        echoed: str = ""

    class EchoEnvironment(Environment):
        SUPPORTS_CONCURRENT_SESSIONS = True

        def __init__(self) -> None:
            super().__init__()
            self._state = State(episode_id="e", step_count=0)

        def reset(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any) -> EchoObservation:
            self._state = State(episode_id=episode_id or "e", step_count=0)
            return EchoObservation(echoed="Repeat after me, then say done.")

        def step(self, action: EchoAction, timeout_s: float | None = None, **kwargs: Any) -> EchoObservation:
            self._state.step_count += 1
            done = action.message == "done"
            return EchoObservation(echoed=action.message, done=done, reward=1.0 if done else 0.0)

        @property
        def state(self) -> State:
            return self._state

    app = create_fastapi_app(EchoEnvironment, EchoAction, EchoObservation, max_concurrent_envs=2048)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- servers in subprocesses ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _server(cmd: list[str], health: str):
    # a log file, not a pipe: a server that logs per connection would block on a full, unread pipe
    log = tempfile.NamedTemporaryFile("w+", prefix="env-bench-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"server {cmd} exited: {log.read()[-2000:]}")
            try:
                import urllib.request

                with urllib.request.urlopen(health, timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server at {health} did not come up") from None
                time.sleep(0.1)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        os.unlink(log.name)


# -- the load generator: one bare keep-alive connection per session ------------------------------------------
class Wire(asyncio.Protocol):
    """A client connection speaking just enough HTTP/1.1 and WebSocket for this benchmark.

    A general client (aiohttp, httpx) spends more CPU per request than a fast server does, and on 2 cores the
    load generator shares the machine with the server, so it would cap both servers alike and hide their
    difference. This one builds requests from byte strings and parses only status, ``Content-Length`` and
    WebSocket frame headers. Both servers are driven by it.
    """

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionError("connection closed by the server")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def _more(self) -> None:
        if self.lost is not None:
            raise self.lost
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter

    @classmethod
    async def open(cls, url: str) -> Wire:
        host, port = url.removeprefix("http://").split(":")
        _, wire = await asyncio.get_running_loop().create_connection(cls, host, int(port))
        return wire

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def _head(self) -> tuple[int, dict[bytes, bytes], int]:
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            await self._more()
        lines = bytes(self.buf[:end]).split(b"\r\n")
        headers = dict(line.split(b":", 1) for line in lines[1:])
        headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
        return int(lines[0].split(b" ", 2)[1]), headers, end + 4

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """One request on the kept-alive connection; returns status and body."""
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        self.transport.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)  # type: ignore[union-attr]
        status, headers, start = await self._head()
        if b"content-length" not in headers:
            raise RuntimeError(f"response without Content-Length: {headers}")
        end = start + int(headers[b"content-length"])
        while len(self.buf) < end:
            await self._more()
        payload = bytes(self.buf[start:end])
        del self.buf[:end]
        return status, payload

    async def upgrade(self, path: str) -> None:
        """The WebSocket opening handshake."""
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(  # type: ignore[union-attr]
            f"GET {path} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        status, _, start = await self._head()
        if status != 101:
            raise RuntimeError(f"WebSocket upgrade refused: {status}")
        del self.buf[:start]

    def _frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        mask = os.urandom(4)  # client frames must be masked (RFC 6455 §5.3)
        key = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
        self.transport.write(head + mask + masked)  # type: ignore[union-attr]

    def send_text(self, text: str) -> None:
        self._frame(0x1, text.encode())

    async def receive_text(self) -> str:
        """The next text message (pings are answered, fragments joined)."""
        parts: list[bytes] = []
        while True:
            while len(self.buf) < 2:
                await self._more()
            fin, opcode, n, at = self.buf[0] & 0x80, self.buf[0] & 0x0F, self.buf[1] & 0x7F, 2
            if n >= 126:
                size = 2 if n == 126 else 8
                while len(self.buf) < at + size:
                    await self._more()
                n, at = int.from_bytes(self.buf[at : at + size], "big"), at + size
            while len(self.buf) < at + n:
                await self._more()
            payload = bytes(self.buf[at : at + n])
            del self.buf[: at + n]
            if opcode == 0x9:
                self._frame(0xA, payload)
            elif opcode == 0x8:
                raise ConnectionError(f"WebSocket closed by the server: {payload[2:]!r}")
            elif opcode in (0x0, 0x1):
                parts.append(payload)
                if fin:
                    return b"".join(parts).decode()


# -- one session's loop for each protocol ---------------------------------------------------------------------
class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.error_samples: list[str] = []

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)


async def http_steps(
    wire: Wire, stats: Stats, until: float, max_steps: int, path: str, body_of: Callable[[int], bytes]
) -> None:
    """POST steps to ``path`` until the time or step budget is spent, recording each step's latency."""
    steps = 0
    while steps < max_steps and time.perf_counter() < until:
        t0 = time.perf_counter()
        status, reply = await wire.request("POST", path, body_of(steps))
        if status != 200:
            stats.error(f"step {status} {reply[:200]!r}")
            return
        json.loads(reply)
        stats.latencies.append(time.perf_counter() - t0)
        steps += 1


async def ours_session(wire: Wire, stats: Stats, until: float, max_steps: int) -> None:
    body = json.dumps({"env_id": "debug/echo", "options": {"max_steps": 10_000}}).encode()
    status, reply = await wire.request("POST", "/v1/sessions", body)
    if status != 200:
        stats.error(f"create {status} {reply[:200]!r}")
        return
    step_path = f"/v1/sessions/{json.loads(reply)['session_id']}/step"
    await http_steps(wire, stats, until, max_steps, step_path, lambda k: json.dumps({"action": f"turn {k}"}).encode())
    status, _ = await wire.request("DELETE", step_path.removesuffix("/step"))
    if status != 200:
        stats.error(f"delete {status}")


async def openenv_http_session(wire: Wire, stats: Stats, until: float, max_steps: int) -> None:
    status, reply = await wire.request("POST", "/reset", b"{}")
    if status != 200:
        stats.error(f"reset {status} {reply[:200]!r}")
        return
    await http_steps(
        wire, stats, until, max_steps, "/step", lambda k: json.dumps({"action": {"message": f"turn {k}"}}).encode()
    )


async def ours_ws_session(wire: Wire, stats: Stats, until: float, max_steps: int) -> None:
    await wire.upgrade("/v1/ws")
    wire.send_text(json.dumps({"op": "reset", "env_id": "debug/echo", "options": {"max_steps": 10_000}}))
    reply = json.loads(await wire.receive_text())
    if "session_id" not in reply:
        stats.error(f"reset {reply}")
        return
    steps = 0
    while steps < max_steps and time.perf_counter() < until:
        t0 = time.perf_counter()
        wire.send_text(json.dumps({"op": "step", "action": f"turn {steps}"}))
        reply = json.loads(await wire.receive_text())
        if "error" in reply:
            stats.error(f"step {reply}")
            break
        stats.latencies.append(time.perf_counter() - t0)
        steps += 1
    wire.send_text(json.dumps({"op": "close"}))
    await wire.receive_text()


async def openenv_ws_session(wire: Wire, stats: Stats, until: float, max_steps: int) -> None:
    await wire.upgrade("/ws")
    wire.send_text(json.dumps({"type": "reset", "data": {}}))
    reply = json.loads(await wire.receive_text())
    if reply.get("type") != "observation":
        stats.error(f"reset {reply}")
        return
    steps = 0
    while steps < max_steps and time.perf_counter() < until:
        t0 = time.perf_counter()
        wire.send_text(json.dumps({"type": "step", "data": {"message": f"turn {steps}"}}))
        reply = json.loads(await wire.receive_text())
        if reply.get("type") != "observation":
            stats.error(f"step {reply}")
            break
        stats.latencies.append(time.perf_counter() - t0)
        steps += 1
    wire.send_text(json.dumps({"type": "close"}))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(session_fn, url: str, server_pid: int, sessions: int, seconds: float, max_steps: int, label: str):
    """Run ``sessions`` concurrent session loops; returns throughput, latency percentiles, CPU and errors."""
    stats = Stats()

    async def guarded(stats: Stats, until: float, steps: int) -> None:
        wire = None
        try:  # bounded in time too: a stuck server fails the run instead of hanging it
            wire = await asyncio.wait_for(Wire.open(url), 30)
            await asyncio.wait_for(session_fn(wire, stats, until, steps), until - time.perf_counter() + 60)
        except Exception as exc:  # a load test counts failures instead of stopping at the first
            stats.error(repr(exc))
        finally:
            if wire is not None:
                wire.close()

    # warm-up: a few steps so connections and code paths are hot before timing
    warm_until = time.perf_counter() + 30
    await asyncio.gather(*(guarded(Stats(), warm_until, 3) for _ in range(min(sessions, 64))))
    server_cpu, client_cpu = _cpu_seconds(server_pid), time.process_time()
    start = time.perf_counter()
    until = start + seconds
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task(label, total=seconds)

        async def tick() -> None:
            while time.perf_counter() < until:
                progress.update(bar, completed=time.perf_counter() - start)
                await asyncio.sleep(0.2)

        ticker = asyncio.create_task(tick())
        await asyncio.gather(*(guarded(stats, until, max_steps) for _ in range(sessions)))
        ticker.cancel()
    elapsed = time.perf_counter() - start
    return {"label": label, "sessions": sessions, "latencies": stats.latencies, "seconds": elapsed,
            "server_cpu_s": _cpu_seconds(server_pid) - server_cpu, "client_cpu_s": time.process_time() - client_cpu,
            "errors": stats.errors, "error_samples": stats.error_samples}  # fmt: skip


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from repeated runs: median steps/s over the repeats; latency percentiles over all steps."""
    lat = sorted(x for r in runs for x in r["latencies"])
    pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: float("nan"))
    rates = [len(r["latencies"]) / r["seconds"] for r in runs]
    per_step = (lambda key: sum(r[key] for r in runs) / len(lat) * 1e6) if lat else (lambda key: float("nan"))
    return {
        "label": runs[0]["label"],
        "sessions": runs[0]["sessions"],
        "repeats": len(runs),
        "steps": len(lat),
        "steps_per_s": round(statistics.median(rates), 1),
        "steps_per_s_each": [round(x, 1) for x in rates],
        "p50_ms": round(pct(0.50), 2),
        "p99_ms": round(pct(0.99), 2),
        "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else float("nan"),
        "server_cpu_us_per_step": round(per_step("server_cpu_s"), 1),
        "client_cpu_us_per_step": round(per_step("client_cpu_s"), 1),
        "errors": sum(r["errors"] for r in runs),
        "error_samples": [e for r in runs for e in r["error_samples"]][:5],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each steady-state run")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats of the steady runs")
    parser.add_argument("--sessions", type=int, default=64, help="concurrent sessions in the steady runs")
    parser.add_argument("--burst", type=int, default=1000, help="sessions opened at once in the burst run")
    parser.add_argument("--threads", type=int, default=32, help="our server's env thread pool (--threads)")
    parser.add_argument(
        "--ours-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra `resrl serve env` argument, repeatable (e.g. --ours-arg=--no-inline-steps for an ablation)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--serve-openenv", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_openenv:
        serve_openenv(args.serve_openenv)
        return 0

    ours_port, peer_port = _free_port(), _free_port()
    ours_url, peer_url = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{peer_port}"
    ours_cmd = [sys.executable, "-m", "resrl", "serve", "env", "--port", str(ours_port), "--envs", "debug/echo"]
    ours_cmd += ["--import", "resrl_servers.env.echo", "--log-level", "warning", "--max-sessions", "4096"]
    ours_cmd += ["--threads", str(args.threads), *args.ours_arg]
    peer_cmd = [sys.executable, os.path.abspath(__file__), "--serve-openenv", str(peer_port)]
    configs = (
        (ours_session, ours_url, "resrl (HTTP sessions)"),
        (openenv_http_session, peer_url, "openenv-core (HTTP /step, stateless)"),
        (ours_ws_session, ours_url, "resrl (WebSocket sessions)"),
        (openenv_ws_session, peer_url, "openenv-core (WebSocket sessions)"),
    )
    runs: dict[str, list[dict[str, Any]]] = {label: [] for _, _, label in configs}
    with _server(ours_cmd, f"{ours_url}/healthz") as ours_pid, _server(peer_cmd, f"{peer_url}/health") as peer_pid:
        pids = {ours_url: ours_pid, peer_url: peer_pid}
        burst_run = drive(ours_session, ours_url, ours_pid, args.burst, 120, 5, f"burst: {args.burst}")
        burst = summarise([asyncio.run(burst_run)])
        # the servers alternate, repeat after repeat, so drifting load on a shared machine hits both alike
        for i in range(args.repeats):
            for fn, url, label in configs:
                run = drive(fn, url, pids[url], args.sessions, args.seconds, 10**9, label)
                runs[label].append(asyncio.run(run))
                console.log(f"repeat {i + 1}/{args.repeats}: {label}")
    results = [burst] + [summarise(runs[label]) for _, _, label in configs]

    cpu = ("server CPU µs/step", "client CPU µs/step")
    table = Table("run", "sessions", "steps", "steps/s", "p50 ms", "p99 ms", *cpu, "errors")
    for r in results:
        table.add_row(
            r["label"],
            str(r["sessions"]),
            str(r["steps"]),
            f"{r['steps_per_s']:.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['server_cpu_us_per_step']:.0f}",
            f"{r['client_cpu_us_per_step']:.0f}",
            str(r["errors"]),
        )
    console.print(table)
    # like against like: each of our transports over the peer's same transport
    for ours, peer in ((results[1], results[2]), (results[3], results[4])):
        ratio = ours["steps_per_s"] / peer["steps_per_s"] if peer["steps_per_s"] else float("inf")
        console.print(f"steps/s ratio, {ours['label']} / {peer['label']}: {ratio:.2f}x")
    console.print(
        f"burst of {burst['sessions']} sessions: {burst['steps']} steps, {burst['errors']} errors"
        + (f" e.g. {burst['error_samples']}" if burst["errors"] else "")
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    failed = any(r["errors"] for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
