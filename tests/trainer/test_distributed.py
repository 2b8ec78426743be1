"""Learners under torchrun on CPU (gloo): two ranks train what one process trains, resume from sharded
checkpoints (into FSDP2), and LoRA runs.

Each run is real: ``python -m torch.distributed.run --standalone`` starts the ranks of ``ddp_worker.py`` on
loopback (the 1-rank run is this process, one thread, no process group); every rank samples its share of the
step's groups with the ``hf`` backend and the tiny model, and the ranks all-reduce gradients through DDP.

Tolerance of the weight comparison: the two runs add the same float32 per-token gradient terms in a different
order (two per-rank partial sums joined by the all-reduce, against one sequential accumulation over
micro-batches). That moves a gradient by a few float32 ulps of its terms, which is a large relative change
only where the terms nearly cancel; AdamW's first steps are about ``lr * g / |g|`` per weight, so such a
weight's step moves by at most a small fraction of ``lr`` = 1e-3 (measured: 2.1e-6 after two steps).
``atol=1e-5`` is 1% of one optimizer step: a rank's rows left out, a group counted twice or per-rank instead of
all-ranks token counts move weights by a whole step. Because Adam's step barely depends on the gradient's
scale, the scale itself (the world-size factor against DDP's averaging) is checked on the gradient norm,
which both runs log before clipping: equal to 1e-4 relative (measured: 3e-7).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from resrl.cli import build_parser
from resrl.cli.train import torchrun_command
from resrl.trainer.config import validate_config
from resrl.trainer.distributed import RowLayout, resolve_parallel, shard_bounds
from resrl.trainer.logs import read_records
from resrl.trainer.loop import Trainer
from tests.trainer.conftest import base_config

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = Path(__file__).parents[2]


def _launch(cfg: dict, nproc: int, *, resume: bool = False) -> None:
    """Run ``cfg`` on ``nproc`` local ranks under torchrun; fail with the ranks' output if it fails."""
    out = Path(cfg["train"]["out_dir"])
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.parent / f"{out.name}-{'resume' if resume else 'start'}.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    cmd += [str(WORKER), str(path), *(["--resume"] if resume else [])]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"torchrun exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"


def _config(model_dir: Path, out: Path, **sections) -> dict:
    # 4 groups of 4 per step: each rank holds 2 groups; mini-batches of 6 rows cut across ranks unevenly (a rank
    # runs empty micro-batches to keep step), so the global permutation, counts and padding are all exercised.
    raw = base_config(
        model_dir,
        out,
        rollout={"n": 4, "temperature": 3.0},  # hot enough that groups of the warm model mix outcomes
        optim={"mini_batch_size": 6, "micro_batch_size": 2},
        train={"steps": 2, "tasks_per_step": 4, "eval_every": 2, "save_every": 1, "tensorboard": False},
    )
    for name, values in sections.items():
        raw[name].update(values)
    return raw


