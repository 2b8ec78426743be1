"""The soak's job mix: good programs and attacks, each with the statuses it may end in.

Attacks get tight limits (a quarter second of wall clock, 8 processes, 128 MB), so that a job the sandbox has
to stop costs little; the mix is then mostly about *how often* the sandbox survives each kind, not how long.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from resrl.sandbox import CallTest, Job, Limits, StdioTest

LIMITS = Limits(wall_s=5.0, cpu_s=5, memory_mb=128, output_bytes=20_000, processes=8, file_size_mb=1, open_files=32)
SHORT = LIMITS.model_copy(update={"wall_s": 0.25})

FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
MEMORY_HOG = "chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))\n"
OUTPUT_FLOOD = "while True:\n    print('x' * 1000)\n"
DISK_FILL = "with open('big.bin', 'wb') as fh:\n    while True:\n        fh.write(b'0' * 2**16)\n"
FD_FLOOD = "handles = [open('/dev/null') for _ in range(10000)]\n"
# writes in every place a job might try to leave files: its work dir, /tmp, /var/tmp, /dev/shm
FILE_WRITES = """import os
written = 0
for d in ('.', '/tmp', '/var/tmp', '/dev/shm'):
    try:
        with open(os.path.join(d, 'soak-%d.txt' % os.getpid()), 'w') as fh:
            fh.write('left behind')
        os.makedirs(os.path.join(d, 'soak-dir-%d' % os.getpid(), 'sub'), exist_ok=True)
        written += 1
    except OSError:
        pass
print('ok', written >= 1)
"""
# a daemon (double fork, new session) and a plain child that would outlive the job, then a clean exit
LEAVE_BEHIND = """import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(3600)
    os._exit(0)
if os.fork() == 0:
    time.sleep(3600)
print('ok')
"""
SIGNAL_PARENT = """import os, signal
try:
    os.kill(os.getppid(), signal.SIGKILL)
    os.kill(1, signal.SIGKILL)
    print('killed')
except PermissionError:
    print('ok')
"""


@dataclass(frozen=True)
class Kind:
    """One kind of job: how often it comes, how it is built from a number, and how it may end."""

    name: str
    weight: int
    build: Callable[[int], Job]
    statuses: frozenset[str]
    stdout: Callable[[int], str] | None = None  # the exact stdout a good program must print


def _job(code: str, limits: Limits = LIMITS, **kwargs) -> Callable[[int], Job]:
    return lambda i: Job(code=code, limits=limits, **kwargs)


KINDS = (
    Kind("print", 30, lambda i: Job(code=f"print({i} * {i})", limits=LIMITS), frozenset({"passed"}),
         stdout=lambda i: f"{i * i}\n"),
    Kind("call", 20, lambda i: Job(code="def f(x):\n    return x + 1\n", limits=LIMITS,
                                    tests=[CallTest(fn="f", args=[i], expected=i + 1)]), frozenset({"passed"})),
    Kind("stdio", 10, lambda i: Job(code="print(2 * int(input()))", limits=LIMITS,
                                     tests=[StdioTest(input=f"{i}\n", output=f"{2 * i}")]), frozenset({"passed"})),
    Kind("wrong", 8, lambda i: Job(code="def f(x):\n    return x\n", limits=LIMITS,
                                    tests=[CallTest(fn="f", args=[i], expected=i + 1)]), frozenset({"failed"})),
    Kind("raise", 5, _job("raise ValueError('no')"), frozenset({"runtime_error"})),
    Kind("files", 6, _job(FILE_WRITES), frozenset({"passed"}), stdout=lambda i: "ok True\n"),
    Kind("leave_behind", 6, _job(LEAVE_BEHIND), frozenset({"passed"}), stdout=lambda i: "ok\n"),
    Kind("signal_parent", 3, _job(SIGNAL_PARENT), frozenset({"passed"}), stdout=lambda i: "ok\n"),
    Kind("output_flood", 3, _job(OUTPUT_FLOOD), frozenset({"output_limit"})),
    Kind("memory_hog", 3, _job(MEMORY_HOG), frozenset({"oom"})),
    Kind("disk_fill", 2, _job(DISK_FILL), frozenset({"runtime_error"})),
    Kind("fd_flood", 2, _job(FD_FLOOD), frozenset({"runtime_error"})),
    Kind("fork_bomb", 1, _job(FORK_BOMB, SHORT), frozenset({"timeout", "runtime_error"})),
    Kind("infinite_loop", 1, _job("while True:\n    pass\n", SHORT), frozenset({"timeout"})),
)  # fmt: skip


def job_mix(n: int, seed: int = 0) -> Iterator[tuple[Kind, int, Job]]:
    """``n`` jobs drawn from :data:`KINDS` by weight (seeded), each with its kind and number."""
    rng = random.Random(seed)
    kinds = rng.choices(KINDS, weights=[k.weight for k in KINDS], k=n)
    for i, kind in enumerate(kinds):
        yield kind, i, kind.build(i)
