"""Under CI=true a missing prerequisite fails the run, except what RESRL_CI_OPTIONAL names (.ci/run's second pass)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("optional", "outcome"),
    [("docker, vLLM", "1 skipped"), ("docker", "1 failed")],
)
def test_missing_prerequisite_fails_under_ci_unless_optional(tmp_path, optional, outcome) -> None:
    (tmp_path / "test_needs_vllm.py").write_text(
        "from tests.conftest import _missing\n\n\ndef test_needs_vllm():\n    _missing('vLLM', 'not installed')\n"
    )
    env = {**os.environ, "CI": "true", "RESRL_CI_OPTIONAL": optional, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert outcome in proc.stdout.splitlines()[-1], proc.stdout[-1500:]
