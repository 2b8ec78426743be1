"""The sandbox server, started for real with ``resrl serve sandbox`` on 127.0.0.1, and its remote client."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from resrl.sandbox import CallTest, Job, Limits, StdioTest
from resrl.sandbox.backends.remote import RemoteSandbox
from tests.sandbox.support import SERVER_SECRET, free_port, start_server, stop_server


@pytest.fixture(scope="module")
def server():
    proc, url = start_server("--workers", "2", "--max-queue", "8")
    yield url
    stop_server(proc)


def test_run_and_batch(server):
    client = RemoteSandbox(server)
    job = Job(code="def f(x):\n    return x + 1\n", tests=[CallTest(fn="f", args=[1], expected=2)])
    assert client.run(job).status == "passed"
    jobs = [Job(code="import sys\nprint(sys.stdin.read()[::-1])", tests=[StdioTest(input=s, output=s[::-1])])
            for s in ["abc", "hello", "xyz"]]  # fmt: skip
    assert [r.status for r in client.run_batch(jobs)] == ["passed"] * 3
    health = client.health()
    assert health["ok"] and health["backend"] == "local"
    client.close()


def test_server_environment_never_reaches_jobs(server):
    result = RemoteSandbox(server).run(Job(code="import os\nprint(os.environ)\nprint(open('/proc/1/environ').read())"))
    assert SERVER_SECRET not in result.stdout + result.stderr


def test_sandboxfusion_run_code(server):
    files = {"data.txt": base64.b64encode(b"41").decode()}
    ok = httpx.post(server + "/run_code", json={
        "code": "import sys\nprint(int(open('data.txt').read()) + int(sys.stdin.read()))", "language": "python",
        "stdin": "1", "run_timeout": 5, "compile_timeout": 5, "memory_limit_MB": 256, "files": files,
    }, timeout=30).json()  # fmt: skip
    assert ok["status"] == "Success"
    assert ok["run_result"]["status"] == "Finished"
    assert ok["run_result"]["stdout"] == "42\n"
    assert ok["run_result"]["return_code"] == 0
    assert isinstance(ok["run_result"]["execution_time"], float)
    slow = httpx.post(server + "/run_code", json={"code": "while True: pass", "run_timeout": 1}, timeout=30).json()
    assert (slow["status"], slow["run_result"]["status"]) == ("Failed", "TimeLimitExceeded")
    err = httpx.post(server + "/run_code", json={"code": "import sys; sys.exit(3)"}, timeout=30).json()
    assert (err["status"], err["run_result"]["return_code"]) == ("Failed", 3)
    bad = httpx.post(server + "/run_code", json={"code": "x", "language": "cobol"}, timeout=30)
    assert bad.status_code == 400 and "cobol" in bad.json()["detail"]


def test_metrics_and_validation(server):
    assert httpx.post(server + "/v1/run", json={"code": 3}, timeout=30).status_code == 422
    text = httpx.get(server + "/metrics", timeout=30).text
    assert 'resrl_sandbox_jobs_total{status="passed"}' in text
    assert "resrl_sandbox_run_seconds_bucket" in text


def test_full_queue_answers_429_and_client_retries():
    proc, url = start_server("--workers", "1", "--max-queue", "0")
    try:
        slow = Job(code="import time\ntime.sleep(1.5)\nprint('done')", limits=Limits(wall_s=5))
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda _: httpx.post(url + "/v1/run", json=slow.model_dump(), timeout=30),
                                    range(4)))  # fmt: skip
        codes = sorted(r.status_code for r in replies)
        assert codes.count(200) >= 1 and 429 in codes
        assert all(r.headers["Retry-After"] for r in replies if r.status_code == 429)
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(RemoteSandbox(url, retries=10).run, [slow] * 3))
        assert [r.stdout for r in results] == ["done\n"] * 3
        assert "resrl_sandbox_rejected_total" in httpx.get(url + "/metrics").text
    finally:
        stop_server(proc)


def test_unreachable_server_is_an_infra_error():
    result = RemoteSandbox(f"http://127.0.0.1:{free_port()}", retries=1).run(Job(code="print(1)"))
    assert result.status == "infra_error"
    assert "unreachable" in result.message


def test_replicas_take_over_from_one_that_is_down(server):
    """Two replicas, one of which nothing listens on: every job still passes, on the live one."""
    dead = f"http://127.0.0.1:{free_port()}"
    client = RemoteSandbox(f"{dead},{server}", retries=3)
    job = Job(code="def f(x):\n    return x * 3\n", tests=[CallTest(fn="f", args=[2], expected=6)])
    with ThreadPoolExecutor(4) as pool:
        statuses = [r.status for r in pool.map(client.run, [job] * 8)]
    assert statuses == ["passed"] * 8
    assert client.balancer.is_down(dead) and not client.balancer.is_down(server)
    health = client.health()
    assert health["ok"] and not health["replicas"][dead]["ok"] and health["replicas"][server]["ok"]
    with pytest.raises(ValueError, match="at least one sandbox server URL"):
        RemoteSandbox(" , ")
