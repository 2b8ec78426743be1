"""SandboxFusion's own client package (``sandbox-fusion`` on PyPI) against our ``/run_code`` on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64

import pytest

from tests.sandbox.support import start_server, stop_server

sandbox_fusion = pytest.importorskip("sandbox_fusion", reason="pip install -e '.[test]' installs sandbox-fusion")
from sandbox_fusion import (  # noqa: E402 - after the importorskip
    RunCodeRequest,
    RunStatus,
    SummaryMapping,
    run_code,
    run_code_async,
    summary_run_code_result,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the client calls pydantic's .dict()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def endpoint():
    proc, url = start_server("--workers", "2", "--max-queue", "8")
    yield url
    stop_server(proc)


def run(endpoint: str, **fields):
    return run_code(RunCodeRequest(language="python", **fields), endpoint=endpoint, max_attempts=1)


def test_success_with_stdin(endpoint):
    reply = run(endpoint, code="import sys\nprint('hello', sys.stdin.read().upper())", stdin="world")
    assert reply.status == RunStatus.Success
    assert reply.run_result.stdout == "hello WORLD\n"
    assert reply.run_result.return_code == 0
    assert summary_run_code_result(reply, SummaryMapping()) == RunStatus.Success


def test_files_in_and_fetch_files_out(endpoint):
    code = (
        "import os\nn = int(open('data/n.txt').read())\nos.makedirs('out', exist_ok=True)\n"
        "open('out/square.txt', 'w').write(str(n * n))\nopen('blob.bin', 'wb').write(bytes(range(256)))\n"
        "os.symlink('/etc/hostname', 'leak.txt')\n"
    )
    reply = run(endpoint, code=code, files={"data/n.txt": b64(b"12")},
                fetch_files=["out/square.txt", "blob.bin", "missing.txt", "leak.txt"])  # fmt: skip
    assert reply.status == RunStatus.Success, reply
    assert base64.b64decode(reply.files["out/square.txt"]) == b"144"
    assert base64.b64decode(reply.files["blob.bin"]) == bytes(range(256))
    assert "missing.txt" not in reply.files
    assert "leak.txt" not in reply.files  # a symlink out of the job directory is never followed


def test_runtime_error(endpoint):
    reply = run(endpoint, code="import sys\nprint('x', file=sys.stderr)\nsys.exit(3)")
    assert reply.status == RunStatus.Failed
    assert (reply.run_result.return_code, reply.run_result.stderr) == (3, "x\n")
    assert summary_run_code_result(reply, SummaryMapping(RunFailed="run-failed")) == "run-failed"


def test_exception_and_syntax_error(endpoint):
    raised = run(endpoint, code="raise KeyError('k')")
    assert raised.status == RunStatus.Failed and "KeyError" in raised.run_result.stderr
    syntax = run(endpoint, code="def (:")
    assert syntax.status == RunStatus.Failed and "SyntaxError" in syntax.run_result.stderr


def test_timeout(endpoint):
    reply = run(endpoint, code="while True:\n    pass\n", run_timeout=1)
    assert reply.status == RunStatus.Failed
    assert reply.run_result.status == "TimeLimitExceeded"
    assert summary_run_code_result(reply, SummaryMapping(RunTimeout="timeout")) == "timeout"


def test_memory_limit(endpoint):
    # the client has no memory field: the server's default limit (512 MB) holds
    reply = run(endpoint, code="x = bytearray(2 * 2**30)\nprint('allocated')")
    assert reply.status == RunStatus.Failed
    assert "allocated" not in reply.run_result.stdout


def test_async_client_concurrently(endpoint):
    async def many():
        requests = [RunCodeRequest(language="python", code=f"print({i} * {i})") for i in range(6)]
        return await asyncio.gather(*(run_code_async(r, endpoint=endpoint, max_attempts=1) for r in requests))

    replies = asyncio.run(many())
    assert [r.run_result.stdout for r in replies] == [f"{i * i}\n" for i in range(6)]


def test_refused_requests_raise_in_the_client(endpoint):
    with pytest.raises(Exception, match="400"):
        run_code(RunCodeRequest(language="cpp", code="int main() {}"), endpoint=endpoint, max_attempts=1)
    with pytest.raises(Exception, match="400"):
        run(endpoint, code="print(1)", fetch_files=["../../etc/passwd"])
