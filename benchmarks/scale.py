"""Scale-out ratios: learner step time with 1 vs 2 ranks, rollout throughput with 1 vs 2 inference servers.

Each section measures one side and prints its ratio; ``--sections`` picks which run (all by default).

- ``learner`` (:func:`learner_section`): the same training config (``--tasks`` groups of ``--n`` per step, so the
  same global batch) run under ``python -m torch.distributed.run --standalone`` with 1 rank and with 2 (DDP,
  gloo on CPU, ``--threads`` torch threads per rank). A step is the trainer's whole ``train_step``: each rank
  samples its share of the groups with the ``hf`` backend, scores and trains its rows, and the ranks
  all-reduce gradients. Times are medians over ``--steps`` steps after ``--warmup`` untimed ones; the ratio is
  1-rank / 2-rank step time (2.0 would be linear scaling). The model is the tiny Qwen2-shaped one of
  ``benchmarks/train_step.py`` (``--hidden``/``--layers``/``--heads``), briefly fine-tuned on gold episodes of
  ``--env`` so groups have both outcomes.

    python benchmarks/scale.py [--sections learner] [--tasks 8] [--n 4] [--steps 3] [--warmup 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))  # benchmarks/train_step.py: the shared tiny-model preparation

log = logging.getLogger("resrl.bench.scale")


# -- learner: 1 vs 2 ranks --------------------------------------------------------------------------------------
def learner_config(model_dir: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The training config both learner runs share (GRPO on ``--env``, one optimizer step per batch)."""
    batch = args.tasks * args.n
    return {
        "model": {"path": str(model_dir)},
        "data": {"envs": [args.env], "train_tasks": args.tasks, "test_tasks": 1, "seed": args.seed},
        "rollout": {
            "backend": "hf",
            "n": args.n,
            "max_turns": 1,
            "max_tokens": args.max_new_tokens,
            "max_new_tokens_per_turn": args.max_new_tokens,
        },
        "algo": {"scheme": "grpo"},
        "optim": {"lr": 1e-4, "mini_batch_size": batch, "micro_batch_size": args.micro_batch},
        "train": {
            "steps": args.warmup + args.steps,
            "tasks_per_step": args.tasks,
            "out_dir": str(out),
            "seed": args.seed,
            "parallel": "ddp",
            "eval_at_start": False,
            "plots": False,
            "tensorboard": False,
        },
    }


def learner_worker(config: Path, result: Path, warmup: int, threads: int) -> None:
    """One rank of a timed learner run (under torchrun); rank 0 writes the step times to ``result``."""
    import torch

    from resrl.trainer import distributed
    from resrl.trainer.config import validate_config
    from resrl.trainer.loop import Trainer

    torch.set_num_threads(threads)
    cfg = validate_config(json.loads(config.read_text(encoding="utf-8")))
    trainer = Trainer(cfg)
    times = []
    try:
        for step in range(1, cfg.train.steps + 1):
            distributed.barrier()
            start = time.perf_counter()
            metrics = trainer.train_step(step)
            distributed.barrier()
            if step > warmup:
                times.append({"step_s": time.perf_counter() - start, "tokens": metrics.get("policy_tokens_mean", 0)})
    finally:
        trainer.close()
    if distributed.is_main():
        result.write_text(json.dumps({"ranks": distributed.world_size(), "steps": times}), encoding="utf-8")
    distributed.shutdown()


def _run_learner(model_dir: Path, work: Path, ranks: int, args: argparse.Namespace) -> dict[str, Any]:
    out = work / f"ranks{ranks}"
    config, result = work / f"ranks{ranks}.json", work / f"ranks{ranks}.result.json"
    config.write_text(json.dumps(learner_config(model_dir, out, args)), encoding="utf-8")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}", __file__]
    cmd += ["learner-worker", str(config), str(result), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    log.info("learner: %d rank(s): %s", ranks, " ".join(cmd))
    subprocess.run(cmd, env=env, check=True)
    return json.loads(result.read_text(encoding="utf-8"))


def learner_section(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Median step time with 1 and with 2 learner ranks at the same global batch, and their ratio."""
    from train_step import prepare_model

    model_dir = prepare_model(work / "model", args)
    runs = {ranks: _run_learner(model_dir, work, ranks, args) for ranks in (1, 2)}
    medians = {ranks: statistics.median(s["step_s"] for s in run["steps"]) for ranks, run in runs.items()}
    out = {
        "global_batch": args.tasks * args.n,
        "threads_per_rank": args.threads,
        "step_s_1_rank": round(medians[1], 3),
        "step_s_2_ranks": round(medians[2], 3),
        "ratio_1_over_2": round(medians[1] / medians[2], 3),
    }
    print(
        f"learner: global batch {out['global_batch']} ({args.tasks} groups x {args.n}), {args.threads} thread(s) "
        f"per rank: 1 rank {out['step_s_1_rank']} s/step, 2 ranks {out['step_s_2_ranks']} s/step, "
        f"ratio 1/2 = {out['ratio_1_over_2']}"
    )
    return out


# Each section takes (args, a scratch folder) and returns its results; the rollout one (1 vs 2 servers,
# ``rollout_section``) registers here as "rollout", with its own options in main's parser.
SECTIONS: dict[str, Callable[[argparse.Namespace, Path], dict[str, Any]]] = {"learner": learner_section}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["learner-worker"]:
        worker = argparse.ArgumentParser()
        worker.add_argument("config", type=Path)
        worker.add_argument("result", type=Path)
        worker.add_argument("--warmup", type=int, default=1)
        worker.add_argument("--threads", type=int, default=1)
        w = worker.parse_args(argv[1:])
        learner_worker(w.config, w.result, w.warmup, w.threads)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", choices=sorted(SECTIONS), default=sorted(SECTIONS))
    parser.add_argument("--env", default="fc/irrelevance")
    parser.add_argument("--tasks", type=int, default=8, help="groups per step (the global batch is tasks x n)")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per learner rank")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--sft-tasks", type=int, default=32)
    parser.add_argument("--sft-epochs", type=int, default=3)
    parser.add_argument("--sft-lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="resrl-scale-") as tmp:
        results = {name: SECTIONS[name](args, Path(tmp)) for name in args.sections}
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
