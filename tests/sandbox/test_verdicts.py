"""Test kinds, statuses, output capping and timings of jobs (local backend; docker runs the same executor)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from resrl.sandbox import AssertTest, CallTest, CheckerTest, Job, Limits, StdioTest

ADD = "import sys\na, b = map(float, sys.stdin.read().split())\nprint(a + b)\n"


def test_stdio_compare_modes(local_sandbox):
    tests = [
        StdioTest(input="1 2", output="3.0\n", compare="exact"),
        StdioTest(input="1 2", output="  3.0  ", compare="whitespace"),
        StdioTest(input="0.1 0.2", output="0.3", compare="numeric"),
        StdioTest(input="0.1 0.2", output="0.3", compare="exact"),
        StdioTest(input="1 2", output="3.5", compare="numeric"),
    ]
    result = local_sandbox.run(Job(code=ADD, tests=tests))
    assert [t.passed for t in result.tests] == [True, True, True, False, False]
    assert result.status == "failed"
    assert "expected" in result.tests[3].message


def test_call_and_assert_tests_are_judged(local_sandbox):
    code = "def f(xs):\n    return sorted(xs)\ndef g(x):\n    return x / 3\n"
    tests = [
        CallTest(fn="f", args=[[3, 1, 2]], expected=[1, 2, 3]),
        CallTest(fn="f", args=[[3, 1]], expected=[3, 1]),
        CallTest(fn="g", args=[1], expected=0.3333, rel_tol=1e-3),
        CallTest(fn="missing", expected=1),
        AssertTest(code="assert f([2, 1]) == [1, 2]"),
        AssertTest(code="assert g(3) == 2"),
    ]
    result = local_sandbox.run(Job(code=code, tests=tests))
    assert [t.passed for t in result.tests] == [True, False, True, False, True, False]
    assert "KeyError" in result.tests[3].message
    assert result.pass_fraction == pytest.approx(0.5)


def test_call_value_types_matter(local_sandbox):
    result = local_sandbox.run(Job(code="def f():\n    return True\n", tests=[CallTest(fn="f", expected=1)]))
    assert result.status == "failed"


def test_checker_hook(local_sandbox):
    checker = "def check(inp, out, expected):\n    return sorted(out.split()) == sorted(expected.split())\n"
    code = "print('b a c')\n"
    tests = [CheckerTest(checker=checker, output="a b c"), CheckerTest(checker=checker, output="a b d")]
    result = local_sandbox.run(Job(code=code, tests=tests))
    assert [t.passed for t in result.tests] == [True, False]


def test_program_errors_and_limits(local_sandbox):
    assert local_sandbox.run(Job(code="raise ValueError('boom')")).status == "runtime_error"
    syntax = local_sandbox.run(Job(code="def (:\n", tests=[CallTest(fn="f", expected=1)]))
    assert syntax.status == "runtime_error"
    assert "SyntaxError" in syntax.stderr
    limits = Limits(output_bytes=100)
    flood = local_sandbox.run(Job(code="print('a' * 1000)\n", limits=limits))
    assert (flood.status, flood.output_truncated, flood.stdout) == ("output_limit", True, "a" * 100)
    small = local_sandbox.run(Job(code="print('a' * 10)\n", limits=limits))
    assert (small.status, small.output_truncated) == ("passed", False)


def test_files_stdin_and_timings(local_sandbox):
    job = Job(code="import sys\nprint(open('data/x.txt').read() + sys.stdin.read())\n", stdin="!",
              files={"data/x.txt": "hello"})  # fmt: skip
    result = local_sandbox.run(job)
    assert result.stdout == "hello!\n"
    assert result.run_time > 0
    assert result.queue_time >= 0
    assert result.metadata["backend"] == "local"
    assert result.metadata["netns"] is True


def test_bad_jobs_are_refused_with_a_reason():
    with pytest.raises(ValidationError, match="relative path"):
        Job(code="", files={"../etc/passwd": "x"})
    with pytest.raises(ValidationError):
        Job(code="", language="cobol")
    with pytest.raises(ValidationError):
        Job(code="", limits={"wall_s": -1})


def test_batch_keeps_order(local_sandbox):
    results = local_sandbox.run_batch([Job(code=f"print({i})") for i in range(12)])
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(12)]
