"""The CPU demo: a tiny local model, SFT warm-up on gold demonstrations, then ResRL on function-calling tasks
(single-turn categories first, then one multi-turn domain), and a before/after table.

What a from-scratch model of a few hundred thousand parameters can learn in minutes sets the sizes:

- The tokenizer's BPE is also trained on text of the train tasks (tool schemas, requests, calls), which makes
  the prompts, most of the compute, about a third shorter than the generic tokenizer's.
- Held-out tasks are the train split's templates with seeds no training stage draws (and no request a training
  task has): the test split's unseen phrasings and entity pools are out of reach of a model that has only
  ever seen the train ones, so it is printed beside, not used for the targets.
- Evaluation samples ``eval_k`` episodes of ``eval_tasks`` tasks per environment at T=1.

Everything is seeded; ``quick`` is a smoke version of the same pipeline for tests.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from resrl.core.task import Task
from resrl.trainer.config import Config, validate_config

log = logging.getLogger("resrl.demo")

SINGLE_TURN = ["fc/simple", "fc/multiple", "fc/irrelevance"]
MULTI_TURN = "fc/multi/smarthome"
DEMO_ENVS = [*SINGLE_TURN, MULTI_TURN]
REQUEST_ENVS = ["fc/simple", "fc/multiple"]  # request-only SFT: the envs whose reply reads values from the request
RL_TASKS = 256  # per environment: the pool the RL stages draw from (data.train_tasks)
HELDOUT_SEED = 1_000  # the training stages draw train tasks with seeds seed to seed + 3
HELDOUT_LABEL = "held-out: train templates, unseen seeds"
TEST_LABEL = "test split: unseen templates and entities"


class DemoSettings(BaseModel):
    """The knobs of one demo size."""

    model_config = ConfigDict(extra="forbid")

    template: str = "chatml"  # the tiny model's chat template (resrl.models.templates)
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    vocab_size: int = 2048
    pretokenize: str = "copy"  # a value has the same tokens in the request and in the call (build_tokenizer)
    copy_init: bool = True  # attention starts as a copier (resrl.models.build_model)
    name_tools: bool = False  # gold replies open with the tools they need (sft.gold_conversation; docs/results.md)
    tokenizer_tasks: int = 100  # per environment: train tasks whose text the BPE is trained on
    request_tasks: int = 6400  # per tool-calling environment: request-only SFT demos (sft_warmup view="request")
    request_batch_size: int = 16
    sft_tasks: int = 300  # per single-turn environment
    sft_multi_tasks: int = 60  # multi-turn gold episodes are 3-4x longer
    sft_epochs: int = 1
    sft_lr: float = 3e-3
    sft_batch_size: int = 8
    single_steps: int = 14
    multi_steps: int = 2
    # The multi-turn stage trains on the fraction of user turns done right; a rollout that gets at least this
    # share is a positive there (at 1.0 a group whose best rollout misses one turn would carry no signal).
    # Evaluation still counts only whole episodes done right.
    multi_threshold: float = 0.5
    tasks_per_step: int = 8
    n: int = 8
    lr: float = 1e-3
    pos_weight: float = 0.1  # the paper's default
    temperature: float = 1.0
    eval_tasks: int = 32  # per environment, for the held-out set and for the test split
    eval_k: int = 4
    max_new_tokens_per_turn: int = 64
    multi_max_turns: int = 5  # user turns a multi-turn episode may need (each takes a call turn and a reply)
    max_tokens: int = 3072  # prompt + all turns of a multi-turn episode
    threads: int = 1  # torch threads: on a shared 2-core machine one thread beats two contended ones
    seed: int = 0


FULL = DemoSettings()
QUICK = DemoSettings(
    hidden=64,
    layers=2,
    heads=2,
    vocab_size=512,
    tokenizer_tasks=4,
    request_tasks=8,
    request_batch_size=4,
    sft_tasks=6,
    sft_multi_tasks=2,
    sft_epochs=2,
    single_steps=2,
    multi_steps=1,
    tasks_per_step=2,
    n=4,
    eval_tasks=2,
    eval_k=2,
    max_new_tokens_per_turn=24,
    multi_max_turns=1,
    max_tokens=2048,
)


def stage_config(
    s: DemoSettings, model: Path, out: Path, *, envs: list[str], steps: int, multi: bool, threshold: float = 1.0
) -> Config:
    """The training config of one RL stage of the demo (the same shape ``resrl train`` reads); ``threshold``
    is the reward a positive rollout needs (``algo.success_threshold``)."""
    return validate_config(
        {
            "model": {"path": str(model)},
            "data": {
                "envs": envs,
                "train_tasks": RL_TASKS,
                # A stage's own closing evaluation only feeds its plots: the demo scores every model itself.
                "test_tasks": s.eval_tasks if steps == 0 else 2,
                "seed": s.seed,
                "env_kwargs": {MULTI_TURN: {"reward_mode": "fraction"}},
            },
            "rollout": {
                "n": s.n,
                "max_turns": s.multi_max_turns * 2 if multi else 1,
                "max_tokens": s.max_tokens if multi else 1024,
                "max_new_tokens_per_turn": s.max_new_tokens_per_turn,
                "temperature": s.temperature,
            },
            "algo": {"scheme": "resrl", "rank": 16, "success_threshold": threshold, "pos_weight": s.pos_weight},
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
                "filter_groups": False,  # the paper's default: one-outcome groups simply carry no advantage
                "eval_k": s.eval_k,
                "eval_temperature": s.temperature,
                "out_dir": str(out),
                "seed": s.seed,
            },
        }
    )


def _prompt_key(task: Task) -> str:
    """What makes two tasks the same request: the user turns (all of them, for a multi-turn task)."""
    turns = task.metadata.get("user_turns") or [m.get("content") for m in task.messages if m.get("role") == "user"]
    return json.dumps(turns)


def heldout_tasks(env_ids: list[str], n: int, seen: list[Task], seed: int = HELDOUT_SEED) -> list[Task]:
    """``n`` train-template tasks per environment from an unseen seed, none with a request in ``seen``."""
    from resrl.trainer.loop import make_tasks

    taken = {_prompt_key(t) for t in seen}
    out: list[Task] = []
    for env_id in env_ids:
        fresh = [t for t in make_tasks([env_id], "train", 2 * n + 8, seed) if _prompt_key(t) not in taken]
        if len(fresh) < n:
            raise ValueError(f"{env_id}: only {len(fresh)} held-out tasks unlike every training task, not {n}")
        out += fresh[:n]
    return out


def tokenizer_texts(tasks: list[Task], *, name_tools: bool = False) -> list[str]:
    """Text the demo's BPE is trained on: tool schemas, requests, gold replies and tool results of ``tasks``."""
    from resrl.trainer.sft import gold_conversation

    texts = []
    for task in tasks:
        messages, _ = gold_conversation(task, name_tools=name_tools)
        texts.append(json.dumps(task.tools))
        texts += [m["content"] for m in messages if m.get("content")]
    return texts


