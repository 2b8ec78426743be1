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

    ``url`` is one sandbox server or several (a list, or comma-separated as in ``RESRL_SANDBOX_URL``): each
    request goes to the replica with the fewest requests in flight, and a replica that refuses or drops the
    connection is passed over for a few seconds while the others take its jobs. Connection failures and server
    errors become ``infra_error`` results, never exceptions.
    """

    name = "remote"

    def __init__(self, url: str | Sequence[str], timeout: float = 300.0, retries: int = 5) -> None:
        from resrl.client.transport import Balancer

        urls = [u.strip() for u in url.split(",")] if isinstance(url, str) else list(url)
        self.urls = [u.rstrip("/") for u in urls if u.strip()]
        if not self.urls:
            raise ValueError("give at least one sandbox server URL")
        self.url = self.urls[0]
        self.retries = retries
        self.balancer = Balancer(self.urls)
        self.client = httpx.Client(timeout=timeout)

    def _post(self, path: str, payload: Any) -> httpx.Response | str:
        for attempt in range(self.retries + 1):
            url = self.balancer.order()[0]
            self.balancer.opened(url)  # counts requests in flight, so the next one goes elsewhere
            try:
                resp = self.client.post(url + path, json=payload)
            except httpx.HTTPError as exc:
                if isinstance(exc, httpx.ConnectError | httpx.RemoteProtocolError | httpx.ReadError):
                    self.balancer.failed(url)
                    if len(self.urls) > 1:
                        log.warning("sandbox server %s failed (%s); trying another replica", url, type(exc).__name__)
                if attempt == self.retries:
                    return f"sandbox server {url} unreachable: {type(exc).__name__}: {exc}"
                time.sleep(min(2.0, 0.1 * 2**attempt))
                continue
            finally:
                self.balancer.opened(url, -1)
            self.balancer.answered(url)
            if resp.status_code in (429, 503) and attempt < self.retries:
                wait = float(resp.headers.get("Retry-After", "1"))
                log.info("sandbox server %s busy (%s); retrying in %.1f s", url, resp.status_code, wait)
                time.sleep(wait)
                continue
            if resp.status_code != 200:
                return f"sandbox server {url} answered {resp.status_code}: {resp.text[:500]}"
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
        """The server's ``/healthz``; with several replicas, ``ok`` when any is, and each one's under ``replicas``."""
        replicas = {url: self._health(url) for url in self.urls}
        if len(self.urls) == 1:
            return replicas[self.url]
        return {"ok": any(h["ok"] for h in replicas.values()), "replicas": replicas}

    def _health(self, url: str) -> dict[str, Any]:
        try:
            resp = self.client.get(url + "/healthz")
            return {**resp.json(), "ok": resp.status_code == 200 and resp.json().get("ok", False)}
        except (httpx.HTTPError, ValueError) as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()