def _weights(out: Path, step: int, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    return load_file(out / "checkpoints" / f"step_{step:06d}" / "model" / name)


@pytest.fixture(scope="module")
def runs(warm_model, tmp_path_factory) -> dict[str, Path]:
    """The same config trained on 2 ranks (torchrun) and in this process."""
    root = tmp_path_factory.mktemp("ddp")
    out = {"two": root / "two", "one": root / "one"}
    _launch(_config(warm_model, out["two"]), 2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank runs
    trainer = Trainer(validate_config(_config(warm_model, out["one"])))
    try:
        trainer.run()
    finally:
        trainer.close()
        torch.set_num_threads(threads)
    return out


def test_two_ranks_train_what_one_process_trains(runs):
    two, one = (
        read_records(runs["two"] / "metrics.jsonl", "train"),
        read_records(runs["one"] / "metrics.jsonl", "train"),
    )
    assert [r["step"] for r in two] == [r["step"] for r in one] == [1, 2]
    for a, b in zip(two, one, strict=True):
        # the same episodes: per-(step, task, sample) seeds, whatever rank samples them
        for key in ("episodes", "reward_mean", "success_rate", "policy_tokens_mean", "distinct_2"):
            assert a[key] == b[key], (a["step"], key)
        assert a["algo/resrl/groups_used"] == b["algo/resrl/groups_used"]
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    assert any(r["algo/resrl/groups_used"] > 0 for r in one), "no group had both outcomes: nothing was trained"
    evals_two = read_records(runs["two"] / "metrics.jsonl", "eval")
    evals_one = read_records(runs["one"] / "metrics.jsonl", "eval")
    assert [(r["step"], r["avg_at_k"]) for r in evals_two] == [(r["step"], r["avg_at_k"]) for r in evals_one]
    start, a, b = _weights(runs["one"], 1), _weights(runs["two"], 2), _weights(runs["one"], 2)
    assert any(not torch.equal(start[k], b[k]) for k in b), "step 2 changed no weight"
    worst = max(float((a[k] - b[k]).abs().max()) for k in b)
    assert worst <= 1e-5, f"2-rank and 1-rank weights differ by {worst}"
    ckpt = runs["two"] / "checkpoints" / "step_000002"
    assert (ckpt / "dcp" / ".metadata").is_file() and (ckpt / "rng_rank1.pt").is_file()
    assert not (ckpt / "optimizer.pt").exists(), "under torchrun the optimizer state is in dcp/"
    assert (runs["one"] / "checkpoints" / "step_000002" / "optimizer.pt").is_file()
    assert not (runs["one"] / "checkpoints" / "step_000002" / "dcp").exists(), "one process keeps its format"


def test_resume_under_torchrun_continues_the_straight_run(runs, warm_model, tmp_path):
    # The 2-rank DDP run as if killed after saving step 1, resumed on 2 ranks from its dcp/ state under FSDP2:
    # the replicated model and optimizer state are resharded on load, and step 2 trains with sharded weights.
    split = tmp_path / "split"
    shutil.copytree(runs["two"], split)
    shutil.rmtree(split / "checkpoints" / "step_000002")
    _launch(_config(warm_model, split, train={"parallel": "fsdp"}), 2, resume=True)
    a, b = read_records(runs["two"] / "metrics.jsonl"), read_records(split / "metrics.jsonl")
    assert [(r["kind"], r["step"]) for r in b] == [(r["kind"], r["step"]) for r in a]
    for ra, rb in zip(a, b, strict=True):
        assert ra.get("reward_mean") == rb.get("reward_mean"), (ra["kind"], ra["step"])
    wa, wb = _weights(runs["two"], 2), _weights(split, 2)  # the FSDP export also names the tied lm_head
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)  # same tolerance as across rank counts


def test_lora_trains_on_two_ranks(warm_model, tmp_path):
    out = tmp_path / "lora"
    _launch(
        _config(
            warm_model,
            out,
            model={"lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}},
            train={"steps": 1},
        ),
        2,
    )
    adapter = _weights(out, 1, "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)
    assert any(float(v.abs().max()) > 0 for k, v in adapter.items() if "lora_B" in k), "the adapters did not train"
    assert (out / "checkpoints" / "step_000001" / "dcp" / ".metadata").is_file()
    assert [r["step"] for r in read_records(out / "metrics.jsonl", "train")] == [1]


def test_shares_and_layout_match_the_single_process_order():
    assert [shard_bounds(10, r, 3) for r in range(3)] == [(0, 4), (4, 7), (7, 10)]
    assert [shard_bounds(1, r, 2) for r in range(2)] == [(0, 1), (1, 1)]
    layout = RowLayout(tokens=[3, 1, 4, 1, 5], offsets=[0, 2, 5], rank=1)
    rows = torch.tensor([4, 0, 2, 1])
    assert layout.local(rows).tolist() == [2, 0]  # rank 1's rows 4 and 2, in the mini-batch's order
    assert layout.token_count(rows) == 5 + 3 + 4 + 1
    assert layout.micro_count(rows, 1) == 2 and layout.micro_count(None, 2) == 2
    assert resolve_parallel("auto") == resolve_parallel("ddp") == "none"  # one process: no wrapper
    with pytest.raises(ValueError, match=r"train\.parallel"):
        resolve_parallel("zero3")


def test_nproc_reruns_the_command_under_torchrun():
    args = build_parser().parse_args(["train", "run.yaml", "train.steps=3", "--nproc", "2", "--resume"])
    cmd = torchrun_command(args)
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert cmd[5:] == ["-m", "resrl", "train", "run.yaml", "train.steps=3", "--resume"]
