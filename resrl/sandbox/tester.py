"""The executor's long-lived test process. Standard library only (it ships with ``executor.py``).

Assert and call tests run outside the program: in a test process that holds the verdict pipe and drives the
program process through proxies (``harness.py``). Forking a fresh one per job doubled the CPU of a job, so each
executor keeps one, forked at start-up before any job is read, and hands it each job over a socket: the tests,
limits and token in one message (``spawn.send_message``), the job's descriptors (stdin, stdout, stderr, verdict
pipe, program socket) over ``SCM_RIGHTS``. It runs chrooted into the job root on a uid of its own
(``TESTER_UID_BASE + executor pid``: not the program's, so the program can neither signal, trace nor read it,
and the kill of the job's uid after every job spares it; not root) and is not dumpable.

Nothing of one job may reach the next: after each job it closes every descriptor of the job, restores its limits,
and resets the process state a test can change (its streams, working directory, umask, environment, ``sys.path``,
recursion and int-digit limits, signal handlers and timers, the ``random`` seed, the ``decimal`` context, builtins,
and modules the tests imported). What it cannot reset, it reports as dirty, and the executor replaces it: a thread
or child process still running, a hard limit lowered, or a peak RSS grown past ``RSS_GROWTH_MB``. It is also
replaced whenever a job does not end with its "done" (a timeout, an output flood, its own death), since it may then
be inside a test. The program's only way in is the values it returns, decoded into plain values and opaque handles
(``harness.decode``); a handle is dead once its job ends.
"""

from __future__ import annotations

import _signal
import builtins
import contextlib
import ctypes
import os
import resource
import signal
import socket
import sys

if __package__:
    from . import cleanup, harness, isolation, spawn
else:  # a lone script next to its siblings (see executor.py)
    import cleanup  # type: ignore[no-redef]
    import harness  # type: ignore[no-redef]
    import isolation  # type: ignore[no-redef]
    import spawn  # type: ignore[no-redef]

JOB_UID_BASE = 100000  # + executor pid: the uid of the executor's job processes
TESTER_UID_BASE = JOB_UID_BASE + (1 << 22)  # + executor pid; above every job uid (pid_max is at most 2**22)
CONTROL_FD = 10  # its socket to the executor; a job's descriptors are 0-4, and between jobs nothing is open but it
JOB_FDS = 5
RSS_GROWTH_MB = 64
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NAME = 1, 4, 15
_LIMITS = ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_NPROC")
# The signals whose handlers are restored after a job: only this process (its timers, limits, pipes and
# children) or root can send it one, and the program is neither.
_SIGNALS = tuple(getattr(signal, name) for name in (
    "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGXCPU", "SIGXFSZ", "SIGPIPE", "SIGCHLD", "SIGINT", "SIGTERM", "SIGHUP",
    "SIGUSR1", "SIGUSR2", "SIGSEGV", "SIGFPE", "SIGBUS", "SIGILL", "SIGABRT", "SIGTRAP", "SIGURG", "SIGWINCH",
))  # fmt: skip
_libc = ctypes.CDLL(None, use_errno=True)


class Tester:
    """The executor's handle on its test process (see the module docstring)."""

    def __init__(self, uid: int, root: str | None, work: str, stdlib: str) -> None:
        self.uid = uid
        self.sock, theirs = socket.socketpair()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the test process never returns
            try:
                self.sock.close()
                _main(theirs, uid, root, work, stdlib)
            finally:
                os._exit(1)
        theirs.close()
        self.pidfd = os.pidfd_open(self.pid)  # this process, whatever reuses its pid once it is reaped

    def start(self, tests: list[dict], token: str, limits: dict, fds: list[int]) -> None:
        """Hand it a job; ``fds`` become its 0-4 (the caller may close its copies now). ``OSError`` when it is
        gone."""
        spawn.send_message(self.sock, {"tests": tests, "token": token, "limits": limits}, fds)

    def done(self) -> bool | None:
        """Its answer once the job's tests ended (call when its socket is readable): True when it is clean for
        the next job, False when it must be replaced, None when it is gone."""
        try:
            data = self.sock.recv(1)
        except OSError:
            return None
        return {b"c": True, b"d": False}.get(data)

    def stop(self) -> int:
        """Kill it and everything of its uid, reap it, and return its wait status."""
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        cleanup.kill_uid(self.uid)
        try:
            info = os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED)
            # as a wait status: the exit code in the high byte, or the signal in the low one
            status = info.si_status << 8 if info.si_code == os.CLD_EXITED else info.si_status
        except ChildProcessError:  # already reaped by the executor's sweep for orphans
            status = signal.SIGKILL
        os.close(self.pidfd)
        self.sock.close()
        return status


