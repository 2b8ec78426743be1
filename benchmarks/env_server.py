"""Env server load benchmark: ours vs openenv-core's server, same echo env, same client, same run.

    python benchmarks/env_server.py [--seconds 5] [--repeats 3] [--sessions 64] [--burst 1000] [--json out.json]

1. Burst: ``--burst`` sessions open at once on our server, each plays 5 steps and closes; no errors allowed.
2. Steady: ``--sessions`` concurrent sessions step in a closed loop for ``--seconds``, like against like:
   - resrl HTTP sessions (``POST /v1/sessions/{id}/step``) vs openenv-core HTTP ``POST /step`` (stateless: it
     builds an env per request — its only HTTP step);
   - resrl WebSocket sessions (``/v1/ws``) vs openenv-core WebSocket sessions (``/ws``, one env per socket).
   The four runs alternate ``--repeats`` times; steps/s is the median over repeats, p50/p99 over all steps,
   and our steps/s over the peer's is printed for each transport.
Both servers run under uvicorn on 127.0.0.1 in subprocesses; the load generator is one aiohttp client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

console = Console()


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
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        os.unlink(log.name)


# -- clients: one session's loop for each protocol ------------------------------------------------------------
class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.error_samples: list[str] = []

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)


async def ours_session(http: aiohttp.ClientSession, url: str, stats: Stats, until: float, max_steps: int) -> None:
    body = {"env_id": "debug/echo", "options": {"max_steps": 10_000}}
    async with http.post(f"{url}/v1/sessions", json=body) as r:
        if r.status != 200:
            stats.error(f"create {r.status} {await r.text()}")
            return
        sid = (await r.json())["session_id"]
    step_url, steps = f"{url}/v1/sessions/{sid}/step", 0
    while steps < max_steps and time.perf_counter() < until:
        t0 = time.perf_counter()
        async with http.post(step_url, json={"action": f"turn {steps}"}) as r:
            body = await r.read()
            if r.status != 200:
                stats.error(f"step {r.status} {body[:200]!r}")
                break
        stats.latencies.append(time.perf_counter() - t0)
        steps += 1
    async with http.delete(f"{url}/v1/sessions/{sid}") as r:
        if r.status != 200:
            stats.error(f"delete {r.status}")


async def ours_ws_session(http: aiohttp.ClientSession, url: str, stats: Stats, until: float, max_steps: int):
    async with http.ws_connect(url.replace("http", "ws", 1) + "/v1/ws") as ws:
        reset = {"op": "reset", "env_id": "debug/echo", "options": {"max_steps": 10_000}}
        await ws.send_str(json.dumps(reset))
        reply = json.loads(await ws.receive_str())
        if "session_id" not in reply:
            stats.error(f"reset {reply}")
            return
        steps = 0
        while steps < max_steps and time.perf_counter() < until:
            t0 = time.perf_counter()
            await ws.send_str(json.dumps({"op": "step", "action": f"turn {steps}"}))
            reply = json.loads(await ws.receive_str())
            if "error" in reply:
                stats.error(f"step {reply}")
                break
            stats.latencies.append(time.perf_counter() - t0)
            steps += 1
        await ws.send_str(json.dumps({"op": "close"}))
        await ws.receive_str()


async def openenv_ws_session(http: aiohttp.ClientSession, url: str, stats: Stats, until: float, max_steps: int):
    async with http.ws_connect(url.replace("http", "ws", 1) + "/ws") as ws:
        await ws.send_str(json.dumps({"type": "reset", "data": {}}))
        reply = json.loads(await ws.receive_str())
        if reply.get("type") != "observation":
            stats.error(f"reset {reply}")
            return
        steps = 0
        while steps < max_steps and time.perf_counter() < until:
            t0 = time.perf_counter()
            await ws.send_str(json.dumps({"type": "step", "data": {"message": f"turn {steps}"}}))
            reply = json.loads(await ws.receive_str())
            if reply.get("type") != "observation":
                stats.error(f"step {reply}")
                break
            stats.latencies.append(time.perf_counter() - t0)
            steps += 1
        await ws.send_str(json.dumps({"type": "close"}))


async def openenv_http_session(http: aiohttp.ClientSession, url: str, stats: Stats, until: float, max_steps: int):
    async with http.post(f"{url}/reset", json={}) as r:
        if r.status != 200:
            stats.error(f"reset {r.status}")
            return
        await r.read()
    steps = 0
    while steps < max_steps and time.perf_counter() < until:
        t0 = time.perf_counter()
        async with http.post(f"{url}/step", json={"action": {"message": f"turn {steps}"}}) as r:
            body = await r.read()
            if r.status != 200:
                stats.error(f"step {r.status} {body[:200]!r}")
                break
        stats.latencies.append(time.perf_counter() - t0)
        steps += 1


async def drive(session_fn, url: str, sessions: int, seconds: float, max_steps: int, label: str) -> dict[str, Any]:
    """Run ``sessions`` concurrent session loops; returns throughput, latency percentiles and errors."""
    stats = Stats()
    connector = aiohttp.TCPConnector(limit=sessions + 8, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        # warm-up: a few steps so connections and code paths are hot before timing
        warm = Stats()
        await asyncio.gather(
            *(session_fn(http, url, warm, time.perf_counter() + 30, 3) for _ in range(min(sessions, 64))),
            return_exceptions=True,
        )
        start = time.perf_counter()
        until = start + seconds
        with Progress(console=console, transient=True) as progress:
            bar = progress.add_task(label, total=seconds)

            async def tick() -> None:
                while time.perf_counter() < until:
                    progress.update(bar, completed=time.perf_counter() - start)
                    await asyncio.sleep(0.2)

            ticker = asyncio.create_task(tick())

            async def guarded() -> None:
                try:
                    await session_fn(http, url, stats, until, max_steps)
                except Exception as exc:  # a load test counts failures instead of stopping at the first
                    stats.error(repr(exc))

            await asyncio.gather(*(guarded() for _ in range(sessions)))
            ticker.cancel()
        elapsed = time.perf_counter() - start
    return {"label": label, "sessions": sessions, "latencies": stats.latencies, "seconds": elapsed,
            "errors": stats.errors, "error_samples": stats.error_samples}  # fmt: skip


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from repeated runs: median steps/s over the repeats; latency percentiles over all steps."""
    lat = sorted(x for r in runs for x in r["latencies"])
    pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: float("nan"))
    rates = [len(r["latencies"]) / r["seconds"] for r in runs]
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
    ours_cmd += ["--threads", str(args.threads)]
    peer_cmd = [sys.executable, os.path.abspath(__file__), "--serve-openenv", str(peer_port)]
    configs = (
        (ours_session, ours_url, "resrl (HTTP sessions)"),
        (openenv_http_session, peer_url, "openenv-core (HTTP /step, stateless)"),
        (ours_ws_session, ours_url, "resrl (WebSocket sessions)"),
        (openenv_ws_session, peer_url, "openenv-core (WebSocket sessions)"),
    )
    runs: dict[str, list[dict[str, Any]]] = {label: [] for _, _, label in configs}
    with _server(ours_cmd, f"{ours_url}/healthz"), _server(peer_cmd, f"{peer_url}/health"):
        burst = summarise([asyncio.run(drive(ours_session, ours_url, args.burst, 120, 5, f"burst: {args.burst}"))])
        # the servers alternate, repeat after repeat, so drifting load on a shared machine hits both alike
        for i in range(args.repeats):
            for fn, url, label in configs:
                runs[label].append(asyncio.run(drive(fn, url, args.sessions, args.seconds, 10**9, label)))
                console.log(f"repeat {i + 1}/{args.repeats}: {label}")
    results = [burst] + [summarise(runs[label]) for _, _, label in configs]

    table = Table("run", "sessions", "steps", "steps/s", "p50 ms", "p99 ms", "errors")
    for r in results:
        table.add_row(
            r["label"],
            str(r["sessions"]),
            str(r["steps"]),
            f"{r['steps_per_s']:.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
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
    failed = burst["errors"] or results[1]["errors"] or results[3]["errors"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
