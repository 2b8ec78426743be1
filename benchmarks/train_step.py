"""One GRPO training step, resrl against TRL's ``GRPOTrainer``, on the same tiny model, prompts and reward.

Both sides start from the same local checkpoint (a tiny Qwen2-architecture model from ``resrl.models``, briefly
fine-tuned on gold episodes of ``--env`` so its completions end and some of them succeed: the default
``fc/irrelevance`` gives groups with both outcomes, so the advantages and the update are not zero), train on the same
``--tasks`` opening prompts of ``--env`` with ``--n`` samples each, at most ``--max-new-tokens`` per completion,
temperature 1, float32, no KL term, no gradient checkpointing, one optimizer step per batch (AdamW, same
learning rate, gradient clip 1.0) and one forward/backward over the whole batch. The reward is the env's own
checker: TRL's reward function replays each completion through ``resrl.make(env).step``, exactly what our
collector does.

What one step includes, on each side:

- **resrl** (``Trainer.train_step``, ``algo.scheme=grpo``, ``rollout.backend=hf``): *generate* = the collector
  (templating, continuous-batched sampling with the trainer's own module, env steps that score each
  completion); *update* = collation, a no-grad pass for the old log-probs and token entropy, group advantages,
  the PPO-clip loss, backward, clip and the optimizer step, and the step's metrics and log line.
- **TRL** (``GRPOTrainer.train``, default transformers ``generate``): *generate* =
  ``_generate_and_score_completions`` (tokenising, ``model.generate``, the reward function, group
  advantages); *update* = the rest of the step (TRL skips the old log-prob pass when it trains on-policy once per
  batch, so it does less work here than we do), loss, backward, clip and the optimizer step.

Sampling makes completion lengths differ from run to run, so the table shows the generated tokens per step of
each side beside its time. Each ``--rounds`` builds both trainers afresh from the checkpoint, in alternating
order, runs ``--warmup`` untimed steps and then ``--steps`` timed ones; times are medians over every timed
step, and the ratio is ours / TRL's median step time (target: at most 0.8). Both run in this process, after
glibc malloc is told to keep freed memory (:func:`resrl.rollout.hf.retain_freed_memory`, which our ``hf``
backend does anyway), so neither side pays for page faults the other avoids.

    python benchmarks/train_step.py [--tasks 8] [--n 8] [--max-new-tokens 64] [--rounds 2] [--steps 3] [--threads 1]
        [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("resrl.bench.train_step")


def prepare_model(out: Path, args: argparse.Namespace) -> Path:
    """A tiny model (``--hidden``/``--layers``/``--heads``) fine-tuned on ``--sft-tasks`` gold episodes."""
    from resrl.models import build_tiny
    from resrl.trainer.config import ModelConfig
    from resrl.trainer.loop import make_tasks
    from resrl.trainer.modeling import load_model
    from resrl.trainer.sft import sft_warmup

    build_tiny(out, hidden=args.hidden, layers=args.layers, heads=args.heads, seed=args.seed)
    if args.sft_tasks:
        model, tokenizer = load_model(ModelConfig(path=str(out)))
        tasks = make_tasks([args.env], "train", args.sft_tasks, args.seed + 1)
        losses = sft_warmup(model, tokenizer, tasks, epochs=args.sft_epochs, lr=args.sft_lr, seed=args.seed)
        log.info("SFT warm-up: loss %.3f → %.3f", losses[0], losses[-1])
        model.save_pretrained(out)
    return out


def ours_config(model_dir: Path, out: Path, args: argparse.Namespace):
    """The resrl training config of the comparison (GRPO, one optimizer step over the whole batch)."""
    from resrl.trainer.config import validate_config

    batch = args.tasks * args.n
    return validate_config(
        {
            "model": {"path": str(model_dir)},
            "data": {"envs": [args.env], "train_tasks": args.tasks, "test_tasks": 1, "seed": args.seed},
            "rollout": {
                "backend": "hf",
                "n": args.n,
                "max_turns": 1,
                "max_tokens": args.max_new_tokens,
                "max_new_tokens_per_turn": args.max_new_tokens,
                "temperature": 1.0,
            },
            "algo": {"scheme": "grpo", "estimator": "grpo", "success_threshold": 1.0},
            "optim": {"lr": args.lr, "grad_clip": 1.0, "mini_batch_size": batch, "micro_batch_size": batch},
            "train": {
                "steps": args.warmup + args.steps,
                "tasks_per_step": args.tasks,
                "out_dir": str(out),
                "seed": args.seed,
                "plots": False,
                "tensorboard": False,
            },
        }
    )


def run_ours(model_dir: Path, out: Path, args: argparse.Namespace) -> list[dict[str, float]]:
    """``--warmup`` + ``--steps`` resrl GRPO steps; the timings of the timed ones."""
    from resrl.trainer.loop import Trainer

    trainer = Trainer(ours_config(model_dir, out, args))
    collect = trainer.engine.collect
    spent: dict[str, Any] = {}

    def timed_collect(*a: Any, **kw: Any):
        t0 = time.perf_counter()
        trajs = collect(*a, **kw)
        spent["generate_s"] = time.perf_counter() - t0
        spent["tokens"] = sum(t.n_policy_tokens for t in trajs)
        spent["reward"] = sum(t.reward for t in trajs) / max(len(trajs), 1)
        return trajs

    trainer.engine.collect = timed_collect  # type: ignore[method-assign]
    steps = []
    try:
        for step in range(1, args.warmup + args.steps + 1):
            t0 = time.perf_counter()
            trainer.train_step(step)
            total = time.perf_counter() - t0
            if step > args.warmup:
                steps.append({"step_s": total, "update_s": total - spent["generate_s"], **spent})
    finally:
        trainer.close()
    return steps


def trl_dataset(args: argparse.Namespace, tokenizer: Any):
    """The same opening prompts our trainer samples, rendered by our chat codec, with each task as a column."""
    from datasets import Dataset

    import resrl
    from resrl.rollout.chat import ChatCodec
    from resrl.trainer.loop import make_tasks

    codec = ChatCodec(tokenizer)
    rows = []
    for task in make_tasks([args.env], "train", args.tasks, args.seed):
        env = resrl.make(task.env_id)
        observation, info = env.reset(options={"task": task})
        env.close()
        text = codec.render_text(list(observation), list(info.get("tools") or task.tools), True)
        rows.append({"prompt": text, "task": task.model_dump_json()})
    return Dataset.from_list(rows)


def run_trl(model_dir: Path, out: Path, args: argparse.Namespace) -> list[dict[str, float]]:
    """``--warmup`` + ``--steps`` TRL GRPO steps; the timings of the timed ones."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    import resrl
    from resrl.core.task import Task
    from resrl.rollout.chat import ChatCodec

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), padding_side="left")
    codec = ChatCodec(tokenizer)
    spent: dict[str, Any] = {}

    def env_reward(completions: list[str], completion_ids: list[list[int]], task: list[str], **_: Any):
        """The env's checker on each completion, decoded as our collector decodes a turn."""
        rewards = []
        for ids, raw in zip(completion_ids, task, strict=True):
            t = Task.model_validate_json(raw)
            env = resrl.make(t.env_id)
            env.reset(options={"task": t})
            rewards.append(float(env.step(codec.decode_turn(list(ids)))[1]))
            env.close()
        spent["tokens"] = sum(len(ids) for ids in completion_ids)
        spent["reward"] = sum(rewards) / max(len(rewards), 1)
        return rewards

    config = GRPOConfig(
        output_dir=str(out),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        per_device_train_batch_size=args.tasks * args.n,
        gradient_accumulation_steps=1,
        num_generations=args.n,
        max_completion_length=args.max_new_tokens,
        temperature=1.0,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        max_grad_norm=1.0,
        beta=0.0,
        epsilon=0.2,
        epsilon_high=0.28,
        loss_type="dapo",  # token-mean over the batch, our default aggregation
        max_steps=args.warmup + args.steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=args.seed,
        dataloader_num_workers=0,
    )
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=env_reward,
        args=config,
        train_dataset=trl_dataset(args, tokenizer),
        processing_class=tokenizer,
    )
    generate = trainer._generate_and_score_completions

    def timed_generate(*a: Any, **kw: Any):
        t0 = time.perf_counter()
        result = generate(*a, **kw)
        spent["generate_s"] = time.perf_counter() - t0
        return result

    trainer._generate_and_score_completions = timed_generate  # type: ignore[method-assign]
    steps: list[dict[str, float]] = []

    class StepClock(TrainerCallback):
        """Wall time from the start of each optimizer step to its end (generation happens inside)."""

        def on_step_begin(self, _args, state, _control, **_kw):
            spent["t0"] = time.perf_counter()

        def on_step_end(self, _args, state, _control, **_kw):
            total = time.perf_counter() - spent["t0"]
            if state.global_step > args.warmup:
                steps.append(
                    {
                        "step_s": total,
                        "generate_s": spent["generate_s"],
                        "update_s": total - spent["generate_s"],
                        "tokens": spent["tokens"],
                        "reward": spent["reward"],
                    }
                )

    trainer.add_callback(StepClock())
    trainer.train()
    return steps


