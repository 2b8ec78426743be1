"""Starting job processes: the isolation each one enters (:class:`Jail`) and the zygote that forks the ones
running untrusted code. Standard library only (it ships with ``executor.py``).

A process forked from the executor carries the executor's memory: the job being judged, with its tests and
expected values, and the verdict token. A program forked from there could read them back (``gc``, frames,
``ctypes``). So programs are forked from the **zygote**, a process the executor forks at start-up before it reads
any job; per spawn it receives only the program's code and limits, and the pipe ends over ``SCM_RIGHTS``. The
program is the zygote's child, so the zygote reaps it and hands its wait status to the executor; anything the
program forks and leaves behind is re-parented to the executor, the subreaper, which kills and reaps it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import marshal
import os
import resource
import signal
import socket
import sys
import time

if __package__:
    from . import harness, isolation
else:  # a lone script next to its siblings (see executor.py)
    import harness  # type: ignore[no-redef]
    import isolation  # type: ignore[no-redef]

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_NO_NEW_PRIVS = 38
ZYGOTE_FD = 64  # the zygote's socket; below it the zygote holds no descriptor but a request's
_libc = ctypes.CDLL(None, use_errno=True)


class Jail:
    """What a job process enters right after the fork, before any job code runs."""

    def __init__(self, uid: int | None, root: str | None, work: str, exe: str, stdlib: str) -> None:
        self.uid, self.root, self.work, self.exe, self.stdlib = uid, root, work, exe, stdlib
        # Set here, in the executor, once: every job process inherits them instead of setting them after its
        # fork, where rebuilding os.environ and a first ctypes call cost ~0.6 ms of copied pages per process.
        # The executor (started with an empty environment) takes the jobs' environment as its own, and
        # no_new_privs binds it and everything it forks: no setuid binary or file capability lifts a job.
        os.environ.clear()
        os.environ.update({"PATH": "/usr/bin:/bin", "HOME": isolation.WORK if root else work,
                           "TMPDIR": "/tmp" if root else work, "LANG": "C.UTF-8"})  # fmt: skip
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        # a job's sys.argv and sys.path, built once: rebuilding them in each job process touches ~30 pages
        self.argv = ["solution.py"]
        self.path = [isolation.WORK if root else work, *(p for p in sys.path if p.startswith(stdlib))]

    def enter(self, limits: dict, fds: list[int]) -> None:
        """Own session, ``fds`` as 0..n-1 and nothing else, rlimits, the private root, the job uid (no_new_privs
        and the job environment are inherited from the executor, see ``__init__``)."""
        os.setsid()
        if fds != _IN_PLACE[: len(fds)]:  # the zygote receives them in place (see _zygote_main)
            place_fds(fds)
        os.closerange(len(fds), 65536)
        mem = limits["memory_mb"] * 1024 * 1024
        rl = resource
        rl.setrlimit(rl.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))
        rl.setrlimit(rl.RLIMIT_AS, (mem, mem))
        rl.setrlimit(rl.RLIMIT_FSIZE, (limits["file_size_mb"] * 1024 * 1024,) * 2)
        rl.setrlimit(rl.RLIMIT_NOFILE, (limits["open_files"],) * 2)
        rl.setrlimit(rl.RLIMIT_CORE, (0, 0))
        rl.setrlimit(rl.RLIMIT_NPROC, (limits["processes"],) * 2)
        work = self.work
        if self.root:  # prepared once by the executor: per job, entering it is one chroot
            os.chroot(self.root)
            work = isolation.WORK
        os.chdir(work)
        if self.uid is not None:
            os.setgroups([])
            os.setgid(self.uid)
            os.setuid(self.uid)
        # sys.stdin/stdout/stderr already wrap fds 0-2 with empty buffers; they now reach the job's pipes
        sys.argv, sys.executable, sys.path = self.argv, self.exe, self.path


_IN_PLACE = list(range(16))


def place_fds(fds: list[int]) -> list[int]:
    """Make ``fds[i]`` descriptor ``i`` (moving a source out of the way only where a target would overwrite
    it); the descriptors left open that are none of ``0..len(fds)-1``, for the caller to close."""
    fds, n = list(fds), len(fds)
    for dst in range(n):
        if fds[dst] == dst:
            continue
        if dst in fds[dst + 1 :]:  # a later source sits on this target
            moved = fcntl.fcntl(dst, fcntl.F_DUPFD, n)
            fds[dst + 1 :] = [moved if f == dst else f for f in fds[dst + 1 :]]
        os.dup2(fds[dst], dst)
    return sorted({f for f in fds if f >= n})


def run_program(mode: str, code: str) -> None:
    """The untrusted process: ``serve`` (assert / call tests; fd 3 is the test process's socket) or ``stdio``."""
    if mode == "serve":
        harness.serve_program(code, 3)
    harness.run_program(code)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the other end closed the socket")
        data += chunk
    return bytes(data)


# The executor talks to its zygote and its test process in framed messages: a 4-byte big-endian length and a
# ``marshal`` body (all three are trusted processes of the same executor: no program ever writes to these
# sockets), descriptors over SCM_RIGHTS. One message in flight at a time: each side waits for the answer.
def send_message(sock: socket.socket, obj: object, fds: list[int] | None = None) -> None:
    """Send ``obj`` (plain values only) and ``fds``; ``OSError`` when the peer is gone."""
    body = marshal.dumps(obj)
    data = len(body).to_bytes(4, "big") + body
    sent = socket.send_fds(sock, [data], fds, socket.MSG_NOSIGNAL) if fds else 0
    if sent < len(data):
        sock.sendall(data[sent:], socket.MSG_NOSIGNAL)


def recv_message(sock: socket.socket, maxfds: int = 0) -> tuple[object, list[int]] | None:
    """The next message and the descriptors that came with it; None once the peer has closed its end."""
    msg, fds, _, _ = socket.recv_fds(sock, 65536, maxfds)
    if not msg:
        return None
    if len(msg) < 4:
        msg += _recv_exactly(sock, 4 - len(msg))
    end = 4 + int.from_bytes(msg[:4], "big")
    if len(msg) < end:
        msg += _recv_exactly(sock, end - len(msg))
    return marshal.loads(msg[4:end]), fds


class Zygote:
    """The executor's handle on its zygote process (see the module docstring)."""

    def __init__(self, jail: Jail) -> None:
        self.sock, theirs = socket.socketpair()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the zygote never returns
            try:
                self.sock.close()
                _zygote_main(theirs, jail)
            finally:
                os._exit(0)
        theirs.close()

    def request(self, mode: str, code: str, limits: dict, fds: list[int]) -> None:
        """Ask for a program process with ``fds`` as its 0..n-1 (the caller may close its copies now)."""
        send_message(self.sock, (mode, code, limits), fds)

    def program_pid(self) -> int:
        """The pid of the program process just requested."""
        pid = int.from_bytes(_recv_exactly(self.sock, 4), "big", signed=True)
        if pid <= 0:
            raise RuntimeError("the zygote could not fork a program process")
        return pid

    def reap(self, pid: int) -> int:
        """Wait for a program process (killed or exited by now) and return its wait status. Only now does the
        zygote reap it: until then its pid cannot be reused, so the executor may signal and watch it."""
        send_message(self.sock, pid)
        return int.from_bytes(_recv_exactly(self.sock, 4), "big", signed=True)

    def close(self) -> None:
        """Stop the zygote (it exits when its socket closes) and reap it."""
        self.sock.close()
        os.waitpid(self.pid, 0)


def _zygote_main(sock: socket.socket, jail: Jail) -> None:
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # never outlive the executor
    _libc.prctl(PR_SET_NAME, b"resrl-zygote", 0, 0, 0)  # what ps and top show (its programs too)
    # Nothing open but its socket, high: the descriptors of a request then arrive as 0..n-1, where the program
    # needs them (lowest free numbers, in order), and the executor's transport reaches EOF when it goes.
    high = fcntl.fcntl(sock.detach(), fcntl.F_DUPFD, ZYGOTE_FD)
    os.closerange(0, high)
    os.closerange(high + 1, 65536)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, high)
    while True:
        try:
            message = recv_message(sock, 16)
            if message is None:
                return
            request, fds = message
            if type(request) is int:  # a reap request: the pid of a program process that has ended
                sock.sendall(os.waitpid(request, 0)[1].to_bytes(4, "big", signed=True))
                continue
        except (OSError, ValueError, EOFError):
            return
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the program process never returns
            try:
                sock.close()
                mode, code, limits = request
                jail.enter(limits, fds)
                run_program(mode, code)
            finally:
                os._exit(harness.EXIT_ERROR)
        for f in fds:
            os.close(f)
        del request  # the next fork must not carry this program's code
        try:
            sock.sendall(pid.to_bytes(4, "big", signed=True))
        except OSError:
            return


def children_of(parent: int) -> list[int]:
    """The children of ``parent``, read from every process's ``/proc/PID/stat``."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = fh.read().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if ppid == str(parent):
            kids.append(int(entry))
    return kids


def kill_children(keep: set[int]) -> None:
    """Without a dedicated uid: kill our direct children but ``keep`` (as subreaper, the job's orphans are among
    them)."""
    for pid in set(children_of(os.getpid())) - keep:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def classify(wstatus: int, limits: dict, err: bytes, t0: float) -> tuple[str, str, int]:
    """(status, message, exit code) of one job process from its wait status."""
    sig = os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else 0
    code = os.WEXITSTATUS(wstatus) if os.WIFEXITED(wstatus) else -sig
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and time.monotonic() - t0 >= limits["cpu_s"]):
        return "timeout", f"CPU limit of {limits['cpu_s']} s reached", code
    if code == harness.EXIT_OOM or b"MemoryError" in err[-4000:]:
        return "oom", f"memory limit of {limits['memory_mb']} MB reached", code
    if sig:
        return "runtime_error", f"killed by signal {signal.Signals(sig).name}", code
    if code != 0:
        return "runtime_error", f"exit code {code}", code
    return "ok", "", code
