"""The local backend: warm executor processes on this machine, one job at a time each."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO

from resrl.sandbox import executor
from resrl.sandbox.protocol import PooledSandbox, Slot

EXECUTOR_PATH = Path(executor.__file__)
# slots pinned so far by this process: the next sandbox starts on the next CPU, and sandboxes of other
# processes (offset by pid) start elsewhere too, so small sandboxes do not all crowd the first CPU
_placed = itertools.count()


def slot_cpus(workers: int, cpus: list[int], pin: bool = True) -> list[int | None]:
    """The CPU of each of ``workers`` slots, all None (floating) unless ``pin`` and there are no more workers
    than ``cpus``: one CPU each, starting where the last sandbox placed left off."""
    if not pin or workers > len(cpus):
        return [None] * workers
    return [cpus[(os.getpid() + next(_placed)) % len(cpus)] for _ in range(workers)]


def new_base_dir() -> str:
    """A fresh folder for one sandbox's work directories, mode 0711 (job uids may pass, not list)."""
    path = tempfile.mkdtemp(prefix=f"resrl-sandbox-{os.getpid()}-")
    os.chmod(path, 0o711)
    return path


class LocalSlot(Slot):
    """An executor started as ``python -I executor.py --stdio`` with an empty environment."""

    def __init__(
        self, base_dir: str, allow_network: bool = False, allow_host_files: bool = False, cpu: int | None = None
    ) -> None:
        self.base_dir = base_dir
        self.flags = ["--allow-network"] * allow_network + ["--allow-host-files"] * allow_host_files
        if cpu is not None:
            self.flags += ["--cpu", str(cpu)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-I", str(EXECUTOR_PATH), "--stdio", "--base", self.base_dir, *self.flags]
        # env={}: the server's own variables (tokens, URLs) must never reach a job
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={}, bufsize=0)

    def streams(self) -> tuple[BinaryIO, BinaryIO]:
        assert self.proc is not None and self.proc.stdout and self.proc.stdin
        return self.proc.stdout, self.proc.stdin

    def stop(self) -> None:
        if self.proc is None:
            return
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream:
                stream.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class LocalSandbox(PooledSandbox):
    """The default backend: ``workers`` warm fork-servers (default: the CPU count).

    Each job gets its own session, an empty environment, a private work directory and ``/tmp`` in a private
    read-only root, rlimits, a dedicated uid and an empty network namespace. Where the network or the
    filesystem cannot be isolated (not root, no CAP_SYS_ADMIN) every job is refused with ``infra_error`` and
    ``health()`` is not ok, unless ``allow_network`` / ``allow_host_files`` say to run jobs anyway.

    With ``pin_cpus`` (the default) and no more workers than CPUs this process may use, each slot runs on a
    CPU of its own: a job's processes (executor, program, test process) then hand over to each other on one
    core, without cross-CPU wake-ups (+14-22% jobs/s on two cores, ``resrl/sandbox/README.md``). With more
    workers than CPUs, or ``pin_cpus=False``, slots float.
    """

    name = "local"

    def __init__(
        self,
        workers: int | None = None,
        base_dir: str | None = None,
        allow_network: bool = False,
        allow_host_files: bool = False,
        pin_cpus: bool = True,
    ) -> None:
        super().__init__(workers or os.cpu_count() or 1)
        self.base_dir = base_dir or new_base_dir()
        for cpu in slot_cpus(self.workers, sorted(os.sched_getaffinity(0)), pin_cpus):
            self._add_slot(LocalSlot(self.base_dir, allow_network, allow_host_files, cpu))

    @property
    def job_uids(self) -> list[int]:
        """The uids jobs run as (one per slot; only meaningful when run as root)."""
        return [100000 + slot.proc.pid for slot in self._slots if isinstance(slot, LocalSlot) and slot.proc]

    def close(self) -> None:
        super().close()
        # only empty directories are left: the roots' mount points (mounted in the executors' namespaces only)
        for leftover in Path(self.base_dir).glob("root-*"):
            with contextlib.suppress(OSError):
                leftover.rmdir()
        with contextlib.suppress(OSError):
            os.rmdir(self.base_dir)
