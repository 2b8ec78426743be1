"""SandboxFusion's ``POST /run_code`` request and reply, mapped onto our jobs and results.

Field names and status words follow SandboxFusion so that verl and SandboxFusion clients work unchanged. Unlike
SandboxFusion, output past the limit is reported (``output_limit``) instead of being silently cut.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Literal

from pydantic import BaseModel, Field

from resrl.sandbox.models import Job, Limits, Result

PYTHON_NAMES = {"python", "python3"}


class RunCodeRequest(BaseModel):
    """SandboxFusion's request: ``files`` maps a path to base64 content; ``fetch_files`` names files (relative to
    the program's directory) whose content comes back, base64, in the reply's ``files``."""

    code: str
    language: str = "python"
    stdin: str | None = None
    run_timeout: float = 10.0
    compile_timeout: float = 10.0
    memory_limit_MB: int = -1
    files: dict[str, str | None] = Field(default_factory=dict)
    fetch_files: list[str] = Field(default_factory=list)

    def to_job(self) -> Job:
        """Our job for this request; ``ValueError`` names a field that cannot be honoured."""
        if self.language not in PYTHON_NAMES:
            raise ValueError(f"language {self.language!r} is not supported (supported: python)")
        files = {}
        for name, content in self.files.items():
            try:
                files[name] = base64.b64decode(content or "", validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ValueError(f"files[{name!r}] must be base64 of UTF-8 text: {exc}") from exc
        wall = max(0.1, min(600.0, self.run_timeout))
        limits = Limits(wall_s=wall, cpu_s=max(1, math.ceil(wall)))
        if self.memory_limit_MB > 0:
            limits.memory_mb = max(32, self.memory_limit_MB)
        return Job(code=self.code, stdin=self.stdin or "", files=files, fetch_files=self.fetch_files, limits=limits)


class RunResult(BaseModel):
    """SandboxFusion's ``run_result``."""

    status: Literal["Finished", "TimeLimitExceeded", "Error"]
    execution_time: float | None = None
    return_code: int | None = None
    stdout: str | None = None
    stderr: str | None = None


class RunCodeResponse(BaseModel):
    """SandboxFusion's reply: ``Success`` when the program ran and exited 0, ``Failed`` when it ran and did not,
    ``SandboxError`` when the fault was the sandbox's."""

    status: Literal["Success", "Failed", "SandboxError"]
    message: str = ""
    compile_result: RunResult | None = None
    run_result: RunResult | None = None
    executor_pod_name: str | None = None
    files: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def from_result(cls, result: Result) -> RunCodeResponse:
        """Translate our result."""
        if result.status == "infra_error":
            return cls(status="SandboxError", message=result.message)
        run_status = "TimeLimitExceeded" if result.status == "timeout" else "Finished"
        if result.status in ("oom", "output_limit"):
            run_status = "Error"
        run = RunResult(
            status=run_status,
            execution_time=result.run_time,
            return_code=result.exit_code,
            stdout=result.stdout,
            stderr=result.stderr,
        )
        ok = result.status == "passed"
        return cls(status="Success" if ok else "Failed", message="" if ok else result.message, run_result=run,
                   files=result.files)  # fmt: skip
