"""Containment checks shared by the sandbox tests, and the secret no job may ever see."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from resrl.sandbox import Job, Sandbox
from resrl.sandbox.backends.local import LocalSandbox
from resrl.sandbox.tester import TESTER_UID_BASE

# Set at import, before any sandbox starts (conftest imports this first): a job must never see it.
SERVER_SECRET = "resrl-secret-" + secrets.token_hex(8)
os.environ["RESRL_TEST_SERVER_SECRET"] = SERVER_SECRET


def job_processes(sandbox: Sandbox) -> list[str]:
    """Processes that belong to jobs (should be none between jobs)."""
    if isinstance(sandbox, LocalSandbox):
        uids = {str(u) for u in sandbox.job_uids}
        found = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            except OSError:
                continue
            if fields.get("Uid", "").split()[0:1] and fields["Uid"].split()[0] in uids:
                found.append(f"{status.parent.name} {fields.get('Name', '').strip()}")
        return found
    found = []
    for container in sandbox.containers:
        top = container.top(ps_args="-eo pid,user,comm")
        # neither root's (the executor, its zygote) nor the long-lived test process's (a uid of its own)
        found += [" ".join(p) for p in top["Processes"] if p[1] not in ("root", "0") and not _tester_uid(p[1])]
    return found


def _tester_uid(user: str) -> bool:
    return user.isdigit() and int(user) >= TESTER_UID_BASE


def leftover_files(sandbox: Sandbox) -> list[str]:
    """Job directories or files of job uids still on disk (should be none between jobs)."""
    if isinstance(sandbox, LocalSandbox):
        uids = set(sandbox.job_uids)
        found = []
        for entry in Path(sandbox.base_dir).iterdir():
            # each slot keeps one work directory, emptied after every job; root-* are its private roots
            if entry.name.startswith("work-"):
                found += [str(p) for p in entry.iterdir()]
            elif not entry.name.startswith("root-"):
                found.append(str(entry))
        for d in ("/tmp", "/var/tmp", "/dev/shm"):
            for entry in Path(d).iterdir():
                try:
                    if entry.lstat().st_uid in uids:
                        found.append(str(entry))
                except OSError:
                    continue
        return found
    found = []
    for container in sandbox.containers:
        out = container.exec_run(["sh", "-c", "find /tmp/resrl-sandbox -mindepth 2; find /tmp /dev/shm -mindepth 1 "
                                  "-maxdepth 1 ! -name resrl-sandbox"]).output.decode()  # fmt: skip
        found += [line for line in out.splitlines() if line.strip()]
    return found


def assert_contained(sandbox: Sandbox) -> None:
    """The sandbox is healthy, still runs a normal job, and the job left nothing behind."""
    assert sandbox.health()["ok"]
    assert sandbox.run(Job(code="print(6 * 7)")).stdout == "42\n"
    assert job_processes(sandbox) == []
    assert leftover_files(sandbox) == []


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*extra: str):
    """``resrl serve sandbox`` on 127.0.0.1 with ``extra`` options; returns (process, url) once healthy."""
    port = free_port()
    env = {**os.environ, "RESRL_TEST_SERVER_SECRET": SERVER_SECRET}
    cmd = [sys.executable, "-m", "resrl", "serve", "sandbox", "--host", "127.0.0.1", "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stdout.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not come up")


def stop_server(proc: subprocess.Popen) -> None:
    """Stop a server from :func:`start_server`."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()