def evaluate_model(s: DemoSettings, model: Path, out: Path, task_sets: dict[str, list[Task]]) -> dict[str, Any]:
    """Avg@k and Pass@k of ``model`` on each named set of tasks (seeded: the same noise for every model)."""
    from resrl.trainer.loop import Trainer

    cfg = stage_config(s, model, out, envs=DEMO_ENVS, steps=0, multi=True)
    cfg.train.plots = False
    cfg.train.tensorboard = False
    trainer = Trainer(cfg)
    try:
        results = {}
        for name, tasks in task_sets.items():
            trainer.test_tasks = tasks
            results[name] = trainer.evaluate(0)
        return results
    finally:
        trainer.close()


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def training_tasks(s: DemoSettings) -> dict[str, list[Task]]:
    """Every task a training stage of the demo draws: the request-only SFT demos, the gold SFT episodes and
    the pool the RL stages sample from (``data.seed``); held-out tasks must avoid all of them."""
    from resrl.trainer.loop import make_tasks

    sft = make_tasks(SINGLE_TURN, "train", s.sft_tasks, s.seed + 1)
    sft += make_tasks([MULTI_TURN], "train", s.sft_multi_tasks, s.seed + 1)
    return {
        "request": make_tasks(REQUEST_ENVS, "train", s.request_tasks, s.seed + 3),
        "sft": sft,
        "rl": make_tasks(DEMO_ENVS, "train", RL_TASKS, s.seed),
    }


def build_base(s: DemoSettings, out: Path) -> Path:
    """The demo's tokenizer (BPE trained partly on train-task text) and its randomly initialised tiny model."""
    from resrl.models import build_tiny
    from resrl.trainer.loop import make_tasks

    texts = tokenizer_texts(make_tasks(DEMO_ENVS, "train", s.tokenizer_tasks, s.seed + 2), name_tools=s.name_tools)
    return build_tiny(
        out,
        template=s.template,
        vocab_size=s.vocab_size,
        hidden=s.hidden,
        layers=s.layers,
        heads=s.heads,
        seed=s.seed,
        texts=texts,
        pretokenize=s.pretokenize,
        copy_init=s.copy_init,
    )


def warm_start(s: DemoSettings, base: Path, out: Path, tasks: dict[str, list[Task]]) -> Path:
    """SFT of ``base`` on the demo's demonstrations (``tasks`` from :func:`training_tasks`); the model is
    saved to ``out/model``, whose path is returned. The demo and ``benchmarks/learning.py`` share it."""
    from resrl.trainer.modeling import load_model
    from resrl.trainer.sft import sft_warmup

    cfg = stage_config(s, base, out, envs=SINGLE_TURN, steps=0, multi=False)
    model, tokenizer = load_model(cfg.model)
    # First the short request -> call demos (most of the steps, at a sixth of the tokens each), then the
    # whole prompts: values are read from the request, the tool list only chooses among tools.
    sft_warmup(
        model,
        tokenizer,
        tasks["request"],
        batch_size=s.request_batch_size,
        lr=s.sft_lr,
        seed=s.seed,
        schedule="cosine",
        view="request",
        name_tools=s.name_tools,
    )
    sft_warmup(
        model,
        tokenizer,
        tasks["sft"],
        epochs=s.sft_epochs,
        batch_size=s.sft_batch_size,
        lr=s.sft_lr,
        seed=s.seed,
        schedule="cosine",
        by_length=True,
        name_tools=s.name_tools,
    )
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    return out / "model"


