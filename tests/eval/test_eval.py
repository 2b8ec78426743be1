"""``resrl eval`` as a user runs it: in process with the hf backend, against a real ``vllm serve`` OpenAI server,
with infra errors left out; and one set of trajectories giving the same numbers through every path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resrl.cli import main
from resrl.metrics import score
from resrl.rollout import Trajectory
from resrl.trainer.config import validate_config
from resrl.trainer.loop import Trainer
from tests.vllm_servers import start_servers, stop_servers

HERE = Path(__file__).parent
EPISODE = ["--max-turns", "1", "--max-new-tokens", "16", "--max-tokens", "32"]


def _read(path: Path) -> list[Trajectory]:
    return [Trajectory.model_validate_json(line) for line in path.read_text().splitlines()]


def _by_hand(trajs: list[Trajectory]) -> dict[str, list[float]]:
    """Each task's usable outcomes, computed here without resrl.metrics."""
    groups: dict[str, list[float]] = {}
    for t in trajs:
        if t.infra_error is None:
            groups.setdefault(t.group_id, []).append(float(t.reward >= 1.0))
    return groups


def _check_flaky_scores(s: dict, trajs: list[Trajectory]) -> None:
    """test/coin-flaky with 4 tasks x 4 samples: task 0 lost, task 1 short a sample; nothing scored 0 for it."""
    groups = _by_hand([t for t in trajs if t.env_id == "test/coin-flaky"])
    assert s["infra_errors"] == 5 and s["tasks"] == 3 and s["tasks_short"] == 1
    assert sorted(len(g) for g in groups.values()) == [3, 4, 4]
    assert s["avg_at_k"] == pytest.approx(sum(sum(g) / len(g) for g in groups.values()) / 3)
    full = [g for g in groups.values() if len(g) == 4]  # Pass@4 / pass^4 are defined on 4 usable samples only
    assert s["pass_at_k"] == pytest.approx(sum(max(g) for g in full) / len(full))
    assert s["pass_hat_k"] == pytest.approx(sum(min(g) for g in full) / len(full))
    assert s["pass_at_k/1"] == pytest.approx(s["avg_at_k"])


