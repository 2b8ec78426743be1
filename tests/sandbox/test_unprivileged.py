"""The executor without root (no dedicated uid, no namespaces): it refuses jobs and says why; with the operator's
``--allow-network --allow-host-files`` it runs them, says so, and still leaves nothing behind.

Run inside a container as ``nobody`` through the executor's own ``--stdio`` transport.
"""

from __future__ import annotations

import json
import struct
import subprocess

import pytest

from resrl.sandbox import Job, Limits, make_sandbox
from resrl.sandbox.backends.local import EXECUTOR_PATH

DAEMON = (
    "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
    "        os.closerange(0, 64)\n        time.sleep(120)\n    os._exit(0)\nprint('parent done')\n"
)
PS = "import subprocess\nprint(subprocess.run(['ps', '-eo', 'pid=,comm='], capture_output=True, text=True).stdout)"


@pytest.fixture
def unprivileged(require_docker):
    """Start the executor as ``nobody`` (with extra executor flags); returns its request function."""
    from resrl.sandbox.backends.docker import DEFAULT_IMAGE

    procs = []

    def start(*flags: str):
        cmd = ["docker", "run", "--rm", "-i", "--user", "65534", "--network", "none",
               "-v", f"{EXECUTOR_PATH.parent}:/opt/resrl:ro", DEFAULT_IMAGE,
               "python3", "-I", "/opt/resrl/executor.py", "--stdio", *flags]  # fmt: skip
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        procs.append(proc)

        def request(payload: dict) -> dict:
            data = json.dumps(payload).encode()
            proc.stdin.write(struct.pack(">I", len(data)) + data)
            proc.stdin.flush()
            (size,) = struct.unpack(">I", proc.stdout.read(4))
            return json.loads(proc.stdout.read(size))

        return request

    yield start
    for proc in procs:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0


def test_unprivileged_executor_refuses_jobs(unprivileged):
    request = unprivileged()
    health = request({"op": "health"})
    assert health["ok"] is False
    assert (health["netns"], health["filesystem"], health["dedicated_uid"]) == (False, "host", False)
    assert "--allow-network" in health["error"] and "--allow-host-files" in health["error"]
    marker = "print('RAN')\nopen('/tmp/ran', 'w').write('x')\n"
    ran = request({"op": "run", "job": {"code": marker, "tests": [], "limits": Limits(wall_s=5).model_dump()}})
    assert ran["status"] == "infra_error"
    assert "refuses" in ran["message"] and "no network namespace" in ran["message"]
    assert "stdout" not in ran or "RAN" not in ran["stdout"]
    allowed = unprivileged("--allow-network")  # the filesystem still cannot be isolated
    refused = allowed({"op": "run", "job": {"code": marker, "tests": [], "limits": Limits(wall_s=5).model_dump()}})
    assert refused["status"] == "infra_error" and "no private root" in refused["message"]
    assert "no network namespace" not in refused["message"]


def test_unprivileged_executor_with_operator_flags_reports_and_contains(unprivileged):
    request = unprivileged("--allow-network", "--allow-host-files")
    health = request({"op": "health"})
    assert health["ok"] is True
    assert (health["netns"], health["filesystem"], health["uid"]) == (False, "host", 65534)
    assert (health["allow_network"], health["allow_host_files"]) == (True, True)
    limits = Limits(wall_s=5).model_dump()
    ran = request({"op": "run", "job": {"code": DAEMON, "tests": [], "limits": limits}})
    assert (ran["status"], ran["stdout"], ran["metadata"]["netns"]) == ("passed", "parent done\n", False)
    processes = request({"op": "run", "job": {"code": PS, "tests": [], "limits": limits}})["stdout"]
    assert processes.count("python3") == 2  # the executor and this job: the daemon is gone


def test_make_sandbox_reads_the_environment(monkeypatch):
    monkeypatch.setenv("RESRL_SANDBOX_URL", "http://127.0.0.1:9")
    remote = make_sandbox()
    assert type(remote).__name__ == "RemoteSandbox"
    assert remote.run(Job(code="print(1)")).status == "infra_error"
    remote.close()
    with pytest.raises(ValueError, match="unknown sandbox"):
        make_sandbox("podman")