def train_stage(cfg: Config) -> Path:
    """Train one RL stage; returns its last checkpoint's model directory."""
    from resrl.trainer.checkpoint import latest_checkpoint
    from resrl.trainer.loop import Trainer

    trainer = Trainer(cfg)
    try:
        trainer.run()
    finally:
        trainer.close()
    last = latest_checkpoint(cfg.train.out_dir)
    if last is None:
        raise RuntimeError(f"the stage in {cfg.train.out_dir} wrote no checkpoint")
    return last / "model"


def run_demo(out_dir: str | Path, *, quick: bool = False, model_path: str | None = None) -> dict[str, Any]:
    """Run the whole demo under ``out_dir``; returns the before/after metrics and the wall and CPU time."""
    import torch

    from resrl.trainer.loop import make_tasks, seed_everything

    s = QUICK if quick else FULL
    torch.set_num_threads(s.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start, cpu_start = time.monotonic(), _cpu_s()
    seed_everything(s.seed, 0)
    tasks = training_tasks(s)
    task_sets = {
        "heldout": heldout_tasks(DEMO_ENVS, s.eval_tasks, [t for group in tasks.values() for t in group]),
        "test": make_tasks(DEMO_ENVS, "test", s.eval_tasks, s.seed),
    }
    if model_path is None:
        log.info("demo: tokenizer and tiny model")
        base = build_base(s, out / "tiny")
    else:
        base = Path(model_path)
    log.info("demo: SFT warm-up on gold demonstrations")
    warm = warm_start(s, base, out / "warm", tasks)
    sft_done = time.monotonic()

    before = evaluate_model(s, warm, out / "eval_before", task_sets)
    log.info("demo: ResRL on single-turn function calling")
    stage1 = stage_config(s, warm, out / "stage1_single", envs=SINGLE_TURN, steps=s.single_steps, multi=False)
    after_single = train_stage(stage1)
    log.info("demo: ResRL on the multi-turn domain %s", MULTI_TURN)
    stage2 = stage_config(
        s,
        after_single,
        out / "stage2_multi",
        envs=[MULTI_TURN],
        steps=s.multi_steps,
        multi=True,
        threshold=s.multi_threshold,
    )
    final = train_stage(stage2)
    after = evaluate_model(s, final, out / "eval_after", task_sets)
    result = {
        "before": before["heldout"],
        "after": after["heldout"],
        "test_split": {"before": before["test"], "after": after["test"]},
        "labels": {"before/after": HELDOUT_LABEL, "test_split": TEST_LABEL},
        "wall_s": time.monotonic() - start,
        "sft_wall_s": sft_done - start,
        "cpu_s": _cpu_s() - cpu_start,
        "settings": s.model_dump(),
        "final_model": str(final),
    }
    (out / "demo_result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_table(result: dict[str, Any]) -> None:
    """The before/after table (rich): every environment on the held-out tasks, the test split beside."""
    from rich.console import Console
    from rich.table import Table

    before, after = result["before"], result["after"]
    test_before, test_after = result["test_split"]["before"], result["test_split"]["after"]
    k = before["k"]
    per_env = before["tasks"] // len(DEMO_ENVS)
    temperature = result["settings"]["temperature"]
    table = Table(title=f"Avg@{k}: {per_env} tasks per env x {k} samples, T={temperature:g}")
    table.add_column("env", no_wrap=True)
    for name in ("held-out\nSFT", "held-out\nResRL", "held-out\nchange", "test\nSFT", "test\nResRL"):
        table.add_column(name, justify="right")

    def row(label: str, key: str) -> None:
        b, a = before.get(key), after.get(key)
        change = f"{a - b:+.3f}" if a is not None and b is not None else "-"
        table.add_row(label, _num(b), _num(a), change, _num(test_before.get(key)), _num(test_after.get(key)))

    for env_id in DEMO_ENVS:
        row(env_id, f"avg_at_k/{env_id}")
    row("all", "avg_at_k")
    row("Pass@1 all", "pass_at_k/1")
    row(f"Pass@{k} all", "pass_at_k")
    console = Console()
    console.print(table)
    console.print(f"held-out = {result['labels']['before/after']}; test = {result['labels']['test_split']}")
    console.print(f"wall time: {result['wall_s']:.0f} s (CPU {result['cpu_s']:.0f} s)")
