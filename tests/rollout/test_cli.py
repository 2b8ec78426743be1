"""``resrl models tiny`` and ``resrl rollout`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from resrl.cli import main
from resrl.rollout import Trajectory


def test_models_tiny_builds_a_loadable_checkpoint(tmp_path, capsys):
    out = tmp_path / "tiny-llama3"
    assert main(["models", "tiny", "--out", str(out), "--template", "llama3", "--vocab-size", "1024"]) == 0
    assert "saved tiny model" in capsys.readouterr().out
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.vocab_size == len(tok) and tok.eos_token == "<|eot_id|>"
    assert "<|start_header_id|>" in tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    # Tool-call text is cheap: a whole Hermes call in few tokens.
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    assert len(tok.encode(call, add_special_tokens=False)) < len(call) / 2.5
    assert main(["models", "tiny", "--out", str(out), "--hidden", "65", "--heads", "2"]) == 2


def test_rollout_command_writes_trajectories_and_scores(trained_dir, tmp_path):
    out = tmp_path / "trajs.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "resrl",
            "rollout",
            "--import",
            "lookup_env_plugin",
            "--env",
            "test/lookup",
            "--policy",
            f"hf:{trained_dir}",
            "--tasks",
            "3",
            "--n",
            "2",
            "--max-turns",
            "3",
            "--max-new-tokens",
            "48",
            "--temperature",
            "1.0",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    trajs = [Trajectory.model_validate_json(line) for line in out.read_text().splitlines()]
    assert len(trajs) == 6 and len({t.group_id for t in trajs}) == 3
    summary = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert summary["episodes"] == 6
    assert {"success_rate", "avg_at_k", "pass_at_k/1", "pass_at_k/2", "pass_hat_k/2"} <= set(summary)
    assert 0.0 <= summary["pass_at_k/1"] <= summary["pass_at_k/2"] <= 1.0


def test_rollout_command_reports_bad_policy_spec(tmp_path, capsys):
    assert main(["rollout", "--env", "test/lookup", "--policy", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "hf:PATH" in capsys.readouterr().err
