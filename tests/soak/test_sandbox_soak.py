"""10,000 sandbox jobs, good programs and attacks mixed, through the local backend in this process and a real
``resrl serve sandbox`` on loopback at the same time. Afterwards no job process, job uid or job file is left, and
the fork-servers' and the server's memory stayed flat.

``RESRL_SOAK_JOBS`` changes the count (default 10,000: about 2-3 minutes on two cores). See docs/soak.md.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from resrl.sandbox import Job, Result
from resrl.sandbox.backends.local import LocalSandbox
from resrl.sandbox.backends.remote import RemoteSandbox
from tests.soak.jobs import Kind, job_mix
from tests.soak.procs import descendants, files_of, processes_of, rss_mb, serve

pytestmark = pytest.mark.soak

N_JOBS = int(os.environ.get("RESRL_SOAK_JOBS", "10000"))
CHUNK = 50  # jobs per run_batch call; within the server's queue (2 workers + 64 waiting)
SERVER_EVERY = 5  # every 5th chunk goes to the HTTP server: a fifth of the jobs
WARM_UP = 1000  # jobs before the "warm" memory reading (allocator pools and caches fill up first)
# Memory bounds on growth after warm-up. A healthy run grows under 0.5 MiB per process (docs/soak.md). Each
# local slot runs ~4,000 jobs after warm-up, so 2 MiB catches a leak of half a kilobyte per job; the server
# handles ~1,800 jobs (in ~36 batch requests), so 8 MiB catches ~4.5 KB per job.
EXECUTOR_GROWTH_MB = 2.0
SERVER_GROWTH_MB = 8.0


def _executors(parent: int) -> list[int]:
    """The processes of the sandbox's slots below ``parent``, between jobs: each executor (fork-server) and any
    helper it runs from the same file (a zygote that forks the programs)."""
    out = []
    for pid in descendants(parent):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"executor.py") for part in cmdline):
            out.append(pid)
    return sorted(out)


class Tally:
    """Outcomes by kind, the job uids seen, and the jobs that ended otherwise than their kind allows."""

    def __init__(self) -> None:
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.uids: set[int] = set()
        self.wrong: list[str] = []
        self.lock = threading.Lock()

    def add(self, batch: list[tuple[Kind, int, Job]], results: list[Result]) -> set[int]:
        uids = set()
        with self.lock:
            for (kind, i, _), result in zip(batch, results, strict=True):
                self.outcomes[kind.name, result.status] += 1
                if result.metadata.get("dedicated_uid"):
                    uids.add(int(result.metadata["uid"]))
                expected_out = kind.stdout(i) if kind.stdout else None
                if result.status not in kind.statuses or (expected_out is not None and result.stdout != expected_out):
                    self.wrong.append(f"{kind.name}#{i}: {result.status} {result.message!r} {result.stdout[:80]!r}")
            self.uids |= uids
        return uids


def test_ten_thousand_jobs_leave_nothing_behind(tmp_path):
    jobs = list(job_mix(N_JOBS, seed=7))
    chunks = [jobs[i : i + CHUNK] for i in range(0, len(jobs), CHUNK)]
    tally = Tally()
    strays: list[str] = []
    root = os.geteuid() == 0
    started = time.monotonic()
    # Sandboxes of earlier tests in this process may still hold executors: count only this test's own.
    earlier = set(_executors(os.getpid()))
    local = LocalSandbox(workers=2)
    with serve("sandbox", "--workers", "2", "--max-queue", "64", log_dir=tmp_path) as server:
        remote = RemoteSandbox(server.url)

        def own_executors() -> list[int]:
            return [p for p in _executors(os.getpid()) if p not in earlier and p not in descendants(server.pid)]

        local_execs = own_executors()
        server_execs = _executors(server.pid)
        slots = [[p for p in execs if _parent(p) == owner] for owner, execs in
                 ((os.getpid(), local_execs), (server.pid, server_execs))]  # fmt: skip
        assert [len(s) for s in slots] == [2, 2], (local_execs, server_execs)
        mem = {"start": _memory(local_execs, server.pid, server_execs)}

        def run(chunk: list[tuple[Kind, int, Job]], backend) -> None:
            uids = tally.add(chunk, backend.run_batch([job for _, _, job in chunk]))
            # between two batches of a backend none of its job processes may live
            if root and (left := processes_of(uids)):
                strays.append(f"{backend.name}: processes {left} of job uids {sorted(uids)} after a batch")

        done = 0
        with ThreadPoolExecutor(1, thread_name_prefix="soak-remote") as to_server:
            pending = []
            for n, chunk in enumerate(chunks):
                if n % SERVER_EVERY == 0:
                    pending.append(to_server.submit(run, chunk, remote))
                else:
                    run(chunk, local)
                done += len(chunk)
                if "warm" not in mem and done >= WARM_UP:
                    for f in pending:
                        f.result()
                    mem["warm"] = _memory(local_execs, server.pid, server_execs)
                if done % 1000 < CHUNK:
                    print(f"soak: {done}/{len(jobs)} jobs in {time.monotonic() - started:.0f}s", flush=True)
            for f in pending:
                f.result()
        mem["end"] = _memory(local_execs, server.pid, server_execs)
        run_s = time.monotonic() - started
        # the same executors served every job: none died (a restart would also hide a leak)
        assert _executors(server.pid) == server_execs
        assert own_executors() == local_execs
        execs = local_execs + server_execs
        assert [p for e in execs for p in descendants(e) if p not in execs] == [], "a job's process outlived it"
        work_dirs = [*Path(local.base_dir).glob("work-*"), *Path("/tmp").glob(f"resrl-sandbox-{server.pid}-*/work-*")]
        assert len(work_dirs) == 4  # one per slot
        assert [str(p) for d in work_dirs for p in d.iterdir()] == [], "files left in a work directory"
        remote.close()
    local.close()
    assert not Path(local.base_dir).exists()
    assert not list(Path("/tmp").glob(f"resrl-sandbox-{server.pid}-*")), "the server left its job folders"

    print(f"soak: {len(jobs)} jobs in {run_s:.0f}s ({len(jobs) / run_s:.0f} jobs/s); memory MiB {mem}")
    print("soak: outcomes", dict(sorted(tally.outcomes.items())))
    assert tally.wrong == [], f"{len(tally.wrong)} jobs ended unexpectedly, e.g. {tally.wrong[:10]}"
    assert not any(status == "infra_error" for _, status in tally.outcomes)
    assert strays == []
    if root:  # with dedicated uids: nothing of any job uid is left in the process table or the shared folders
        assert len(tally.uids) == 4
        assert processes_of(tally.uids) == []
        assert files_of(tally.uids) == []
    for name in ("local executors", "server executors"):  # each process of a slot
        growth = max(e - w for e, w in zip(mem["end"][name], mem["warm"][name], strict=True))
        assert growth < EXECUTOR_GROWTH_MB, f"{name} grew {growth:.1f} MiB after warm-up: {mem}"
    assert mem["end"]["server"] - mem["warm"]["server"] < SERVER_GROWTH_MB, mem


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _memory(local_execs: list[int], server: int, server_execs: list[int]) -> dict:
    return {
        "local executors": [round(rss_mb(p), 1) for p in local_execs],
        "server": round(rss_mb(server), 1),
        "server executors": [round(rss_mb(p), 1) for p in server_execs],
    }
