"""Sandboxed code execution: jobs, verdicts and the local / docker / remote backends."""

from __future__ import annotations

import os
from typing import Any

from resrl.sandbox.models import (
    AssertTest,
    CallTest,
    CheckerTest,
    Job,
    Limits,
    Result,
    Status,
    StdioTest,
    TestOutcome,
)
from resrl.sandbox.protocol import Sandbox


def make_sandbox(spec: str | None = None, **kwargs: Any) -> Sandbox:
    """Build a backend from ``"local"``, ``"docker"`` or an ``http(s)://`` sandbox-server URL.

    With no ``spec``: ``RESRL_SANDBOX_URL`` if set, else ``RESRL_SANDBOX_BACKEND`` (default ``local``).
    """
    spec = spec or os.environ.get("RESRL_SANDBOX_URL") or os.environ.get("RESRL_SANDBOX_BACKEND", "local")
    if spec.startswith(("http://", "https://")):
        from resrl.sandbox.backends.remote import RemoteSandbox

        return RemoteSandbox(spec, **kwargs)
    if spec == "local":
        from resrl.sandbox.backends.local import LocalSandbox

        return LocalSandbox(**kwargs)
    if spec == "docker":
        from resrl.sandbox.backends.docker import DockerSandbox

        return DockerSandbox(**kwargs)
    raise ValueError(f"unknown sandbox {spec!r}: use 'local', 'docker' or an http:// URL of a sandbox server")


__all__ = [
    "AssertTest",
    "CallTest",
    "CheckerTest",
    "Job",
    "Limits",
    "Result",
    "Sandbox",
    "Status",
    "StdioTest",
    "TestOutcome",
    "make_sandbox",
]
