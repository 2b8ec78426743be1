"""The attack suite: each hostile program is contained on every backend, and leaves nothing behind."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from resrl.sandbox import AssertTest, CallTest, CheckerTest, Job, Limits, StdioTest
from tests.sandbox.support import SERVER_SECRET, assert_contained

FAST = Limits(wall_s=3.0, cpu_s=2, memory_mb=256, output_bytes=100_000, processes=16, file_size_mb=4)


def run(sandbox, code: str, **kwargs):
    kwargs.setdefault("limits", FAST)
    result = sandbox.run(Job(code=code, **kwargs))
    assert result.status != "infra_error", result.message
    return result


def test_fork_bomb(sandbox):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    assert run(sandbox, code).status in ("timeout", "runtime_error")
    assert_contained(sandbox)


def test_thread_bomb(sandbox):
    code = "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(60,)).start()\n"
    assert run(sandbox, code).status in ("runtime_error", "oom", "timeout")
    assert_contained(sandbox)


def test_memory_bomb(sandbox):
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))\n"
    assert run(sandbox, code).status == "oom"
    assert_contained(sandbox)


def test_infinite_loop_hits_cpu_limit(sandbox):
    result = run(sandbox, "while True:\n    pass\n", limits=FAST.model_copy(update={"cpu_s": 1, "wall_s": 20}))
    assert result.status == "timeout"
    assert "CPU" in result.message
    assert_contained(sandbox)


def test_sleep_hits_wall_limit(sandbox):
    result = run(sandbox, "import time\ntime.sleep(600)\n", limits=FAST.model_copy(update={"wall_s": 1}))
    assert result.status == "timeout"
    assert "wall" in result.message
    assert_contained(sandbox)


def test_deep_recursion(sandbox):
    code = "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1) + 1\nf(0)\n"
    assert run(sandbox, code).status in ("runtime_error", "oom", "timeout")
    assert_contained(sandbox)


def test_output_flood_is_capped_and_flagged(sandbox):
    result = run(sandbox, "while True:\n    print('x' * 1000)\n")
    assert result.status == "output_limit"
    assert result.output_truncated
    assert len(result.stdout) + len(result.stderr) <= FAST.output_bytes
    assert_contained(sandbox)


def test_disk_fill(sandbox):
    code = "with open('big.bin', 'wb') as fh:\n    while True:\n        fh.write(b'0' * 2**20)\n"
    assert run(sandbox, code).status == "runtime_error"
    assert_contained(sandbox)


def test_fd_exhaustion(sandbox):
    result = run(sandbox, "handles = [open('/dev/null') for _ in range(100000)]\n")
    assert result.status == "runtime_error"
    assert "Too many open files" in result.stderr
    assert_contained(sandbox)


class Listeners:
    """Listeners this test starts on this machine only: TCP on 127.0.0.1 and ::1, UDP on 127.0.0.1, an
    abstract Unix socket (scoped to the network namespace) and a Unix socket file in /tmp. Records every
    connection or datagram that reaches them."""

    def __init__(self) -> None:
        self.reached: list[str] = []
        self.sockets: list[socket.socket] = []
        self.targets: dict[str, tuple] = {}
        self.path = f"/tmp/resrl-probe-{os.getpid()}-{secrets.token_hex(4)}.sock"
        kinds = [("tcp4", socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 0)),
                 ("udp4", socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", 0)),
                 ("abstract", socket.AF_UNIX, socket.SOCK_STREAM, f"\0resrl-probe-{secrets.token_hex(6)}"),
                 ("unix_file", socket.AF_UNIX, socket.SOCK_STREAM, self.path)]  # fmt: skip
        if socket.has_ipv6:
            kinds.append(("tcp6", socket.AF_INET6, socket.SOCK_STREAM, ("::1", 0)))
        for name, family, kind, address in kinds:
            sock = socket.socket(family, kind)
            sock.bind(address)
            if kind == socket.SOCK_STREAM:
                sock.listen(8)
            sock.settimeout(0.05)
            self.sockets.append(sock)
            self.targets[name] = (family, kind, sock.getsockname())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for sock, name in zip(self.sockets, self.targets, strict=True):
                with contextlib.suppress(OSError):
                    if sock.type == socket.SOCK_STREAM:
                        sock.accept()[0].close()
                    else:
                        sock.recv(100)
                    self.reached.append(name)

    def probe_code(self) -> str:
        """A job that tries every listener and prints what it reached."""
        targets = {name: (int(f), int(k), list(a) if isinstance(a, tuple) else a)
                   for name, (f, k, a) in self.targets.items()}  # fmt: skip
        return (
            f"import socket\ntargets = {targets!r}\n"
            "print('interfaces', sorted(n for _, n in socket.if_nameindex()))\n"
            "for name, (family, kind, address) in targets.items():\n"
            "    address = tuple(address) if isinstance(address, list) else address\n"
            "    try:\n        s = socket.socket(family, kind)\n        s.settimeout(2)\n"
            "        if kind == socket.SOCK_DGRAM:\n"
            "            s.sendto(b'x', address)\n            print('sent', name)\n"
            "        else:\n            s.connect(address)\n            print('REACHED', name)\n"
            "    except OSError as exc:\n        print('blocked', name, type(exc).__name__)\n"
        )

    def close(self) -> None:
        time.sleep(0.2)  # a datagram or connection in flight is still counted
        self._stop.set()
        self._thread.join()
        for sock in self.sockets:
            sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def test_network_reaches_no_listener_on_this_machine(sandbox):
    listeners = Listeners()
    try:
        result = run(sandbox, listeners.probe_code())
    finally:
        listeners.close()
    assert result.status == "passed", result.stderr
    assert "REACHED" not in result.stdout
    for name, (_, kind, _) in listeners.targets.items():  # a datagram may leave (docker's lo is up); none arrives
        assert f"blocked {name}" in result.stdout or (kind == socket.SOCK_DGRAM and f"sent {name}" in result.stdout)
    assert listeners.reached == []
    assert "interfaces ['lo']\n" in result.stdout  # an empty namespace (local) or --network none (docker)
    assert result.metadata.get("netns") or result.metadata.get("container_network") == "none"
    assert_contained(sandbox)


def test_reading_server_environment(sandbox):
    code = (
        "import os\nprint(dict(os.environ))\nfor pid in ['1', str(os.getppid()), 'self']:\n"
        "    try:\n        print(open(f'/proc/{pid}/environ', 'rb').read())\n"
        "    except OSError as exc:\n        print('denied', pid, exc)\n"
    )
    result = run(sandbox, code)
    assert SERVER_SECRET not in result.stdout + result.stderr
    assert "RESRL_TEST_SERVER_SECRET" not in result.stdout
    assert_contained(sandbox)


ROOT = Path(__file__).resolve().parents[2]


def test_reading_host_files(sandbox):
    secret = "host-file-secret-" + secrets.token_hex(8)
    private, public = (f"/tmp/resrl-attack-{mode:o}-{os.getpid()}" for mode in (0o600, 0o644))
    for path, mode in ((private, 0o600), (public, 0o644)):
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as fh:
            fh.write(secret)
        os.chmod(path, mode)  # whatever the umask: the public one is world-readable
    task_file = next(ROOT.glob("tasks/*/*.jsonl"))
    own_code = [ROOT / "resrl" / "sandbox" / "executor.py", ROOT / "servers" / "sandbox" / "app.py"]
    paths = ["/etc/shadow", private, public, "/root/.bashrc", "/proc/1/root/etc/shadow",
             "/proc/self/environ", str(task_file), *map(str, own_code), sys.prefix + "/pyvenv.cfg"]  # fmt: skip
    try:
        code = (
            f"for path in {paths!r}:\n"
            "    try:\n        print(open(path).read())\n"
            "    except OSError as exc:\n        print('blocked', exc.errno)\n"
            f"import os\nprint('listing', sorted(os.listdir({str(ROOT)!r})))\n"
        )
        result = run(sandbox, code)
    finally:
        os.unlink(private)
        os.unlink(public)
    assert secret not in result.stdout
    assert "root:" not in result.stdout
    assert task_file.read_text()[:40] not in result.stdout
    assert "def " not in result.stdout and "home = " not in result.stdout
    assert result.stdout.count("blocked") == len(paths)
    assert result.status == "runtime_error" and "listing" not in result.stdout  # the checkout is not there
    assert_contained(sandbox)


def test_the_root_is_minimal_and_read_only(local_sandbox):
    code = (
        "import json, os, sys\nprint(json.dumps([os.listdir('/'), os.listdir('/dev'), os.listdir('/etc')]))\n"
        "for d in ['/', '/usr', '/dev', '/etc', os.path.dirname(os.__file__)]:\n"
        "    try:\n        open(os.path.join(d, 'x'), 'w')\n        print('WROTE', d)\n"
        "    except OSError as exc:\n        print('denied', d)\n"
        "open('/dev/null', 'w').write('x')\nprint(len(open('/dev/urandom', 'rb').read(16)))\n"
        "open('/tmp/t', 'w').write('t')\nopen('/work/w', 'w').write('w')\nprint(os.getcwd())\n"
        "import subprocess\nprint(subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True).stdout)\n"
    )
    result = run(local_sandbox, code)
    assert result.status == "passed", result.stderr
    lines = result.stdout.splitlines()
    top, dev, etc = json.loads(lines[0])
    assert {"tmp", "work", "dev", "etc"} <= set(top) and not {"proc", "sys", "home", "var", "run"} & set(top)
    assert set(dev) == {"null", "zero", "random", "urandom", "shm"}
    assert etc == ["ld.so.cache"]
    assert "WROTE" not in result.stdout and result.stdout.count("denied") == 5
    assert lines[-3:] == ["16", "/work", "b'42\\n'"]
    assert result.metadata["filesystem"] == "private-root"
    assert_contained(local_sandbox)


def test_writing_outside_the_job_directory(sandbox):
    marker = f"resrl-escape-{secrets.token_hex(6)}"
    code = (
        f"import os\nfor d in ['/tmp', '/var/tmp', '/dev/shm', '/etc', '/usr', {os.getcwd()!r}, '..']:\n"
        "    try:\n"
        f"        open(os.path.join(d, {marker!r}), 'w').write('x')\n        print('wrote', d)\n"
        "    except OSError as exc:\n        print('denied', d)\n"
    )
    result = run(sandbox, code)
    for d in ["/etc", "/usr", os.getcwd()]:
        assert f"wrote {d}" not in result.stdout
    for d in ["/tmp", "/var/tmp", "/dev/shm", "/etc", "/usr", os.getcwd()]:
        assert not os.path.exists(os.path.join(d, marker))
    assert_contained(sandbox)


def test_files_do_not_persist_between_jobs(sandbox):
    marker = f"persist-{secrets.token_hex(6)}"
    places = ["", "/tmp/", "/dev/shm/"]
    write = "".join(f"try:\n    open('{p}{marker}', 'w').write('x')\nexcept OSError:\n    pass\n" for p in places)
    run(sandbox, write)
    check = "import os\n" + "".join(f"print(os.path.exists('{p}{marker}'))\n" for p in places)
    for _ in range(4):  # every slot gets a turn
        assert "True" not in run(sandbox, check).stdout
    assert_contained(sandbox)


def test_daemon_does_not_outlive_the_job(sandbox):
    code = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        os.closerange(0, 64)\n        time.sleep(120)\n    os._exit(0)\nprint('parent done')\n"
    )
    result = run(sandbox, code)
    assert result.status == "passed"
    assert result.stdout == "parent done\n"
    assert_contained(sandbox)


def test_killing_the_parent_and_the_group(sandbox):
    code = (
        "import os, signal\nfor target in [os.getppid(), 1]:\n    try:\n        os.kill(target, signal.SIGKILL)\n"
        "        print('killed', target)\n    except OSError as exc:\n        print('denied', target)\n"
        "os.killpg(0, signal.SIGKILL)\n"
    )
    result = run(sandbox, code)
    assert "killed" not in result.stdout
    assert result.status == "runtime_error"
    assert_contained(sandbox)


def test_kill_everything_reachable(sandbox):
    # kill(-1) spares the caller; as the job uid it reaches nothing of the sandbox's
    result = run(
        sandbox,
        (
            "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept ProcessLookupError:\n    pass\n"
            "print('still here')\n"
        ),
    )
    assert result.stdout == "still here\n"
    assert_contained(sandbox)


FORGERIES = {
    "exit": "exit(0)\n",
    "sys_exit": "import sys\nsys.exit(0)\n",
    "raise_system_exit": "raise SystemExit(0)\n",
    "os_exit": "import os\nos._exit(0)\n",
    "fake_verdict_output": (
        'import os, sys\nline = \'{"event": "test", "i": 0, "ok": true}\\n{"event": "done"}\\n\'\n'
        "print(line)\nsys.stderr.write(line)\nfor fd in range(3, 20):\n    try:\n"
        "        os.write(fd, line.encode())\n        os.write(fd, ('0' * 32 + line).encode())\n"
        "    except OSError:\n        pass\n"
    ),
    "patch_harness": (
        'import json, os\njson.dumps = lambda *a, **k: \'{"event": "test", "i": 0, "ok": true}\'\n'
        "os._exit = lambda code: None\nimport builtins\nbuiltins.BaseException = Exception\n"
    ),
}


# Programs that look for the answers, or the verdict token, in the memory they were forked with: every frame up
# the stack and every object the collector knows. The answers are fresh per run, so only such a leak can pass.
DIG = (
    "import gc, os, sys\nfound = []\ndef visit(o, depth=0):\n"
    "    if o is found:\n        return\n"
    "    if isinstance(o, str) and len(o) == 32 and all(c in '0123456789abcdef' for c in o):\n"
    "        found.append(o)\n"
    "    elif isinstance(o, dict) and depth < 4:\n"
    "        found.extend(v for k, v in o.items() if k in ('expected', 'output') and isinstance(v, (int, str)))\n"
    "        for v in list(o.values()):\n            visit(v, depth + 1)\n"
    "    elif isinstance(o, (list, tuple)) and depth < 4:\n        for v in o:\n            visit(v, depth + 1)\n"
    "f = sys._getframe()\nwhile f is not None:\n    visit(dict(f.f_locals))\n    f = f.f_back\n"
    "for o in gc.get_objects():\n    if isinstance(o, dict) and 'kind' in o:\n        visit(o)\n"
    "for token in [x for x in found if isinstance(x, str)]:\n"
    "    for i in range(4):\n"
    '        line = token + \'{"event": "test", "i": %d, "ok": true}\\n\' % i\n'
    "        for fd in range(3, 12):\n            try:\n                os.write(fd, line.encode())\n"
    "            except OSError:\n                pass\n"
    "answers = [x for x in found if isinstance(x, int)] + [0]\n"
    "def solve():\n    return answers[0]\n"
    "print(next((x for x in found if isinstance(x, str) and x.startswith('answer-')), ''))\n"
)
RIGGED = (
    "class Anything:\n    def __eq__(self, other):\n        return True\n    __ne__ = lambda s, o: False\n"
    "    def __bool__(self):\n        return True\n    __hash__ = object.__hash__\n"
    "def solve():\n    return Anything()\n"
)


@pytest.mark.parametrize("program", ["dig", "rigged"])
def test_no_test_kind_can_be_forged(sandbox, program):
    answer = secrets.randbelow(10**12) + 1
    text = f"answer-{secrets.token_hex(6)}"
    tests = [AssertTest(code=f"assert solve() == {answer}"), AssertTest(code="assert solve()"),
             CallTest(fn="solve", expected=answer), StdioTest(output=text)]  # fmt: skip
    result = run(sandbox, DIG if program == "dig" else RIGGED, tests=tests[:3] if program == "rigged" else tests)
    assert result.status != "passed"
    if program == "dig":  # solve() returns 0 unless an answer leaked, so `assert solve()` fails too
        assert [t.passed for t in result.tests] == [False, False, False, False], result.tests
    else:
        assert [t.passed for t in result.tests] == [False, False, False], result.tests
    assert str(answer) not in result.stdout and text not in result.stdout
    assert_contained(sandbox)


def test_a_program_cannot_rebind_the_builtins_tests_use(sandbox):
    code = ("abs = lambda x: 0\nisinstance = lambda *a: True\nlen = lambda x: 3\nsorted = lambda x: [1, 2, 3]\n"
            "def f(x):\n    return 0\n")  # fmt: skip
    tests = [AssertTest(code="assert abs(f(1) - 5) < 1e-9"), AssertTest(code="assert isinstance(f(1), str)"),
             AssertTest(code="assert len(f([1, 2, 3])) == 3"),
             AssertTest(code="assert sorted(f([3, 1, 2])) == [1, 2, 3]"),
             CallTest(fn="abs", args=[-2], expected=0)]  # fmt: skip
    result = run(sandbox, code, tests=tests)
    assert [t.passed for t in result.tests] == [False, False, False, False, True], result.tests
    assert_contained(sandbox)


def test_a_stop_iteration_from_the_program_ends_no_check(sandbox):
    code = "def f(x):\n    raise StopIteration\n"
    tests = [AssertTest(code="assert all(map(lambda c: f(c) == c + 1, [1, 2, 3]))"),
             AssertTest(code="assert sum(map(f, [1, 2])) == 0")]  # fmt: skip
    result = run(sandbox, code, tests=tests)
    assert [t.passed for t in result.tests] == [False, False], result.tests
    assert_contained(sandbox)


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_verdict_forging_cannot_pass(sandbox, forgery):
    tests = [AssertTest(code="assert solve() == 42"), CallTest(fn="solve", expected=42)]
    result = run(sandbox, FORGERIES[forgery], tests=tests)
    assert result.status != "passed"
    assert not any(t.passed for t in result.tests)
    assert_contained(sandbox)


def test_stdin_flood(sandbox):
    big = "y" * 8_000_000
    result = run(sandbox, "import sys\nprint(len(sys.stdin.read()))\n", stdin=big)
    assert result.status == "passed"
    assert result.stdout == f"{len(big)}\n"
    echo = run(sandbox, "import sys\nsys.stdout.write(sys.stdin.read())\n", stdin=big)
    assert echo.status == "output_limit"
    assert echo.output_truncated
    assert_contained(sandbox)


def test_ctypes_segfault(sandbox):
    result = run(sandbox, "import ctypes\nctypes.string_at(0)\n")
    assert result.status == "runtime_error"
    assert "SIGSEGV" in result.message
    assert_contained(sandbox)


# A module left in the work directory under a stdlib name, for trusted test code that imports it: if found first,
# it runs in the process that holds the verdict pipe, takes the token from the frames and reports a pass.
PLANT = (
    "open('colorsys.py', 'w').write('''import json, os, sys\n"
    "f = sys._getframe()\n"
    "while f is not None:\n"
    "    for name, value in list(f.f_locals.items()):\n"
    "        if isinstance(value, str) and len(value) == 32:\n"
    "            for fd in range(3, 12):\n"
    '                for event in ({"event": "checked", "ok": True},\n'
    '                              {"event": "test", "i": 0, "ok": True}):\n'
    "                    try:\n"
    "                        os.write(fd, (value + json.dumps(event) + chr(10)).encode())\n"
    "                    except OSError:\n"
    "                        pass\n"
    "    f = f.f_back\n"
    "''')\n"
    "print('wrong')\n"
    "def solve():\n    return 0\n"
)


def test_a_module_left_in_the_work_dir_is_not_what_tests_import(sandbox):
    checker = "import colorsys\ndef check(inp, out, expected):\n    return out.strip() == expected\n"
    tests = [AssertTest(code="import colorsys\nassert solve() == 1"), CheckerTest(checker=checker, output="right")]
    result = run(sandbox, PLANT, tests=tests)
    assert [t.passed for t in result.tests] == [False, False], result.tests
    assert_contained(sandbox)
