"""The remote backend: a client of the sandbox server (``resrl serve sandbox``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx

from resrl.sandbox.models import Job, Result

log = logging.getLogger("resrl.sandbox.remote")


class RemoteSandbox:
    """Speaks ``POST /v1/run`` and ``/v1/run_batch``; honours ``429`` + ``Retry-After`` up to ``retries`` times.

    Connection failures and server errors become ``infra_error`` results, never exceptions.
    """

    name = "remote"

    def __init__(self, url: str, timeout: float = 300.0, retries: int = 5) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.client = httpx.Client(base_url=self.url, timeout=timeout)

    def _post(self, path: str, payload: Any) -> httpx.Response | str:
        for attempt in range(self.retries + 1):
            try:
                resp = self.client.post(path, json=payload)
            except httpx.HTTPError as exc:
                if attempt == self.retries:
                    return f"sandbox server {self.url} unreachable: {type(exc).__name__}: {exc}"
                time.sleep(min(2.0, 0.1 * 2**attempt))
                continue
            if resp.status_code in (429, 503) and attempt < self.retries:
                wait = float(resp.headers.get("Retry-After", "1"))
                log.info("sandbox server busy (%s); retrying in %.1f s", resp.status_code, wait)
                time.sleep(wait)
                continue
            if resp.status_code != 200:
                return f"sandbox server answered {resp.status_code}: {resp.text[:500]}"
            return resp
        return "sandbox server stayed busy"

    def run(self, job: Job) -> Result:
        """Run one job on the server."""
        resp = self._post("/v1/run", job.model_dump(mode="json"))
        if isinstance(resp, str):
            return Result.infra(resp, backend=self.name)
        return Result.model_validate(resp.json())

    def run_batch(self, jobs: Sequence[Job]) -> list[Result]:
        """Run jobs in one request; results in input order."""
        resp = self._post("/v1/run_batch", {"jobs": [j.model_dump(mode="json") for j in jobs]})
        if isinstance(resp, str):
            return [Result.infra(resp, backend=self.name) for _ in jobs]
        return [Result.model_validate(r) for r in resp.json()["results"]]

    def health(self) -> dict[str, Any]:
        """The server's ``/healthz``."""
        try:
            resp = self.client.get("/healthz")
            return {**resp.json(), "ok": resp.status_code == 200 and resp.json().get("ok", False)}
        except (httpx.HTTPError, ValueError) as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()
