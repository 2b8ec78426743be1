"""The real compose stack: images, `up --scale envs=2`, gold episodes on both replicas, teardown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(1800)  # a clean CI machine debootstraps the base image and builds both images first
def test_compose_stack_serves_gold_episodes(require_docker):
    env = {**os.environ, "PYTHON": sys.executable, "COMPOSE_PROJECT_NAME": "resrltest"}
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "compose_test.sh")], env=env, capture_output=True, text=True, timeout=1500
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert "PASS: both replicas served gold function-calling and code episodes" in proc.stderr
    assert proc.stderr.count("gold reward 1.0") == 4
