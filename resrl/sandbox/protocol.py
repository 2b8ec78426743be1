"""The sandbox protocol and the slot pool the local and docker backends share."""

from __future__ import annotations

import json
import logging
import queue
import struct
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, Protocol, runtime_checkable

from resrl.sandbox.models import Job, Result

log = logging.getLogger("resrl.sandbox")


@runtime_checkable
class Sandbox(Protocol):
    """Runs untrusted programs. Every backend (local, docker, remote) implements these four methods."""

    def run(self, job: Job) -> Result:
        """Run one job and return its verdict; sandbox faults come back as ``infra_error``, never raise."""
        ...

    def run_batch(self, jobs: Sequence[Job]) -> list[Result]:
        """Run jobs concurrently; results are in the order of ``jobs``."""
        ...

    def health(self) -> dict[str, Any]:
        """``{"ok": bool, ...}`` with what isolation the backend provides."""
        ...

    def close(self) -> None:
        """Stop every worker; no process of the sandbox outlives this call."""
        ...


class Slot:
    """One executor process (one job at a time) behind a framed-JSON byte stream."""

    def start(self) -> None:
        """Start (or restart) the executor."""
        raise NotImplementedError

    def streams(self) -> tuple[BinaryIO, BinaryIO]:
        """The (reader, writer) of the executor's transport."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the executor and release everything it holds."""
        raise NotImplementedError

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its answer."""
        return json.loads(self.request_bytes(json.dumps(payload).encode()))

    def request_bytes(self, data: bytes) -> bytes:
        """Send one request, already JSON, and wait for its answer's JSON."""
        reader, writer = self.streams()
        writer.write(struct.pack(">I", len(data)) + data)
        writer.flush()
        (size,) = struct.unpack(">I", _read_exactly(reader, 4))
        return _read_exactly(reader, size)


def _read_exactly(reader: BinaryIO, n: int) -> bytes:
    # a raw pipe returns what is there, not what was asked for
    data = bytearray()
    while len(data) < n:
        chunk = reader.read(n - len(data))
        if not chunk:
            raise ConnectionError("the executor closed its channel")
        data += chunk
    return bytes(data)


class PooledSandbox:
    """A sandbox made of ``workers`` slots; jobs wait in a queue for a free slot (that wait is ``queue_time``)."""

    name = "pool"
    result_metadata: dict[str, Any] = {}  # noqa: RUF012 - read-only per-class defaults, merged into results

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self._free: queue.Queue[Slot] = queue.Queue()
        self._slots: list[Slot] = []
        self._closed = False
        self._lock = threading.Lock()
        self._batch = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"sandbox-{self.name}")

    def _add_slot(self, slot: Slot) -> None:
        slot.start()
        self._slots.append(slot)
        self._free.put(slot)

    def run(self, job: Job) -> Result:
        """Run one job on the next free slot."""
        if self._closed:
            return Result.infra("the sandbox is closed")
        submitted = time.monotonic()
        slot = self._free.get()
        queue_time = time.monotonic() - submitted
        try:
            # pydantic's own JSON both ways: a third of the CPU the json module and dicts took
            answer = slot.request_bytes(b'{"op": "run", "job": ' + job.model_dump_json().encode() + b"}")
            result = Result.model_validate_json(answer)
        except Exception as exc:  # a dead or confused executor: restart it, report ours as infra_error
            log.warning("executor of %s failed (%s); restarting it", self.name, exc)
            result = Result.infra(f"executor failed: {type(exc).__name__}: {exc}")
            try:
                slot.stop()
                slot.start()
            except Exception as restart_exc:
                log.error("could not restart an executor of %s: %s", self.name, restart_exc)
        finally:
            self._free.put(slot)
        result.queue_time = queue_time
        result.metadata = {**result.metadata, **self.result_metadata, "backend": self.name}
        return result

    def run_batch(self, jobs: Sequence[Job]) -> list[Result]:
        """Run jobs on all slots at once, results in input order."""
        results: list[Result | None] = [None] * len(jobs)
        indices = iter(range(len(jobs)))  # next() of a range iterator is atomic under the GIL

        def drain() -> None:  # one per slot: no future per job, no wake-up of the caller per result
            for i in indices:
                results[i] = self.run(jobs[i])

        for future in [self._batch.submit(drain) for _ in range(min(self.workers, len(jobs)))]:
            future.result()
        return results  # type: ignore[return-value] - every index was filled

    def health(self) -> dict[str, Any]:
        """Ask a free slot (without waiting for a busy one) what isolation it has."""
        try:
            slot = self._free.get(timeout=5)
        except queue.Empty:
            return {"ok": True, "backend": self.name, "workers": self.workers, "busy": True}
        try:
            info = slot.request({"op": "health"})
        except Exception as exc:
            info = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            self._free.put(slot)
        return {**info, "backend": self.name, "workers": self.workers}

    def close(self) -> None:
        """Stop all slots."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._batch.shutdown(wait=True)
        for slot in self._slots:
            slot.stop()

    def __enter__(self) -> PooledSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
