"""Sandbox fixtures: one warm local sandbox and one docker sandbox per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from resrl.sandbox import Sandbox
from resrl.sandbox.backends.local import LocalSandbox
from tests.sandbox import support  # noqa: F401 - sets the secret before any sandbox starts


@pytest.fixture(scope="session")
def local_sandbox():
    sandbox = LocalSandbox(workers=2)
    yield sandbox
    base = Path(sandbox.base_dir)
    sandbox.close()
    assert not base.exists(), f"the local sandbox left {base} behind: {list(base.iterdir())}"


@pytest.fixture(scope="session")
def docker_sandbox(require_docker):
    import docker
    from resrl.sandbox.backends.docker import DEFAULT_IMAGE, DockerSandbox

    image = os.environ.get("RESRL_SANDBOX_IMAGE", DEFAULT_IMAGE)
    try:
        docker.from_env().images.get(image)
    except docker.errors.ImageNotFound:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"image {image} missing under CI: run scripts/build_base_image.sh first")
        pytest.skip(f"image {image} missing: run scripts/build_base_image.sh")
    sandbox = DockerSandbox(workers=2)
    names = [c.name for c in sandbox.containers]
    yield sandbox
    sandbox.close()
    left = [c.name for c in docker.from_env().containers.list(all=True) if c.name in names]
    assert not left, f"containers left behind: {left}"


@pytest.fixture(params=["local", "docker"])
def sandbox(request) -> Sandbox:
    return request.getfixturevalue(f"{request.param}_sandbox")
