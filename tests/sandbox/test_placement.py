"""Where the local backend's slots run: one CPU each when there are enough, floating otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from resrl.sandbox import Job
from resrl.sandbox.backends.local import EXECUTOR_PATH, LocalSandbox
from resrl.sandbox.backends.remote import RemoteSandbox
from tests.sandbox.support import start_server, stop_server

_PROBE = "import json, os\nprint(json.dumps(sorted(os.sched_getaffinity(0))))"  # the CPUs a job may run on


def _job_cpus(**options) -> list[list[int]]:
    unprivileged = os.geteuid() != 0  # no isolation then: run the probe anyway, placement is the same
    sandbox = LocalSandbox(allow_network=unprivileged, allow_host_files=unprivileged, **options)
    try:
        results = sandbox.run_batch([Job(code=_PROBE)] * (3 * sandbox.workers))
    finally:
        sandbox.close()
    assert all(r.passed for r in results), [r.message for r in results]
    return [json.loads(r.stdout) for r in results]


def test_each_slot_runs_its_jobs_on_a_cpu_of_its_own():
    cpus = sorted(os.sched_getaffinity(0))
    seen = _job_cpus(workers=len(cpus))
    assert all(len(c) == 1 and c[0] in cpus for c in seen), seen
    assert len({c[0] for c in seen}) > 1 or len(cpus) == 1  # the batch spread over the slots, not one CPU


def test_slots_float_with_more_workers_than_cpus_or_pinning_off():
    cpus = sorted(os.sched_getaffinity(0))
    assert _job_cpus(workers=len(cpus) + 1) == [cpus] * 3 * (len(cpus) + 1)
    assert _job_cpus(workers=1, pin_cpus=False) == [cpus] * 3


def test_a_cpu_it_cannot_run_on_is_a_clear_error():
    missing = max(os.sched_getaffinity(0)) + 4096
    proc = subprocess.run([sys.executable, "-I", str(EXECUTOR_PATH), "--stdio", "--cpu", str(missing)],
                          capture_output=True, text=True, env={}, timeout=60)  # fmt: skip
    assert proc.returncode != 0 and f"cannot run on CPU {missing}" in proc.stderr


def test_the_server_lets_slots_float_on_request():
    proc, url = start_server("--workers", "1", "--no-pin-cpus")
    try:
        client = RemoteSandbox(url)
        result = client.run(Job(code=_PROBE))
        client.close()
    finally:
        stop_server(proc)
    assert result.passed and json.loads(result.stdout) == sorted(os.sched_getaffinity(0))
    refused = subprocess.run([sys.executable, "-m", "resrl", "serve", "sandbox", "--backend", "docker",
                              "--no-pin-cpus"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert refused.returncode != 0 and "apply to the local backend only" in refused.stderr
