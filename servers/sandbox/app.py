"""The sandbox server: FastAPI over a sandbox backend, with a bounded queue and Prometheus metrics.

Jobs run in the backend's executor processes (or containers), never in this process; the backend starts them
with an empty environment, so none of the server's variables reach a job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from resrl.sandbox import Job, Result, Sandbox
from resrl_servers.sandbox.fusion import RunCodeRequest, RunCodeResponse

log = logging.getLogger("resrl.server.sandbox")
MAX_BATCH = 1024


class BatchRequest(BaseModel):
    """``POST /v1/run_batch``."""

    jobs: list[Job] = Field(max_length=MAX_BATCH)


class BatchResponse(BaseModel):
    """Results in the order of the jobs."""

    results: list[Result]


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Counter("resrl_sandbox_jobs", "jobs finished, by status", ["status"], registry=r)
        self.rejected = Counter("resrl_sandbox_rejected", "requests refused with 429 (queue full)", registry=r)
        self.in_flight = Gauge("resrl_sandbox_jobs_in_flight", "jobs admitted and not finished", registry=r)
        self.run_s = Histogram("resrl_sandbox_run_seconds", "run time per job", registry=r)
        self.queue_s = Histogram("resrl_sandbox_queue_seconds", "time waiting for a free slot", registry=r)


class Admission:
    """Admits at most ``capacity`` jobs at once (running + queued); past it the caller answers 429."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.admitted = 0

    def try_admit(self, n: int) -> bool:
        """Reserve ``n`` places; False when they do not fit."""
        if self.admitted + n > self.capacity:
            return False
        self.admitted += n
        return True

    def release(self, n: int) -> None:
        """Free ``n`` places."""
        self.admitted -= n


def create_app(sandbox: Sandbox, max_queue: int = 64, workers: int = 1, owns_sandbox: bool = True) -> FastAPI:
    """The app; ``max_queue`` jobs may wait beyond the ``workers`` running before requests get 429."""
    metrics = _Metrics()
    admission = Admission(workers + max_queue)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_sandbox:
            await run_in_threadpool(sandbox.close)

    app = FastAPI(title="resrl sandbox", version="1", lifespan=lifespan)

    def busy() -> JSONResponse:
        metrics.rejected.inc()
        return JSONResponse(
            {"detail": f"sandbox queue full ({admission.capacity} jobs admitted); retry later"},
            status_code=429,
            headers={"Retry-After": "1"},
        )

    def record(result: Result) -> Result:
        metrics.jobs.labels(result.status).inc()
        metrics.run_s.observe(result.run_time)
        metrics.queue_s.observe(result.queue_time)
        return result

    async def execute(jobs: list[Job]) -> list[Result]:
        metrics.in_flight.inc(len(jobs))
        started = time.monotonic()
        try:
            if len(jobs) == 1:
                results = [await run_in_threadpool(sandbox.run, jobs[0])]
            else:
                results = await run_in_threadpool(sandbox.run_batch, jobs)
        finally:
            metrics.in_flight.dec(len(jobs))
            admission.release(len(jobs))
        log.info("ran %d job(s) in %.3f s: %s", len(jobs), time.monotonic() - started,
                 ",".join(r.status for r in results[:8]))  # fmt: skip
        return [record(r) for r in results]

    @app.post("/v1/run", response_model=Result)
    async def run(job: Job) -> Any:
        if not admission.try_admit(1):
            return busy()
        return (await execute([job]))[0]

    @app.post("/v1/run_batch", response_model=BatchResponse)
    async def run_batch(batch: BatchRequest) -> Any:
        if not batch.jobs:
            return BatchResponse(results=[])
        if len(batch.jobs) > admission.capacity:
            raise HTTPException(413, f"a batch holds at most {admission.capacity} jobs on this server")
        if not admission.try_admit(len(batch.jobs)):
            return busy()
        return BatchResponse(results=await execute(batch.jobs))

    @app.post("/run_code", response_model=RunCodeResponse)
    async def run_code(req: RunCodeRequest) -> Any:
        try:
            job = req.to_job()
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        if not admission.try_admit(1):
            return busy()
        return RunCodeResponse.from_result((await execute([job]))[0])

    @app.get("/healthz")
    async def healthz() -> Any:
        info = await asyncio.wait_for(run_in_threadpool(sandbox.health), timeout=30)
        return JSONResponse({**info, "admitted": admission.admitted, "capacity": admission.capacity},
                            status_code=200 if info.get("ok") else 503)  # fmt: skip

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(TimeoutError)
    async def _timeout(_: Request, exc: TimeoutError) -> JSONResponse:
        return JSONResponse({"ok": False, "detail": "the sandbox did not answer in time"}, status_code=503)

    return app
