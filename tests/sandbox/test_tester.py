"""The executor's long-lived test process: its isolation, and that no job reaches the verdict of a later one
through it (hostile programs, and tests that leave state behind). One slot, so every job meets the same one."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from resrl.sandbox import AssertTest, CallTest, Job, Limits
from resrl.sandbox.backends.local import LocalSandbox
from resrl.sandbox.tester import JOB_UID_BASE, TESTER_UID_BASE
from tests.sandbox.support import assert_contained

LIMITS = Limits(wall_s=3.0, cpu_s=2, memory_mb=256, output_bytes=100_000, processes=16, file_size_mb=4)
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the long-lived test process needs a dedicated uid (root)")


@pytest.fixture(scope="module")
def slot():
    sandbox = LocalSandbox(workers=1)
    yield sandbox
    sandbox.close()


def _uid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/status").read_text().split("\nUid:", 1)[1].split()[0])


def _tester_pids(sandbox: LocalSandbox) -> list[int]:
    """The live processes of the slot's test-process uid."""
    uid = TESTER_UID_BASE + sandbox._slots[0].proc.pid
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if _uid(int(entry.name)) == uid:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def run(sandbox, code: str, tests: list, **limits):
    result = sandbox.run(Job(code=code, tests=tests, limits=LIMITS.model_copy(update=limits)))
    assert result.status != "infra_error", result.message
    return result


def check_later_jobs(sandbox) -> None:
    """A fresh answer per call: the right program passes, a wrong one fails, whatever ran before."""
    answer = secrets.randbelow(10**9) + 1
    tests = [AssertTest(code=f"assert solve() == {answer}"), CallTest(fn="solve", expected=answer)]
    good = run(sandbox, f"def solve():\n    return {answer}\n", tests)
    assert good.status == "passed", good.tests
    bad = run(sandbox, f"def solve():\n    return {answer + 1}\n", tests)
    assert [t.passed for t in bad.tests] == [False, False]
    assert_contained(sandbox)


def test_one_test_process_on_its_own_uid_not_dumpable(slot):
    check_later_jobs(slot)
    (pid,) = _tester_pids(slot)
    executor = slot._slots[0].proc.pid
    assert _uid(pid) not in (0, JOB_UID_BASE + executor)
    assert os.stat(f"/proc/{pid}/mem").st_uid == 0  # the files of a process that is not dumpable are root's
    jailed = "import os\nassert os.getcwd() == '/work' and not os.path.exists('/proc') and os.getuid() != 0"
    assert run(slot, "x = 1\n", [AssertTest(code=jailed)]).status == "passed"
    check_later_jobs(slot)
    assert _tester_pids(slot) == [pid]  # the same process served every job


# Programs that go after the test process, or the jobs after theirs.
HOSTILE = {
    "kill_everything": "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n"
    "def solve():\n    return 0\n",
    "huge_value": "def solve():\n    return ['x' * 1000] * 200000\n",
    "junk_on_the_socket": 'import os\nfor _ in range(50):\n    os.write(3, b\'{"value": ["v", 1]}\\n\')\n'
    "def solve():\n    return 1\n",
    "daemon_on_the_socket": "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1)\n"
    '    os.write(3, b\'{"value": ["v", 1]}\\n\' * 100)\n    time.sleep(30)\ndef solve():\n    return 1\n',
    # a module in /work named like the stdlib one a test imports: found first, it would run in the test process
    "planted_module": "open('colorsys.py', 'w').write('import sys\\nfor m in list(sys.modules.values()):\\n"
    '    if hasattr(m, "Handle"):\\n        m.Handle.__call__ = lambda *a, **k: 1\\n\')\n'
    "def solve():\n    return 0\n",
    "lock_the_work_dir": "import os\nos.chmod('.', 0)\ndef solve():\n    return 0\n",
    # descriptors passed over the test socket: the test process never takes them (no control buffer)
    "descriptors_on_the_socket": "import os, socket\ns = socket.socket(fileno=3)\nr, w = os.pipe()\n"
    "for _ in range(40):\n    socket.send_fds(s, [b' '], [r, w, 0, 1, 2])\ns.detach()\ndef solve():\n    return 1\n",
}


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_a_hostile_program_reaches_no_later_verdict(slot, attack):
    tests = [AssertTest(code="import colorsys\nassert solve() == 1"), CallTest(fn="solve", expected=1)]
    before = _tester_pids(slot)
    result = run(slot, HOSTILE[attack], tests)
    if attack in ("planted_module", "kill_everything", "lock_the_work_dir"):
        assert [t.passed for t in result.tests] == [False, False]
    if attack == "kill_everything":
        assert _tester_pids(slot) == before  # the program cannot signal it
    check_later_jobs(slot)