def _main(sock: socket.socket, uid: int, root: str | None, work: str, stdlib: str) -> None:
    """The test process: isolate once (in the private root, or without one, ``--allow-host-files``, in the
    host's), then serve jobs in ``work`` until the executor goes."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # never outlive the executor
    _libc.prctl(PR_SET_NAME, b"resrl-tests", 0, 0, 0)  # what ps and top show
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a write to a pipe the executor closed raises, as in Python
    os.setsid()
    fd = sock.detach()
    if fd != CONTROL_FD:
        os.dup2(fd, CONTROL_FD)
    os.closerange(0, CONTROL_FD)
    os.closerange(CONTROL_FD + 1, 65536)
    control = socket.socket(fileno=CONTROL_FD)
    rl = resource
    rl.setrlimit(rl.RLIMIT_CORE, (0, 0))
    for name in _LIMITS:  # soft up to hard: per job only the soft limits are lowered, and raised back after
        hard = rl.getrlimit(getattr(rl, name))[1]
        rl.setrlimit(getattr(rl, name), (hard, hard))
    if root:
        os.chroot(root)
        work = isolation.WORK
    os.chdir(work)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # the program can neither trace it nor read its memory
    sys.argv = ["tests"]
    # the stdlib only: a module the program left in /work must never be what a test's import finds
    sys.path[:] = [p for p in sys.path if p.startswith(stdlib)]
    state = _State(work)
    while True:
        try:
            message = spawn.recv_message(control, JOB_FDS)
        except (OSError, ValueError, EOFError):
            os._exit(0)
        if message is None:
            os._exit(0)
        job, fds = message
        if fds != list(range(JOB_FDS)):  # they arrive in place: reset left 0-4 free
            for f in spawn.place_fds(fds):
                os.close(f)
        _set_limits(job["limits"], state.hard)
        os.chdir(state.work)  # the executor has given it back its mode since the last job
        try:
            harness.run_test_list(job["tests"], 4, harness.reporter(3, job["token"]))
        finally:
            harness._flush_quietly()
        clean = state.reset()
        del job, fds  # the next job must not see this one's tests or token
        control.sendall(b"c" if clean else b"d")


def _set_limits(limits: dict, hard: list[tuple[int, int]]) -> None:
    """This job's limits (soft; the hard ones stay); the CPU limit counts from the CPU used so far."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    wanted = (int(used.ru_utime + used.ru_stime) + 1 + limits["cpu_s"], limits["memory_mb"] * 1024 * 1024,
              limits["file_size_mb"] * 1024 * 1024, limits["open_files"], limits["processes"])  # fmt: skip
    for (which, top), value in zip(hard, wanted, strict=True):
        resource.setrlimit(which, (value if top == resource.RLIM_INFINITY else min(value, top), top))


class _State:
    """What the tests of a job may change in this process, as it was before the first job."""

    def __init__(self, work: str) -> None:
        self.work = work
        self.modules = set(sys.modules)
        self.builtins = dict(builtins.__dict__)
        self.environ = dict(os.environ._data)  # the bytes mapping: compared in C, not through the Mapping API
        self.path = list(sys.path)
        self.umask = os.umask(0o022)
        os.umask(self.umask)
        self.recursion = sys.getrecursionlimit()
        self.digits = sys.get_int_max_str_digits()
        # _signal's own getsignal: signal.getsignal turns each answer into an enum in Python (~3 µs a signal)
        self.signals = {s: h for s in _SIGNALS if (h := _signal.getsignal(s)) is not None}
        self.streams = (sys.stdin, sys.stdout, sys.stderr)
        self.rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # the hard limits, which only a test can lower (this process cannot raise them back)
        self.hard = [(which, resource.getrlimit(which)[1]) for which in (getattr(resource, n) for n in _LIMITS)]

    def reset(self) -> bool:
        """Close the job's descriptors and put everything back; False when the process must be replaced."""
        os.closerange(0, CONTROL_FD)  # 0-4 free: the next job's descriptors arrive there
        os.closerange(CONTROL_FD + 1, 65536)
        lowered = False
        for which, top in self.hard:
            try:
                resource.setrlimit(which, (top, top))
            except (ValueError, OSError):  # a test lowered a hard limit: the next job would inherit it
                lowered = True
        signal.alarm(0)
        for timer in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
            signal.setitimer(timer, 0)
        for sig, handler in self.signals.items():
            if _signal.getsignal(sig) != handler:
                signal.signal(sig, handler)
        sys.stdin, sys.stdout, sys.stderr = self.streams
        for stream in self.streams:  # anything a test left unflushed goes nowhere (fd 0-2 are closed now)
            with contextlib.suppress(Exception):
                stream.flush()
        os.chdir("/")  # the job may have locked /work
        os.umask(self.umask)
        if os.environ._data != self.environ:
            os.environ.clear()
            os.environ.update({os.fsdecode(k): os.fsdecode(v) for k, v in self.environ.items()})
        sys.path[:] = self.path
        sys.setrecursionlimit(self.recursion)
        sys.set_int_max_str_digits(self.digits)
        if builtins.__dict__ != self.builtins:
            builtins.__dict__.clear()
            builtins.__dict__.update(self.builtins)
        for name in set(sys.modules) - self.modules:  # imported afresh by the next job that wants it
            del sys.modules[name]
        if "random" in sys.modules:  # as a fork reseeds it
            sys.modules["random"].seed(int.from_bytes(os.urandom(16)))
        if "decimal" in sys.modules:
            decimal = sys.modules["decimal"]
            decimal.setcontext(decimal.Context())
        threads = sys.modules.get("threading")
        alive = threads is not None and threads.active_count() > 1
        with contextlib.suppress(ChildProcessError):
            while True:
                pid, _ = os.waitpid(-1, os.WNOHANG)
                if pid == 0:  # a child still running
                    alive = True
                    break
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.rss_kb > RSS_GROWTH_MB * 1024
        return not (alive or grown or lowered)
