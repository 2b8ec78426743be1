"""What the executor does after every job so that nothing of it is left: kill and reap its processes, empty
its directories. Standard library only (it ships with ``executor.py``)."""

from __future__ import annotations

import contextlib
import os
import signal
import time

if __package__:
    from . import spawn
else:  # a lone script next to its siblings (see executor.py)
    import spawn  # type: ignore[no-redef]

SWEEP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


def kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` (from a child that takes that uid: ``kill(-1)`` reaches no other)."""
    killer = os.fork()
    if killer == 0:  # pragma: no cover - the child never returns
        try:
            os.setgid(uid)
            os.setuid(uid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(killer, 0)


def children(keep: set[int]) -> set[int]:
    """Our living or unreaped children, ``keep`` (the zygote, the test process) aside."""
    me = os.getpid()
    try:  # os.open: a third of what open() costs, once per job
        fd = os.open(f"/proc/{me}/task/{me}/children", os.O_RDONLY)
        try:
            data = b""
            while chunk := os.read(fd, 4096):
                data += chunk
            kids = {int(p) for p in data.split()}
        finally:
            os.close(fd)
    except OSError:  # a kernel without CONFIG_PROC_CHILDREN
        kids = set(spawn.children_of(me))
    return kids - keep


def kill_leftovers(uid: int | None, keep: set[int]) -> None:
    """Kill every process of the job uid (daemons included; without one, ``uid`` None: our children but
    ``keep``) and reap them all: as subreaper we inherit every orphan of the job, so once we have no child
    but ``keep``, nothing of the job is left."""
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] != 0:
                pass
        if not children(keep):
            return
        if time.monotonic() > deadline:
            return
        if uid is not None:
            kill_uid(uid)
        else:
            spawn.kill_children(keep)
        time.sleep(0.001)


def empty_dirs(dirs: list[str]) -> None:
    """Remove everything in each of ``dirs`` (the directories themselves stay)."""
    for d in dirs:
        with os.scandir(d) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    import shutil  # not at the top: see the executor's work directory

                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)


def mtimes() -> dict[str, int]:
    """The modification times of the shared writable directories (see :func:`sweep`)."""
    out = {}
    for d in SWEEP_DIRS:
        with contextlib.suppress(OSError):
            out[d] = os.stat(d).st_mtime_ns
    return out


def sweep(uid: int, before: dict[str, int]) -> None:
    """Remove what ``uid`` left in the shared writable directories (files must not outlive the job); a
    directory whose mtime did not change since ``before`` got no new entry and is skipped."""
    after = mtimes()
    for d in SWEEP_DIRS:
        if d not in after or before.get(d) == after[d]:
            continue
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                if e.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if e.is_dir(follow_symlinks=False):
                    import shutil

                    shutil.rmtree(e.path, ignore_errors=True)
                else:
                    os.unlink(e.path)
            except OSError:
                pass


def parents(path: str, top: str) -> list[str]:
    """``path`` and its directories below ``top``."""
    out = []
    while path != top:
        out.append(path)
        path = os.path.dirname(path)
    return out
