"""Process-table, file and memory probes for the soak tests, and real servers started as subprocesses."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.server.helpers import free_port

SHARED_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
REPO = Path(__file__).resolve().parents[2]


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (``VmRSS`` of ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for pid {pid}")


def _stat_fields() -> Iterator[tuple[int, int, int]]:
    """(pid, ppid, real uid) of every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            # not the owner of /proc/PID: a process that changed uid is no longer dumpable, and shows as root's
            status = (entry / "status").read_text()
            uid = int(status.split("\nUid:", 1)[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue  # it exited while we looked
        yield int(entry.name), ppid, uid


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for p, ppid, _ in _stat_fields():
        children.setdefault(ppid, []).append(p)
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def processes_of(uids: Iterable[int]) -> list[int]:
    """Live processes owned by any of ``uids`` (the sandbox's job uids)."""
    wanted = set(uids)
    return [p for p, _, uid in _stat_fields() if uid in wanted]


def files_of(uids: Iterable[int], dirs: Iterable[str] = SHARED_DIRS) -> list[str]:
    """Files and folders anywhere under ``dirs`` owned by any of ``uids``."""
    wanted, found = set(uids), []
    for top in dirs:
        for root, folders, names in os.walk(top, onerror=lambda _: None):
            for name in folders + names:
                path = os.path.join(root, name)
                with contextlib.suppress(OSError):
                    if os.lstat(path).st_uid in wanted:
                        found.append(path)
    return found


@dataclass
class Served:
    """A ``resrl serve ...`` subprocess on loopback (its own process group, so ``kill -9`` takes all of it)."""

    proc: subprocess.Popen
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """``kill -9`` the server and everything it started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@contextlib.contextmanager
def serve(kind: str, *args: str, log_dir: Path, ready_s: float = 60.0) -> Iterator[Served]:
    """Start ``resrl serve KIND ARGS`` on a free loopback port; yields once ``/healthz`` answers 200, and stops
    it (SIGTERM, then SIGKILL) on exit."""
    port = free_port()
    log = log_dir / f"{kind}-{port}.log"
    cmd = [sys.executable, "-m", "resrl", "serve", kind, "--host", "127.0.0.1", "--port", str(port), *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with log.open("wb") as out:  # the repo on the path: ``--import tests.soak.envs`` works from any directory
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    served = Served(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"`{' '.join(cmd)}` exited {proc.returncode}: {log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(served.url + "/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"`{' '.join(cmd)}` not healthy within {ready_s}s: {log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield served
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                served.kill()