def summarize(name: str, steps: list[dict[str, float]]) -> dict[str, float]:
    """Medians over the timed steps of one side."""
    return {
        "side": name,
        "steps": len(steps),
        **{key: statistics.median(s[key] for s in steps) for key in ("step_s", "generate_s", "update_s", "tokens")},
        "reward_mean": statistics.mean(s["reward"] for s in steps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint directory (default: build and fine-tune a tiny one)")
    parser.add_argument("--env", default="fc/irrelevance", help="single-turn env whose checker is the reward")
    parser.add_argument("--tasks", type=int, default=8, help="prompts per step")
    parser.add_argument("--n", type=int, default=8, help="group size (completions per prompt)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="max completion length")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--hidden", type=int, default=128, help="width of the built model")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--sft-tasks", type=int, default=48, help="gold episodes for the warm-up (0: none)")
    parser.add_argument("--sft-epochs", type=int, default=3)
    parser.add_argument("--sft-lr", type=float, default=5e-3)
    parser.add_argument("--rounds", type=int, default=2, help="fresh trainer pairs, in alternating order")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per trainer")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per trainer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads for both sides (default: torch's)")
    parser.add_argument("--out", help="folder for train_step.json (default: a temporary folder)")
    args = parser.parse_args()
    for name in ("tasks", "n", "rounds", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.n < 2:
        parser.error("--n must be at least 2 (a group of one has no advantage)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("resrl.rollout").setLevel(logging.WARNING)

    import torch

    from resrl.rollout.hf import retain_freed_memory

    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    retain_freed_memory()
    workdir = Path(tempfile.mkdtemp(prefix="resrl-train-step-"))
    out = Path(args.out) if args.out else workdir
    out.mkdir(parents=True, exist_ok=True)
    model_dir = Path(args.model) if args.model else prepare_model(workdir / "tiny", args)
    sides = {"resrl": run_ours, "trl": run_trl}
    timed: dict[str, list[dict[str, float]]] = {"resrl": [], "trl": []}
    round_ratios = []
    for r in range(args.rounds):
        order = ["resrl", "trl"] if r % 2 == 0 else ["trl", "resrl"]
        this_round: dict[str, list[dict[str, float]]] = {}
        for name in order:
            log.info("round %d/%d: %s", r + 1, args.rounds, name)
            this_round[name] = sides[name](model_dir, workdir / f"{name}_{r}", args)
            timed[name] += this_round[name]
        round_ratios.append(
            statistics.median(s["step_s"] for s in this_round["resrl"])
            / statistics.median(s["step_s"] for s in this_round["trl"])
        )
    ours, trl = summarize("resrl", timed["resrl"]), summarize("trl", timed["trl"])
    import trl as trl_pkg

    result = {
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "torch_threads": torch.get_num_threads(),
        "trl_version": trl_pkg.__version__,
        "resrl": ours,
        "trl": trl,
        "ratio": ours["step_s"] / trl["step_s"],
        "round_ratios": round_ratios,
        "target": 0.8,
    }
    (out / "train_step.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"{'side':6} {'steps':>5} {'step s':>8} {'generate s':>11} {'update s':>9} {'tokens/step':>12} {'reward':>7}")
    for s in (ours, trl):
        print(
            f"{s['side']:6} {s['steps']:5d} {s['step_s']:8.2f} {s['generate_s']:11.2f} {s['update_s']:9.2f} "
            f"{s['tokens']:12.0f} {s['reward_mean']:7.3f}"
        )
    print(
        f"ratio ours/TRL (median step time): {result['ratio']:.2f}  per round: "
        + ", ".join(f"{x:.2f}" for x in round_ratios)
        + f"  (target <= {result['target']})  TRL {result['trl_version']}"
    )
    print(f"wrote {out / 'train_step.json'}")


if __name__ == "__main__":
    main()