def test_eval_in_process_table_results_and_plot(coin_model, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["eval", "--policy", f"hf:{coin_model}", "--envs", "test/coin*", "--tasks", "4", "--k", "4", *EPISODE]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for text in ("Avg@4", "Pass@1", "Pass@4", "pass^4", "infra errors", "test/coin-flaky", "all"):
        assert text in printed, text
    result = json.loads((out / "results.json").read_text())
    trajs = _read(out / "trajectories.jsonl")
    assert len(trajs) == 2 * 4 * 4 and set(result["envs"]) == {"test/coin", "test/coin-flaky"}
    assert result["settings"]["envs"] == ["test/coin", "test/coin-flaky"]
    _check_flaky_scores(result["envs"]["test/coin-flaky"], trajs)
    coin = result["envs"]["test/coin"]
    assert coin["infra_errors"] == 0 and coin["tasks"] == 4
    assert 0 < result["overall"]["avg_at_k"] < 1, "the coin model should both succeed and fail"
    assert result["overall"]["tasks"] == 7 and result["overall"]["infra_errors"] == 5
    assert len(result["overall"]["pass_curve"]) == 4
    assert (out / "pass_at_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_reports_bad_input(tmp_path, capsys):
    assert main(["eval", "--policy", "hf:x", "--envs", "nope/*", "--out", str(tmp_path)]) == 2
    assert "no environment matches 'nope/*'" in capsys.readouterr().err
    assert main(["eval", "--envs", "test/coin", "--out", str(tmp_path)]) == 2
    assert "--policy" in capsys.readouterr().err


def test_identical_trajectories_give_identical_numbers_through_every_path(coin_model, tmp_path, capsys):
    """resrl rollout's summary, resrl eval (sampling, and re-scoring a file), the trainer's evaluation and
    resrl.metrics directly: one set of trajectories, one set of numbers."""
    common = ["--policy", f"hf:{coin_model}", "--tasks", "4", "--seed", "0", "--temperature", "1.0", *EPISODE]
    rollout_file = tmp_path / "rollout.jsonl"
    assert main(["rollout", "--env", "test/coin-flaky", "--n", "4", *common, "--out", str(rollout_file)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed[printed.index("{") :])
    rolled = _read(rollout_file)
    assert summary == json.loads(json.dumps(score(rolled, 4, 1.0)))
    _check_flaky_scores(summary, rolled)

    # resrl eval samples the same tasks with the same seeds: the same trajectories, the same numbers.
    assert main(["eval", "--envs", "test/coin-flaky", "--k", "4", *common, "--out", str(tmp_path / "e")]) == 0
    evaluated = json.loads((tmp_path / "e" / "results.json").read_text())
    sampled = _read(tmp_path / "e" / "trajectories.jsonl")
    assert [(t.group_id, t.response_ids, t.reward) for t in sampled] == [
        (t.group_id, t.response_ids, t.reward) for t in rolled
    ]
    assert evaluated["overall"] == summary == evaluated["envs"]["test/coin-flaky"]

    # The trainer's evaluation of its own collection, and resrl eval re-scoring that collection from a file.
    cfg = validate_config(
        {
            "model": {"path": str(coin_model)},
            "data": {"envs": ["test/coin-flaky"], "train_tasks": 4, "test_tasks": 4},
            "rollout": {"n": 4, "max_turns": 1, "max_tokens": 32, "max_new_tokens_per_turn": 16},
            "train": {"eval_k": 4, "out_dir": str(tmp_path / "t"), "plots": False, "tensorboard": False},
        }
    )
    trainer = Trainer(cfg)
    try:
        record = trainer.evaluate(0)
        collected = trainer.last_eval_trajectories
    finally:
        trainer.close()
    assert record == score(collected, 4, 1.0)
    _check_flaky_scores(record, collected)
    saved = tmp_path / "trainer_eval.jsonl"
    saved.write_text("".join(t.model_dump_json() + "\n" for t in collected))
    assert main(["eval", "--trajectories", str(saved), "--out", str(tmp_path / "r")]) == 0
    rescored = json.loads((tmp_path / "r" / "results.json").read_text())
    assert rescored["overall"] == json.loads(json.dumps(record))


@pytest.fixture(scope="module")
def coin_server(require_vllm, coin_model, tmp_path_factory):
    """``vllm serve`` (the OpenAI-compatible server) on loopback with the coin model."""
    (server,) = start_servers(coin_model, 1, tmp_path_factory.mktemp("server"))
    try:
        yield server.api
    finally:
        stop_servers([server])
    assert not server.rpc_dir.exists(), "the server's ZMQ socket folder outlived it"


@pytest.mark.vllm
@pytest.mark.slow
def test_eval_against_a_vllm_openai_server(coin_server, tmp_path):
    """``resrl eval --policy openai:URL`` in a fresh process (the envs come from ``--import``)."""
    out = tmp_path / "served"
    env = {**os.environ, "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "resrl", "eval", "--import", "coin_plugin", "--policy", f"openai:{coin_server}"]
    cmd += ["--envs", "test/coin,test/coin-flaky", "--tasks", "4", "--k", "4", *EPISODE, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pass^4" in proc.stdout and "test/coin-flaky" in proc.stdout
    result = json.loads((out / "results.json").read_text())
    trajs = _read(out / "trajectories.jsonl")
    assert len(trajs) == 32 and all(t.turns == 1 for t in trajs if t.infra_error is None)
    _check_flaky_scores(result["envs"]["test/coin-flaky"], trajs)
    assert 0 < result["overall"]["avg_at_k"] < 1, "the served coin model should both succeed and fail"
    assert result["overall"] == json.loads(json.dumps(score(trajs, 4, 1.0)))
