"""All 164 HumanEval canonical solutions pass through the sandbox; a ``return None`` version of each fails."""

from __future__ import annotations

from resrl.sandbox import AssertTest, Job
from resrl_envs.code import humaneval


def _jobs(body: str | None) -> list[Job]:
    return [
        Job(code=p["prompt"] + (body if body is not None else p["canonical_solution"]),
            tests=[AssertTest(code=humaneval.check_program(p))])
        for p in humaneval.problems()
    ]  # fmt: skip


def test_canonical_solutions_pass_and_return_none_fails(sandbox):
    problems = humaneval.problems()
    assert len(problems) == 164
    good = sandbox.run_batch(_jobs(None))
    failed = [(p["task_id"], r.status, r.message) for p, r in zip(problems, good, strict=True) if not r.passed]
    assert failed == []
    bad = sandbox.run_batch(_jobs("    return None\n"))
    passed = [p["task_id"] for p, r in zip(problems, bad, strict=True) if r.status == "passed"]
    assert passed == []
    assert {r.status for r in bad} <= {"failed", "runtime_error", "timeout"}
    assert all(not t.passed for r in bad for t in r.tests)
