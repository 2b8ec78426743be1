"""Verdict helpers of the executor: output comparison, value comparison, the job's overall status.

Standard library only (it ships into containers with ``executor.py``).
"""

from __future__ import annotations

import json
import math


def outcome(i: int, t: dict, passed: bool, status: str, message: str) -> dict:
    return {"index": i, "kind": t["kind"], "passed": passed, "status": status, "message": message[:2000]}


def clip(text: str, n: int = 200) -> str:
    return text if len(text) <= n else f"{text[:n]}...[{len(text) - n} more chars]"


def judge_value(i: int, t: dict, encoded: str) -> dict:
    got = json.loads(encoded)
    want = json.loads(json.dumps(t.get("expected")))
    ok = values_equal(got, want, t.get("rel_tol", 0.0), t.get("abs_tol", 0.0))
    return outcome(i, t, ok, "passed" if ok else "failed", "" if ok else f"expected {want!r}, got {got!r}"[:2000])


def values_equal(got, want, rel: float, abs_: float) -> bool:
    if isinstance(want, float) and isinstance(got, int | float) and not isinstance(got, bool):
        return got == want or math.isclose(got, want, rel_tol=rel, abs_tol=abs_)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(values_equal(g, w, rel, abs_) for g, w in zip(got, want, strict=False))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(values_equal(got[k], want[k], rel, abs_) for k in want)
    return type(got) is type(want) and got == want


def compare_output(got: str, want: str, mode: str, t: dict) -> bool:
    if mode == "exact":
        return got == want
    a, b = got.split(), want.split()
    if mode == "whitespace":
        return a == b
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=False):
        if x == y:
            continue
        try:
            if not math.isclose(float(x), float(y), rel_tol=t.get("rel_tol", 1e-6), abs_tol=t.get("abs_tol", 1e-9)):
                return False
        except ValueError:
            return False
    return True


_ORDER = ("output_limit", "timeout", "oom", "runtime_error", "failed")


def summarise(tests: list, outcomes: list, main: dict) -> dict:
    statuses = [o["status"] for o in outcomes if o is not None]
    if not tests:
        status = "passed" if main["status"] == "ok" else main["status"]
    else:
        status = next((s for s in _ORDER if s in statuses), "passed")
    return {
        "status": status,
        "tests": outcomes,
        "stdout": main["stdout"],
        "stderr": main["stderr"],
        "output_truncated": main["truncated"],
        "exit_code": main["exit_code"],
        "message": main["message"] or next((o["message"] for o in outcomes if o and not o["passed"]), ""),
    }