def test_a_hung_program_replaces_the_test_process(slot):
    before = _tester_pids(slot)
    result = run(slot, "import time\ndef solve():\n    time.sleep(60)\n", [AssertTest(code="assert solve()")],
                 wall_s=1.0)  # fmt: skip
    assert result.status == "timeout"
    after = _tester_pids(slot)
    assert after != before and len(after) <= 1  # killed while inside a test; a fresh one takes the next job
    check_later_jobs(slot)


# Trusted tests that change the test process; each pair: (what one job's test leaves, what the next one checks).
LEFTOVERS = [
    ("import decimal\ndecimal.getcontext().prec = 3", "import decimal\nassert decimal.getcontext().prec == 28"),
    (
        "import random\nrandom.seed(1)",
        "import random\nrandom.seed(1)\nx = random.random()\nrandom.seed(1)\nassert random.random() == x",
    ),
    ("import sys\nsys.setrecursionlimit(60)", "import sys\nassert sys.getrecursionlimit() > 60"),
    (
        "import os\nos.chdir('/tmp')\nos.umask(0o777)\nos.environ['LEFT'] = '1'",
        "import os\nassert os.getcwd() == '/work' and 'LEFT' not in os.environ\nopen('f', 'w').write('x')",
    ),
    (
        "import builtins, math\nbuiltins.kept = solve\nmath.kept = solve\nbuiltins.len = lambda x: 0",
        "import builtins, math\nassert not hasattr(builtins, 'kept') and len([1]) == 1\ntry:\n    math.kept()\n"
        "    raise AssertionError('a handle from the last job reached a program')\nexcept BaseException as exc:\n"
        "    assert type(exc).__name__ == 'ProgramDied', exc",
    ),
    (
        "import signal\nsignal.signal(signal.SIGALRM, lambda *a: None)\nsignal.alarm(1)",
        "import signal, time\nassert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL\ntime.sleep(1.5)",
    ),
    ("import sys, io\nsys.stdout = io.StringIO()\nprint('swallowed')", "print('seen')"),
    (
        "import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()",
        "import threading\nassert threading.active_count() == 1",
    ),
    ("import os, time\nif os.fork() == 0:\n    time.sleep(30)\n    os._exit(0)", "x = 1"),
    (
        "import resource\nresource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))",
        "import resource\nassert resource.getrlimit(resource.RLIMIT_NOFILE)[1] > 16",
    ),
]


@pytest.mark.parametrize("left, check", LEFTOVERS, ids=lambda s: s.split("\n")[0][:30])
def test_no_state_of_a_test_reaches_the_next_job(slot, left, check):
    first = run(slot, "def solve():\n    return 1\n", [AssertTest(code=left)])
    assert first.status == "passed", first.tests
    second = run(slot, "def solve():\n    return 1\n", [AssertTest(code=check)])
    assert second.status == "passed", second.tests
    if "print" in check:
        assert second.stdout == "seen\n"
    assert len(_tester_pids(slot)) <= 1  # a thread or a child got it replaced (a new one starts with the next job)
    check_later_jobs(slot)


def test_tests_read_what_the_program_wrote(slot):
    code = "open('out.txt', 'w').write('hello')\ndef solve():\n    return 1\n"
    result = run(slot, code, [AssertTest(code="assert open('out.txt').read() == 'hello' and solve() == 1")])
    assert result.status == "passed", result.tests
