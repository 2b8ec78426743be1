"""The CPU demo: a tiny local model, SFT warm-up on gold demonstrations, then ResRL on function-calling tasks
(single-turn categories first, then one multi-turn domain), and a before/after table on the test split.

Sizes are chosen so the full demo fits in about ten minutes on two CPU cores; ``quick`` is a smoke version of
the same pipeline for tests. All of it is seeded.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from resrl.trainer.config import Config, validate_config

log = logging.getLogger("resrl.demo")

SINGLE_TURN = ["fc/simple", "fc/multiple", "fc/irrelevance"]
RL_SINGLE_TURN = ["fc/simple", "fc/irrelevance"]  # where a tiny warm start already succeeds now and then
MULTI_TURN = "fc/multi/smarthome"


class DemoSettings(BaseModel):
    """The knobs of one demo size."""

    model_config = ConfigDict(extra="forbid")

    hidden: int = 64
    layers: int = 2
    heads: int = 2
    sft_tasks: int = 40  # per single-turn environment
    sft_multi_tasks: int = 12  # multi-turn gold episodes are 5-10x longer
    sft_epochs: int = 4
    sft_lr: float = 5e-3
    single_steps: int = 14
    multi_steps: int = 2
    tasks_per_step: int = 8
    n: int = 8
    lr: float = 1e-3
    pos_weight: float = 1.0  # a tiny model learns mostly from its few successes; the paper's 0.1 suits large ones
    test_tasks: int = 8
    eval_k: int = 4
    max_new_tokens_per_turn: int = 64
    multi_max_turns: int = 3
    seed: int = 0


FULL = DemoSettings()
QUICK = DemoSettings(
    hidden=64,
    layers=2,
    heads=2,
    sft_tasks=6,
    sft_multi_tasks=2,
    sft_epochs=2,
    single_steps=2,
    multi_steps=1,
    tasks_per_step=2,
    n=4,
    test_tasks=2,
    eval_k=2,
    max_new_tokens_per_turn=24,
    multi_max_turns=2,
)


def stage_config(s: DemoSettings, model: Path, out: Path, *, envs: list[str], steps: int, multi: bool) -> Config:
    """The training config of one RL stage of the demo (the same shape ``resrl train`` reads)."""
    return validate_config(
        {
            "model": {"path": str(model)},
            "data": {
                "envs": envs,
                "train_tasks": 256,
                "test_tasks": s.test_tasks,
                "seed": s.seed,
                "env_kwargs": {MULTI_TURN: {"reward_mode": "fraction"}},
            },
            "rollout": {
                "n": s.n,
                "max_turns": s.multi_max_turns * 2 if multi else 1,
                "max_tokens": 1024 if multi else 256,
                "max_new_tokens_per_turn": s.max_new_tokens_per_turn,
                "temperature": 1.0,
            },
            "algo": {"scheme": "resrl", "rank": 16, "success_threshold": 1.0, "pos_weight": s.pos_weight},
            "optim": {
                "lr": s.lr,
                "mini_batch_size": s.tasks_per_step * s.n,
                "micro_batch_size": min(16, s.tasks_per_step * s.n),
            },
            "train": {
                "steps": steps,
                "tasks_per_step": s.tasks_per_step,
                "eval_every": 0,
                "eval_at_start": False,  # the demo evaluates the warm start itself, on every environment
                # Only groups with both outcomes train: with a weak warm start most groups are all-failure,
                # and pushing down every sampled token there flattens a tiny model's distribution.
                "filter_groups": True,
                "eval_k": s.eval_k,
                "out_dir": str(out),
                "seed": s.seed,
            },
        }
    )


def evaluate_model(s: DemoSettings, model: Path, out: Path) -> dict[str, Any]:
    """Avg@k and Pass@k of ``model`` on the test split of every demo environment (seeded)."""
    from resrl.trainer.loop import Trainer

    cfg = stage_config(s, model, out, envs=[*SINGLE_TURN, MULTI_TURN], steps=0, multi=True)
    cfg.train.plots = False
    cfg.train.tensorboard = False
    trainer = Trainer(cfg)
    try:
        return trainer.evaluate(0)
    finally:
        trainer.close()


def run_demo(out_dir: str | Path, *, quick: bool = False, model_path: str | None = None) -> dict[str, Any]:
    """Run the whole demo under ``out_dir``; returns the before/after metrics and the wall time."""
    from resrl.trainer.loop import Trainer, make_tasks, seed_everything
    from resrl.trainer.modeling import load_model
    from resrl.trainer.sft import sft_warmup

    s = QUICK if quick else FULL
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    seed_everything(s.seed, 0)
    if model_path is None:
        from resrl.models import build_tiny

        base = build_tiny(out / "tiny", hidden=s.hidden, layers=s.layers, heads=s.heads, seed=s.seed)
    else:
        base = Path(model_path)

    log.info("demo: SFT warm-up on gold demonstrations")
    cfg = stage_config(s, base, out / "warm", envs=SINGLE_TURN, steps=0, multi=False)
    model, tokenizer = load_model(cfg.model)
    tasks = make_tasks(SINGLE_TURN, "train", s.sft_tasks, s.seed + 1)
    tasks += make_tasks([MULTI_TURN], "train", s.sft_multi_tasks, s.seed + 1)
    sft_warmup(model, tokenizer, tasks, epochs=s.sft_epochs, batch_size=8, lr=s.sft_lr, seed=s.seed)
    warm = out / "warm" / "model"
    model.save_pretrained(warm)
    tokenizer.save_pretrained(warm)
    del model

    before = evaluate_model(s, warm, out / "eval_before")
    log.info("demo: ResRL on single-turn function calling")
    stage1 = stage_config(s, warm, out / "stage1_single", envs=RL_SINGLE_TURN, steps=s.single_steps, multi=False)
    trainer = Trainer(stage1)
    trainer.run()
    trainer.close()
    log.info("demo: ResRL on the multi-turn domain %s", MULTI_TURN)
    after_single = out / "stage1_single" / "checkpoints" / f"step_{s.single_steps:06d}" / "model"
    stage2 = stage_config(s, after_single, out / "stage2_multi", envs=[MULTI_TURN], steps=s.multi_steps, multi=True)
    trainer = Trainer(stage2)
    trainer.run()
    trainer.close()
    final = out / "stage2_multi" / "checkpoints" / f"step_{s.multi_steps:06d}" / "model"
    after = evaluate_model(s, final, out / "eval_after")
    result = {"before": before, "after": after, "wall_s": time.monotonic() - start, "final_model": str(final)}
    (out / "demo_result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


def print_table(result: dict[str, Any]) -> None:
    """The before/after table (rich)."""
    from rich.console import Console
    from rich.table import Table

    before, after = result["before"], result["after"]
    k = before["k"]
    table = Table(title=f"Test split, k={k} samples per task (T=1)")
    table.add_column("metric")
    table.add_column("warm start (SFT)", justify="right")
    table.add_column("after ResRL", justify="right")
    rows = [(f"Avg@{k}", "avg_at_k"), (f"Pass@{k}", "pass_at_k"), ("Pass@1", None)]
    for label, key in rows:
        b = before[key] if key else before["pass_curve"][0]
        a = after[key] if key else after["pass_curve"][0]
        table.add_row(label, f"{b:.3f}", f"{a:.3f}")
    for key in sorted(k_ for k_ in before if k_.startswith("avg_at_k/")):
        table.add_row(f"Avg@{k} {key.split('/', 1)[1]}", f"{before[key]:.3f}", f"{after.get(key, 0.0):.3f}")
    console = Console()
    console.print(table)
    console.print(f"wall time: {result['wall_s']:.0f} s")
