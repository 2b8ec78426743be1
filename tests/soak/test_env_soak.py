"""A real ``resrl serve env`` holds 1,000 concurrent sessions while a client steps them round-robin: no error,
no lost or crossed session, and flat memory.

``RESRL_SOAK_SECONDS`` sets how long the sessions are stepped: 300 under ``CI=true``, 30 otherwise. See
docs/soak.md for the figures of a full run.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import httpx
import pytest

from resrl.client import AsyncRemoteEnv, RetryPolicy
from resrl_servers.env.echo import ECHO_ID
from tests.soak.procs import rss_mb, serve

pytestmark = pytest.mark.soak

IN_CI = os.environ.get("CI", "").lower() == "true"
SECONDS = float(os.environ.get("RESRL_SOAK_SECONDS", "300" if IN_CI else "30"))
SESSIONS = 1000
SWEEP_S = 2.0  # a sweep steps every session once and lasts at least this long: at most 500 steps/s
IN_FLIGHT = 100  # concurrent requests of the client
MAX_SWEEPS = int(SECONDS / SWEEP_S) + 1  # the count bound; echo sessions allow 10,000 steps
# Memory bound on the server's growth from the end of warm-up (a tenth of the run, at least two sweeps) to the
# end. The sessions are all open by then and echo keeps no per-step state, so a healthy server stays within a
# few MiB (docs/soak.md); 16 MiB is what a leak of ~110 bytes per step adds over a full 300 s run.
GROWTH_MB = 16.0
NO_RETRY = RetryPolicy(attempts=1, timeout_s=60)  # every failure counts: none is hidden by a retry


def test_a_thousand_sessions_for_minutes(tmp_path):
    args = ("--import", "resrl_servers.env.echo", "--envs", ECHO_ID, "--max-sessions", str(SESSIONS),
            "--session-ttl", str(SECONDS + 600), "--log-level", "warning")  # fmt: skip
    with serve("env", *args, log_dir=tmp_path) as server:
        figures = asyncio.run(_soak(server.url, server.pid))
        health = httpx.get(server.url + "/healthz").json()
        metrics = httpx.get(server.url + "/metrics").text
    print("env soak:", figures)
    assert figures["errors"] == [], f"{len(figures['errors'])} errors, e.g. {figures['errors'][:5]}"
    assert figures["opened"] == SESSIONS and figures["held"] == SESSIONS
    assert figures["steps"] == SESSIONS * figures["sweeps"]
    assert figures["sweeps"] >= 2
    assert health["sessions"] == 0  # every session was closed by its client, none reaped or lost
    assert "resrl_env_errors_total{" not in metrics
    assert figures["rss_mb"]["end"] - figures["rss_mb"]["warm"] < GROWTH_MB, figures


async def _soak(url: str, pid: int) -> dict:
    errors: list[str] = []
    rss = {"start": round(rss_mb(pid), 1)}
    gate = asyncio.Semaphore(IN_FLIGHT)
    envs = [AsyncRemoteEnv(url, ECHO_ID, max_steps=10_000, retry=NO_RETRY) for _ in range(SESSIONS)]

    latencies: list[float] = []  # of steps, from the request leaving the client's queue to its answer

    async def guarded(what: str, i: int, call):
        async with gate:
            t0 = time.perf_counter()
            try:
                return await call
            except Exception as exc:  # counted, not raised: the figures say how many and which
                errors.append(f"{what} #{i}: {type(exc).__name__}: {exc}")
                return None
            finally:
                if what == "step":
                    latencies.append(time.perf_counter() - t0)

    opened = await asyncio.gather(*(guarded("reset", i, env.reset(seed=i)) for i, env in enumerate(envs)))
    rss["opened"] = round(rss_mb(pid), 1)
    held = httpx.get(url + "/healthz").json()["sessions"]

    async def step(i: int, env: AsyncRemoteEnv, sweep: int) -> None:
        text = f"session {i} sweep {sweep}"  # unique: an answer from another session would show
        out = await guarded("step", i, env.step(text))
        if out is not None and (out[0] != [{"role": "user", "content": text}] or out[2] or out[3]):
            errors.append(f"step #{i}: unexpected answer {out[:4]}")

    started = time.monotonic()
    sweeps = 0
    warm_after = max(2, MAX_SWEEPS // 10)
    while sweeps < MAX_SWEEPS and time.monotonic() - started < SECONDS:
        t0 = time.monotonic()
        await asyncio.gather(*(step(i, env, sweeps) for i, env in enumerate(envs)))
        sweeps += 1
        if sweeps == warm_after:
            rss["warm"] = round(rss_mb(pid), 1)
        if sweeps % 10 == 0:
            print(f"env soak: {sweeps} sweeps, {time.monotonic() - started:.0f}s, {len(errors)} errors", flush=True)
        await asyncio.sleep(max(0.0, SWEEP_S - (time.monotonic() - t0)))
    stepped_s = time.monotonic() - started
    rss.setdefault("warm", rss["opened"])
    rss["end"] = round(rss_mb(pid), 1)
    await asyncio.gather(*(guarded("close", i, env.close()) for i, env in enumerate(envs)))
    lat = sorted(latencies)
    return {
        "opened": sum(o is not None for o in opened),
        "held": held,
        "sweeps": sweeps,
        "steps": len(latencies),
        "seconds": round(stepped_s, 1),
        "steps_per_s": round(len(latencies) / stepped_s, 1),
        "step_ms_p50": round(1000 * statistics.median(lat), 2) if lat else None,
        "step_ms_p99": round(1000 * lat[int(0.99 * (len(lat) - 1))], 2) if lat else None,
        "rss_mb": rss,
        "errors": errors,
    }
