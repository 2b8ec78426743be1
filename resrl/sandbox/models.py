"""Jobs and results: the pydantic contract every sandbox backend and the sandbox server speak."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_CODE_BYTES = 1_000_000
MAX_STDIN_BYTES = 16_000_000

Status = Literal["passed", "failed", "timeout", "oom", "output_limit", "runtime_error", "infra_error"]
"""``infra_error`` means the fault was ours (the sandbox), not the program's: trainers mask such rollouts."""


class Limits(BaseModel):
    """Resource limits of one job. Output beyond ``output_bytes`` ends the job with ``output_limit``."""

    model_config = ConfigDict(extra="forbid")

    cpu_s: int = Field(10, ge=1, le=600, description="CPU seconds per process")
    wall_s: float = Field(10.0, gt=0, le=600, description="wall-clock seconds per program run")
    memory_mb: int = Field(512, ge=32, le=65536, description="address space per process")
    output_bytes: int = Field(1_000_000, ge=1, le=64_000_000, description="stdout+stderr per run")
    processes: int = Field(32, ge=1, le=4096, description="processes and threads of the job")
    file_size_mb: int = Field(16, ge=0, le=4096, description="largest file the job may write")
    open_files: int = Field(64, ge=8, le=4096, description="open file descriptors per process")


class StdioTest(BaseModel):
    """Run the program with ``input`` on stdin and compare its stdout to ``output``."""

    kind: Literal["stdio"] = "stdio"
    input: str = ""
    output: str
    compare: Literal["exact", "whitespace", "numeric"] = "whitespace"
    rel_tol: float = 1e-6
    abs_tol: float = 1e-9


class AssertTest(BaseModel):
    """Python run in the program's namespace after it loads; passes when it raises nothing."""

    kind: Literal["assert"] = "assert"
    code: str


class CallTest(BaseModel):
    """Call ``fn(*args, **kwargs)``; the JSON value is compared to ``expected`` outside the sandbox."""

    kind: Literal["call"] = "call"
    fn: str
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    expected: Any = None
    rel_tol: float = 0.0
    abs_tol: float = 0.0


class CheckerTest(BaseModel):
    """Run the program on ``input``; a trusted checker ``def check(input, output, expected) -> bool`` judges.

    The checker runs in its own sandboxed process, never in the server.
    """

    kind: Literal["checker"] = "checker"
    input: str = ""
    checker: str
    output: Any = None


Test = Annotated[StdioTest | AssertTest | CallTest | CheckerTest, Field(discriminator="kind")]


class Job(BaseModel):
    """One program and its tests. With no tests the program just runs: ``passed`` means exit status 0."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=MAX_CODE_BYTES)
    language: Literal["python"] = "python"
    stdin: str = Field("", max_length=MAX_STDIN_BYTES)
    files: dict[str, str] = Field(default_factory=dict)
    fetch_files: list[str] = Field(default_factory=list, description="files to send back (``Result.files``)")
    tests: list[Test] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)

    @field_validator("files", "fetch_files")
    @classmethod
    def _relative_names(cls, files: dict[str, str] | list[str]) -> dict[str, str] | list[str]:
        for name in files:
            path = PurePosixPath(name)
            if not name or path.is_absolute() or ".." in path.parts:
                raise ValueError(f"file name {name!r} must be a relative path inside the job directory")
        return files


class TestOutcome(BaseModel):
    """The verdict on one test."""

    index: int
    kind: str
    passed: bool
    status: Status
    message: str = ""


class Result(BaseModel):
    """What a job did. ``stdout``/``stderr`` hold at most ``limits.output_bytes`` together; when the program wrote
    more, ``output_truncated`` is true and the status is ``output_limit``."""

    status: Status
    tests: list[TestOutcome] = Field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    output_truncated: bool = False
    exit_code: int | None = None
    message: str = ""
    queue_time: float = 0.0
    run_time: float = 0.0
    metadata: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict, description="base64 of the job's ``fetch_files`` found")

    @property
    def passed(self) -> bool:
        """Whether every test passed (or, with no tests, the program exited cleanly)."""
        return self.status == "passed"

    @property
    def pass_fraction(self) -> float:
        """The share of tests passed (1.0 or 0.0 without tests)."""
        if not self.tests:
            return float(self.passed)
        return sum(t.passed for t in self.tests) / len(self.tests)

    @classmethod
    def infra(cls, message: str, **metadata: Any) -> Result:
        """A result for a failure of the sandbox itself."""
        return cls(status="infra_error", message=message, metadata=metadata)
