"""``kill -9`` of ``resrl train`` in the middle of a step, then ``--resume``: the run finishes, continuing from
the step after its last checkpoint, and its metrics log holds every step exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from resrl.trainer.checkpoint import latest_checkpoint, list_checkpoints, read_state, save_checkpoint
from resrl.trainer.logs import read_records

pytestmark = pytest.mark.soak

STEPS, KILL_AFTER = 6, 3  # killed during step 4 of 6


def _config(model: Path, out: Path) -> dict:
    return {
        "model": {"path": str(model)},
        "data": {"envs": ["fc/simple"], "train_tasks": 8, "test_tasks": 2},
        "rollout": {"n": 8, "max_turns": 1, "max_tokens": 96, "max_new_tokens_per_turn": 48},
        "algo": {"scheme": "resrl", "rank": 4},
        "optim": {"lr": 1e-3, "mini_batch_size": 8, "micro_batch_size": 8},
        "train": {"steps": STEPS, "tasks_per_step": 2, "eval_every": 0, "eval_k": 2, "save_every": 1,
                  "out_dir": str(out), "seed": 5, "plots": False, "tensorboard": False},
    }  # fmt: skip


def _train(config: Path, log: Path, *extra: str) -> subprocess.Popen:
    # one torch thread: a tiny model gains nothing from more, and on a busy machine OpenMP threads that spin
    # waiting for each other made its steps twenty times slower
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "resrl", "train", str(config), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def _appeared(path: Path, proc: subprocess.Popen, log: Path, timeout_s: float = 300.0) -> float:
    """Wait until ``path`` exists (a guard against hangs, not a timing assert); returns when it did."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"resrl train exited {proc.returncode} early: {log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout_s}s: {log.read_text()[-3000:]}")
        time.sleep(0.005)
    return time.monotonic()


def test_kill_9_mid_step_then_resume_loses_only_the_step_in_flight(tmp_path):
    from resrl.models import build_tiny

    model = build_tiny(tmp_path / "model", vocab_size=512, hidden=64, layers=2, heads=2)
    out = tmp_path / "run"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_config(model, out)))
    log = tmp_path / "train.log"
    ckpts = out / "checkpoints"

    proc = _train(config, log)
    before = _appeared(ckpts / f"step_{KILL_AFTER - 1:06d}", proc, log)
    last = _appeared(ckpts / f"step_{KILL_AFTER:06d}", proc, log)
    time.sleep((last - before) / 3)  # a third into the next step (about as long as the one before)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL

    # killed mid-step: step KILL_AFTER + 1 had neither logged nor saved anything
    assert [r["step"] for r in read_records(out / "metrics.jsonl", "train")] == list(range(1, KILL_AFTER + 1))
    assert latest_checkpoint(out).name == f"step_{KILL_AFTER:06d}"

    resumed = _train(config, log, "--resume")
    assert resumed.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert f"at step {KILL_AFTER}" in log.read_text()  # "resumed from ... at step 3"

    train_steps = [r["step"] for r in read_records(out / "metrics.jsonl", "train")]
    assert train_steps == list(range(1, STEPS + 1))  # none missing, none twice
    assert [r["step"] for r in read_records(out / "metrics.jsonl", "eval")] == [0, STEPS]
    final = latest_checkpoint(out)
    assert final.name == f"step_{STEPS:06d}"
    assert [h["step"] for h in read_state(final)["history"]] == list(range(1, STEPS + 1))
    assert [p.name for p in list_checkpoints(out)] == [f"step_{STEPS - 1:06d}", f"step_{STEPS:06d}"]
    assert [p.name for p in ckpts.iterdir() if p.name.startswith(".")] == []


class _Weights(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))

    def save_pretrained(self, path: Path, safe_serialization: bool = True) -> None:
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path / "weights.pt")


class _Tokenizer:
    def save_pretrained(self, path: Path) -> None:
        (path / "tokenizer.json").write_text("{}")


def test_a_save_killed_half_way_leaves_the_last_checkpoint_whole(tmp_path, monkeypatch):
    """A save that dies after writing part of its files (as under ``kill -9``) is invisible to resume, and the
    next save clears its remains; replacing a step's checkpoint never leaves that step without one."""
    model, tok = _Weights(), _Tokenizer()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in (1, 2):
        save_checkpoint(tmp_path, step, model, tok, opt, {"history": []})

    real_save = torch.save

    def dies_on_rng(obj, path, *args, **kwargs):
        if Path(path).name == "rng.pt":
            raise RuntimeError("killed while saving")  # stands in for the process dying here
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dies_on_rng)
    with pytest.raises(RuntimeError, match="killed while saving"):
        save_checkpoint(tmp_path, 3, model, tok, opt, {"history": []})
    monkeypatch.undo()
    ckpts = tmp_path / "checkpoints"
    assert (ckpts / ".tmp_step_000003" / "optimizer.pt").is_file()  # half written
    assert latest_checkpoint(tmp_path).name == "step_000002"  # and not taken for a checkpoint

    save_checkpoint(tmp_path, 3, model, tok, opt, {"history": [], "note": "first"})
    save_checkpoint(tmp_path, 3, model, tok, opt, {"history": [], "note": "again"})
    assert read_state(latest_checkpoint(tmp_path))["note"] == "again"
    assert sorted(p.name for p in ckpts.iterdir()) == ["step_000002", "step_000003"]
