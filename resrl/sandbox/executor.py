"""The warm fork-server that runs untrusted code. Standard library only, like its siblings (``spawn.py``,
``tester.py``, ``harness.py``, ``isolation.py``, ``cleanup.py``, ``verdicts.py``, ``options.py``): the files are
mounted or copied into containers as they are.

One executor process is one slot: it reads framed JSON requests (4-byte big-endian length + UTF-8 JSON) from
its transport, runs one job at a time, and answers with a result dict. Per job it forks children that get a
new session, a minimal environment, a private work directory, rlimits, and a dedicated uid (``100000 + the
executor's pid``), so the process-count limit (RLIMIT_NPROC on a non-root uid) does not depend on anything else
on the host and every leftover process of the job can be killed with ``kill(-1)`` from that uid. At start-up the
executor moves itself into a new, empty network namespace and builds a private read-only root (``isolation.py``),
which every job child inherits and chroots into. Where either cannot be set up the executor refuses every job
(``infra_error``), unless started with ``--allow-network`` / ``--allow-host-files``.

Verdicts are decided here, outside the untrusted process: the test process (``tester.py``, long-lived, on a uid
of its own) or a checker process reports over a pipe handed to it with a random per-run token, values of call
tests are compared here, stdio outputs are compared here, and a job passes only when every test has reported.

Run: ``python3 executor.py --stdio`` (framed requests on stdin/stdout) or ``--socket PATH`` (a Unix socket).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import select
import signal
import socket
import stat
import struct
import sys
import sysconfig
import time

if __package__:  # imported as part of resrl
    from . import cleanup, harness, isolation, options, spawn, tester, verdicts
else:  # run as a lone script next to its siblings (containers, ``python -I executor.py``); importing the
    # resrl package here would load pydantic and friends into every warm executor
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import cleanup  # type: ignore[no-redef]
    import harness  # type: ignore[no-redef]
    import isolation  # type: ignore[no-redef]
    import options  # type: ignore[no-redef]
    import spawn  # type: ignore[no-redef]
    import tester  # type: ignore[no-redef]
    import verdicts  # type: ignore[no-redef]

    del sys.path[0]

PR_SET_CHILD_SUBREAPER = 36
PIPE_STDIN_BYTES = 60_000
_libc = ctypes.CDLL(None, use_errno=True)
WARM_MODULES = (
    "math", "cmath", "re", "collections", "itertools", "functools", "heapq", "bisect", "string", "typing",
    "random", "hashlib", "decimal", "fractions", "statistics", "datetime", "copy", "operator", "array",
    "traceback", "dataclasses", "enum", "textwrap", "unicodedata", "numbers", "io", "struct",
)  # fmt: skip


# -- the executor side ------------------------------------------------------------------------------------
class Executor:
    """One slot: isolates and runs jobs sequentially."""

    def __init__(self, base_dir: str, allow_network: bool = False, allow_host_files: bool = False) -> None:
        self.is_root = os.geteuid() == 0
        self.uid = tester.JOB_UID_BASE + os.getpid() if self.is_root else os.getuid()
        self.tester_uid = tester.TESTER_UID_BASE + os.getpid()
        self.base = base_dir
        os.makedirs(self.base, mode=0o711, exist_ok=True)
        # no tempfile or shutil before the zygote is forked: they load bz2, lzma and zlib, ~30 more mappings
        # that every fork of the zygote copies and every program unmaps (they are imported later, if at all)
        self.work = os.path.join(self.base, f"work-{os.urandom(6).hex()}")
        os.mkdir(self.work, 0o700)
        self.allow_network, self.allow_host_files = allow_network, allow_host_files
        self.netns_error = isolation.enter_netns()
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.stdlib = sysconfig.get_paths()["stdlib"]
        for name in WARM_MODULES:  # imported once here, so jobs neither pay for nor need to read them
            with contextlib.suppress(ImportError):
                __import__(name)
        # after the warm imports: the root exposes the directories of every shared library loaded by now
        self.root: str | None = None
        self.exe = sys.executable
        self.fs_error = None if self.is_root else "not root: no dedicated uid, no private root"
        if self.is_root:
            path = os.path.join(self.base, f"root-{os.getpid()}")
            try:
                self.exe = isolation.build_root(path, self.work)
                self.root = path
            except OSError as exc:
                self.fs_error = f"{exc} (needs root with CAP_SYS_ADMIN, and mount(2) allowed)"
        problems = []
        if self.netns_error and not allow_network:
            problems.append(f"no network namespace: {self.netns_error}; --allow-network runs jobs on this network")
        if self.fs_error and not allow_host_files:
            problems.append(f"no private root: {self.fs_error}; --allow-host-files lets jobs see this filesystem")
        self.refusal = "; ".join(problems) or None
        self.devnull = os.open(os.devnull, os.O_RDONLY)  # the empty stdin of job processes
        self.jail = spawn.Jail(self.uid if self.is_root else None, self.root, self.work, self.exe, self.stdlib)
        harness.prepare_program_streams()  # every program process that serves tests inherits them built
        # what exists now is never collected: a collection in a forked job then touches none of it, so the
        # job does not copy this process's heap page by page
        gc.freeze()
        # forked before any job is read: the programs it forks hold no test, expected value or token. Without
        # a dedicated uid a job could read this process's memory anyway, so there is no zygote then.
        self.zygote = spawn.Zygote(self.jail) if self.is_root and not self.refusal else None
        self.from_zygote: set[int] = set()  # program processes the zygote forked (it reaps them)
        # the long-lived test process (``tester.py``), forked before any job too; replaced when a job may
        # have left it unclean. Without a dedicated uid each job forks its own (the program could kill it).
        self.tester = tester.Tester(self.tester_uid, self.root, self.work, self.stdlib) if self.zygote else None
        self._reset_work()

    def close(self) -> None:
        """Remove the work directory and the root (the executor is about to exit)."""
        if self.tester:
            self.tester.stop()
            self.tester = None
        if self.zygote:
            self.zygote.close()
            self.zygote = None
        self._kill_leftovers()
        if self.root:
            isolation.unmount(self.root)
            with contextlib.suppress(OSError):
                os.rmdir(self.root)
        import shutil

        shutil.rmtree(self.work, ignore_errors=True)

    def health(self) -> dict:
        """What isolation this slot provides; not ok when it refuses jobs."""
        info = {"ok": self.refusal is None, **self._isolation()}
        if self.refusal:
            info["error"] = f"refusing jobs: {self.refusal}"
        return info

    def _isolation(self) -> dict:
        return {
            "netns": self.netns_error is None,
            "filesystem": "private-root" if self.root else "host",
            "dedicated_uid": self.is_root,
            "uid": self.uid,
            "no_new_privs": True,
            "cgroups": False,
            "allow_network": self.allow_network,
            "allow_host_files": self.allow_host_files,
        }

    def run(self, job: dict) -> dict:
        """Run one job; the answer is a dict matching ``resrl.sandbox.models.Result``."""
        if self.refusal:
            return {"status": "infra_error", "message": f"the sandbox cannot isolate jobs, so it refuses them: "
                    f"{self.refusal}", "tests": [], "metadata": self._isolation()}  # fmt: skip
        started = time.monotonic()
        work = self.work
        before = cleanup.mtimes() if self.is_root and not self.root else {}
        try:
            for name, content in job.get("files", {}).items():
                path = os.path.normpath(os.path.join(work, name))
                if not path.startswith(work + os.sep):
                    raise ValueError(f"file name {name!r} leaves the job directory")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(content)
                if self.is_root:
                    for parent in cleanup.parents(path, work):
                        os.chown(parent, self.uid, self.uid)
            result = self._run_tests(job, work)
            if job.get("fetch_files"):
                self._kill_leftovers()  # nothing of the job may change the files while we read them
                result["files"] = isolation.read_job_files(work, job["fetch_files"], job["limits"]["output_bytes"])
        finally:
            self._kill_leftovers()
            self._reset_work()
            if self.is_root and not self.root:  # inside the private root the job cannot reach them
                cleanup.sweep(self.uid, before)
        result["run_time"] = time.monotonic() - started
        result["metadata"] = self._isolation()
        return result

    def _reset_work(self) -> None:
        """Empty the slot's work directory and the root's scratch mounts (reused across jobs: creating and
        removing them costs more)."""
        if self.is_root:  # the job may have locked its own directory; the test process may enter it
            os.chown(self.work, self.uid, self.tester_uid)
            os.chmod(self.work, 0o770)
        else:
            os.chmod(self.work, 0o700)
        cleanup.empty_dirs([self.work, *(f"{self.root}/{d}" for d in isolation.SCRATCH)] if self.root else [self.work])

    def _run_tests(self, job: dict, work: str) -> dict:
        tests = job.get("tests", [])
        outcomes: list[dict | None] = [None] * len(tests)
        inproc = [i for i, t in enumerate(tests) if t["kind"] in ("assert", "call")]
        main: dict | None = None
        if inproc or not tests:
            main = self._spawn_pair(job) if inproc else self._spawn("stdio", job, None, job.get("stdin", ""))
            if inproc:
                self._judge_inproc(job, main, outcomes, inproc)
        first_failed: dict | None = None
        for i, t in enumerate(tests):
            if t["kind"] in ("stdio", "checker"):
                run = self._spawn("stdio", job, t, t.get("input", ""))
                outcomes[i] = self._judge_stdio(i, job, t, run, work)
                if first_failed is None and not outcomes[i]["passed"]:
                    first_failed = run
                last = run
        # the output shown is the program's own run, else the first failing test's, else the last test's
        return verdicts.summarise(tests, outcomes, main or first_failed or last)

    def _judge_inproc(self, job: dict, run: dict, outcomes: list, idx: list[int]) -> None:
        reports = run["reports"]
        load_error = next((r for r in reports if r.get("event") == "load_error"), None)
        by_test = {r["i"]: r for r in reports if r.get("event") == "test" and isinstance(r.get("i"), int)}
        for i in idx:
            t = job["tests"][i]
            r = by_test.get(i)
            if run["status"] != "ok" and r is None:
                outcomes[i] = verdicts.outcome(i, t, False, run["status"], run["message"])
            elif r is None:  # a test reports only once the program has loaded
                why = f"{load_error['type']}: {load_error['msg']}" if load_error else "the test never reported"
                status = "oom" if load_error and load_error["type"] == "MemoryError" else "runtime_error"
                if load_error and load_error["type"] == "ProgramDied" and run["status"] != "ok":
                    status, why = run["status"], run["message"]
                outcomes[i] = verdicts.outcome(i, t, False, status, why)
            elif t["kind"] == "call" and "value" in r:
                outcomes[i] = verdicts.judge_value(i, t, r["value"])
            elif r.get("ok") is True:
                outcomes[i] = verdicts.outcome(i, t, True, "passed", "")
            else:
                kind, why = r.get("type", "Error"), f"{r.get('type', 'Error')}: {r.get('msg', '')}"
                status = "oom" if kind == "MemoryError" else "failed"
                if kind == "ProgramDied":  # the program process ended during the test: say how
                    status = run["status"] if run["status"] != "ok" else "runtime_error"
                    why = run["message"] or why
                outcomes[i] = verdicts.outcome(i, t, False, status, why)

    def _judge_stdio(self, i: int, job: dict, t: dict, run: dict, work: str) -> dict:
        if run["status"] != "ok":
            return verdicts.outcome(i, t, False, run["status"], run["message"])
        if t["kind"] == "checker":
            payload = json.dumps({"input": t.get("input", ""), "output": run["stdout"], "expected": t.get("output")})
            check = self._spawn("checker", job, t, payload)
            ok = check["status"] == "ok" and any(r.get("event") == "checked" and r.get("ok") for r in check["reports"])
            why = "" if ok else (check["message"] or check["stderr"][-500:] or "the checker rejected the output")
            return verdicts.outcome(i, t, ok, "passed" if ok else "failed", why)
        ok = verdicts.compare_output(run["stdout"], t.get("output", ""), t.get("compare", "whitespace"), t)
        why = "" if ok else f"expected {verdicts.clip(t.get('output', ''))!r}, got {verdicts.clip(run['stdout'])!r}"
        return verdicts.outcome(i, t, ok, "passed" if ok else "failed", why)

    def _stdin(self, data: bytes) -> int:
        if not data:  # reads end of file at once, like an empty pipe, for a third of the syscalls
            return os.dup(self.devnull)
        if len(data) < PIPE_STDIN_BYTES:  # fits the pipe buffer: no file needed
            fd, stdin_w = os.pipe()
            os.write(stdin_w, data)
            os.close(stdin_w)
            return fd
        import tempfile

        fd, stdin_path = tempfile.mkstemp(dir=self.base)
        os.unlink(stdin_path)
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def _fork(self, target, limits: dict, fds: list[int]) -> int:
        """A job process forked from here (trusted code only: it carries this process's memory)."""
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            try:
                self.jail.enter(limits, fds)
                target()
            finally:
                os._exit(harness.EXIT_ERROR)
        return pid

    def _fork_program(self, mode: str, job: dict, fds: list[int]) -> int | None:
        """A process running the untrusted program, forked by the zygote (see ``spawn.py``); None when the
        zygote is still forking it (its pid comes from :meth:`_program_pid`)."""
        if self.zygote:
            self.zygote.request(mode, job["code"], job["limits"], fds)
            return None
        return self._fork(lambda: spawn.run_program(mode, job["code"]), job["limits"], fds)

    def _program_pid(self, pid: int | None) -> int:
        if pid is None:
            pid = self.zygote.program_pid()
            self.from_zygote.add(pid)
        return pid

    def _spawn(self, mode: str, job: dict, test: dict | None, stdin: str) -> dict:
        """Run the program on ``stdin`` (``stdio``) or a checker on its output (``checker``) to the end."""
        token = os.urandom(16).hex()
        fd = self._stdin(stdin.encode())
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        v_r, v_w = os.pipe()
        started = time.monotonic()
        if mode == "stdio":  # no verdict pipe: its exit status and output are all it reports
            pid = self._program_pid(self._fork_program("stdio", job, [fd, out_w, err_w]))
        else:
            pid = self._fork(lambda: harness.run_checker(test["checker"], 3, token), job["limits"],
                             [fd, out_w, err_w, v_w])  # fmt: skip
        for f in (fd, out_w, err_w, v_w):
            os.close(f)
        return self._supervise([pid], job["limits"], out_r, err_r, v_r, token, started)

    def _spawn_pair(self, job: dict) -> dict:
        """Assert and call tests: the test process (trusted, holds the verdict pipe) drives the program process
        (untrusted, from the zygote) over a socket pair; both write to the job's stdout and stderr."""
        token = os.urandom(16).hex()
        stdin, empty = self._stdin(job.get("stdin", "").encode()), self._stdin(b"")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        v_r, v_w = os.pipe()
        tests_end, program_end = socket.socketpair()
        started = time.monotonic()
        fds = [empty, out_w, err_w, v_w, tests_end.fileno()]
        try:
            program = self._fork_program("serve", job, [stdin, out_w, err_w, program_end.fileno()])
            if self.zygote:
                tests = self._start_tester(job, token, fds)
            else:
                tests = self._fork(lambda: harness.run_tests(job["tests"], 4, 3, token), job["limits"], fds)
        finally:
            for f in (stdin, empty, out_w, err_w, v_w):
                os.close(f)
            tests_end.close()
            program_end.close()
        program = self._program_pid(program)  # forked by the zygote while the test process took the job
        return self._supervise([tests, program], job["limits"], out_r, err_r, v_r, token, started,
                               self.tester if self.zygote else None)  # fmt: skip

    def _start_tester(self, job: dict, token: str, fds: list[int]) -> int:
        """Hand the job to the test process (a fresh one if the last was replaced or is gone); its pid."""
        for attempt in range(2):
            if self.tester is None:
                self.tester = tester.Tester(self.tester_uid, self.root, self.work, self.stdlib)
            try:
                self.tester.start(job["tests"], token, job["limits"], fds)
                return self.tester.pid
            except OSError:  # it died between jobs
                self._retire_tester()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _retire_tester(self) -> int:
        """Kill and reap the test process (and anything of its uid); its wait status."""
        status = self.tester.stop()
        self.tester = None
        return status

    def _supervise(self, pids: list[int], limits: dict, out_r: int, err_r: int, v_r: int, token: str,
                   t0: float, test_process: tester.Tester | None = None) -> dict:  # fmt: skip
        """Collect output and reports until ``pids[0]`` ends, or says it is done when it is the long-lived
        ``test_process`` (or a limit is hit), then kill and reap the others. The run's status is the first
        process's, unless another one ended by itself abnormally (the program process of a test pair killed by
        its CPU limit, say)."""
        cap = limits["output_bytes"]
        deadline = t0 + limits["wall_s"]
        bufs = {out_r: bytearray(), err_r: bytearray(), v_r: bytearray()}
        pidfds = {os.pidfd_open(pid): pid for pid in pids[1 if test_process else 0 :]}
        watch = [test_process.sock.fileno(), test_process.pidfd] if test_process else []
        open_fds = [out_r, err_r, v_r]
        over, timed_out, ended, verdict = False, False, set(), None  # verdict: the test process's "done"
        while pids[0] not in ended and verdict is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            waiting = [f for f, pid in pidfds.items() if pid not in ended]
            ready, _, _ = select.select([*open_fds, *waiting, *watch], [], [], remaining)
            for f in ready:
                if f in watch:
                    verdict = test_process.done() if f == watch[0] else None
                    if verdict is None:  # it died
                        ended.add(pids[0])
                    continue
                if f in pidfds:
                    ended.add(pidfds[f])
                    continue
                chunk = os.read(f, 65536)
                if not chunk:
                    open_fds.remove(f)
                    continue
                bufs[f] += chunk
                if f != v_r and len(bufs[out_r]) + len(bufs[err_r]) > cap:
                    over = True
            if over:
                break
        if pids[0] in ended or verdict is not None:
            # drain what is already buffered; a daemon holding the pipes open (or still writing) must not keep
            # us here
            while (open_fds and len(bufs[out_r]) + len(bufs[err_r]) <= cap
                   and (ready := select.select(open_fds, [], [], 0)[0])):  # fmt: skip
                for f in ready:
                    chunk = os.read(f, 65536)
                    if chunk:
                        bufs[f] += chunk
                    else:
                        open_fds.remove(f)
        if pidfds:
            ended |= {pidfds[f] for f in select.select(list(pidfds), [], [], 0)[0]}
        statuses = {}
        if test_process:  # kept only when it finished the job clean; else it may be inside a test
            status = self._retire_tester() if verdict is not True else 0
            statuses[pids[0]] = 0 if verdict is not None else status
        for pid in pids[1 if test_process else 0 :]:  # the group now; daemons left it: killed by uid later
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            statuses[pid] = self.zygote.reap(pid) if pid in self.from_zygote else os.waitpid(pid, 0)[1]
        self.from_zygote.clear()
        for f in (out_r, err_r, v_r, *pidfds):
            os.close(f)
        reports = []
        for line in bytes(bufs[v_r]).decode(errors="replace").splitlines():
            if line.startswith(token):  # anything else did not come from the harness
                with contextlib.suppress(ValueError):
                    reports.append(json.loads(line[len(token) :]))
        out, err = bytes(bufs[out_r]), bytes(bufs[err_r])
        truncated = len(out) + len(err) > cap
        status, message, code = spawn.classify(statuses[pids[0]], limits, err, t0)
        for pid in pids[1:]:
            other = spawn.classify(statuses[pid], limits, err, t0) if pid in ended and status == "ok" else None
            if other and other[0] != "ok":
                status, message, code = other
        if over or truncated:
            status, message = "output_limit", f"stdout+stderr passed the limit of {cap} bytes"
        elif timed_out:
            status, message = "timeout", f"wall-clock limit of {limits['wall_s']} s reached"
        return {
            "status": status,
            "message": message,
            "stdout": out[:cap].decode(errors="replace"),
            "stderr": err[: max(0, cap - min(len(out), cap))].decode(errors="replace"),
            "truncated": truncated,
            "reports": reports,
            "exit_code": code,
        }

    def _kill_leftovers(self) -> None:
        keep = {p.pid for p in (self.zygote, self.tester) if p}
        cleanup.kill_leftovers(self.uid if self.is_root else None, keep)


# -- transports -------------------------------------------------------------------------------------------
def _serve(reader, writer, executor: Executor) -> None:
    while True:
        header = reader.read(4)
        if len(header) < 4:
            return
        request = json.loads(reader.read(struct.unpack(">I", header)[0]))
        try:
            answer = executor.health() if request.get("op") == "health" else executor.run(request["job"])
        except Exception as exc:  # reported as infra_error: the fault is ours, not the program's
            answer = {"status": "infra_error", "message": f"{type(exc).__name__}: {exc}", "tests": []}
        data = json.dumps(answer).encode()
        writer.write(struct.pack(">I", len(data)) + data)
        writer.flush()


def main(argv: list[str]) -> int:
    """Entry point: ``--stdio`` or ``--socket PATH``; ``--base DIR`` for job directories; ``--cpu N`` pins the
    slot to one CPU; ``--allow-network`` and ``--allow-host-files`` run jobs even where the network / the
    filesystem cannot be isolated."""
    args = options.parse(argv)
    if args["cpu"] is not None:  # first: the zygote, the test process and every job inherit it
        try:
            os.sched_setaffinity(0, {args["cpu"]})
        except OSError as exc:
            sys.exit(f"executor.py: error: cannot run on CPU {args['cpu']}: {exc}")
    executor = Executor(args["base"], allow_network=args["allow_network"], allow_host_files=args["allow_host_files"])
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if args["stdio"]:
        reader, writer = os.fdopen(os.dup(0), "rb"), os.fdopen(os.dup(1), "wb")
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        try:
            _serve(reader, writer, executor)
        finally:
            executor.close()
        return 0
    path = args["socket"]
    if os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o600)
    server.listen(1)
    while True:
        conn, _ = server.accept()
        with conn, conn.makefile("rb") as reader, conn.makefile("wb") as writer:
            _serve(reader, writer, executor)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
