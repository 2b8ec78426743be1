"""The learning experiment: GRPO, Dr.GRPO, NSR, W-REINFORCE (λ=0.1) and ResRL from one shared warm start.

One warm start (the demo's: a tiny local model from ``resrl.models`` and SFT on gold demonstrations, see
:mod:`resrl.trainer.demo`) is trained by every method with ``--seeds`` seeds. Every run has the same config
(the demo's RL stage on single-turn function calling, no group filter) except ``algo.scheme`` /
``algo.estimator`` and each method's own coefficients, so masks, step budget, batch and evaluation are
identical. After training, each run samples ``k`` (16) completions per held-out task at temperature 1 with the
same sampling seed, and scores Avg@k and unbiased Pass@j (j = 1..k) with :mod:`resrl.metrics`; token entropy,
distinct-2 and the mean reward of the training rollouts are kept at every step.

Intervals are 95% percentile bootstraps that resample seeds and tasks together (two-way: seeds with
replacement, and the held-out tasks with replacement, each replicate averaging the seed × task grid), so
they cover both run-to-run and task-to-task variation. Over-steps bands resample seeds only.

Held-out tasks come from the training templates with seeds the training never draws (a model trained from
scratch for minutes does not reach the test templates); the warm start is scored the same way.

Outputs under ``--out``: ``results.json``, ``results.md`` (the table), ``pass_at_k.png`` (bands) and
``training.png`` (reward and entropy over steps). Each finished run is saved under ``runs/`` and reused when
the command is run again with the same ``--out``, so an interrupted grid continues where it stopped.

    python benchmarks/learning.py [--out runs/learning] [--quick] [--seeds 3] [--methods GRPO,ResRL]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger("resrl.bench.learning")


class Grid(BaseModel):
    """The experiment's budget: one size for the real grid, one for the smoke run."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(ge=1)
    tasks_per_step: int = Field(ge=1)
    n: int = Field(ge=2, description="group size")
    heldout_tasks: int = Field(ge=1, description="held-out tasks per environment")
    k: int = Field(ge=1, description="samples per held-out task (Avg@k, Pass@1..k)")
    seeds: int = Field(ge=1)
    bootstrap: int = Field(2000, ge=100)


FULL = Grid(steps=10, tasks_per_step=6, n=8, heldout_tasks=12, k=16, seeds=3)
QUICK = Grid(steps=1, tasks_per_step=2, n=2, heldout_tasks=2, k=2, seeds=2, bootstrap=200)


def method_overrides(max_new_tokens: int) -> dict[str, list[str]]:
    """Each method as config overrides: its scheme, estimator and coefficients (everything else is shared)."""
    return {
        "GRPO": ["algo.scheme=grpo", "algo.estimator=grpo"],
        # Dr.GRPO: no std normalisation, and a constant length divisor instead of the per-sequence mean
        "Dr.GRPO": [
            "algo.scheme=grpo",
            "algo.estimator=drgrpo",
            "algo.agg=seq-mean-token-sum-norm",
            f"algo.norm_len={max_new_tokens}",
        ],
        "NSR": ["algo.scheme=nsr"],
        "W-REINFORCE": ["algo.scheme=w_reinforce", "algo.w_lambda=0.1"],
        "ResRL": ["algo.scheme=resrl", "algo.pos_weight=0.1"],
    }


# -- the warm start ---------------------------------------------------------------------------------------
def warm_start(settings: Any, out: Path, seen: dict[str, list[Any]]) -> Path:
    """The demo's warm start (:func:`resrl.trainer.demo.warm_start`: its tokenizer, model and SFT recipe) on
    ``seen``, the demo's training tasks."""
    from resrl.trainer import demo
    from resrl.trainer.loop import seed_everything

    model_dir = out / "warm" / "model"
    if (model_dir / "model.safetensors").is_file():
        log.info("reusing the warm start in %s", model_dir)
        return model_dir
    seed_everything(settings.seed, 0)
    base = demo.build_base(settings, out / "tiny")
    return demo.warm_start(settings, base, out / "warm", seen)


def heldout(grid: Grid, seen: dict[str, list[Any]]) -> list[Any]:
    """Held-out tasks: the demo's (train templates, unseen seeds, no request any training stage draws)."""
    from resrl.trainer import demo

    return demo.heldout_tasks(demo.SINGLE_TURN, grid.heldout_tasks, [t for group in seen.values() for t in group])


# -- one run ----------------------------------------------------------------------------------------------
def run_config(settings: Any, grid: Grid, warm: Path, out: Path, method: str, seed: int, envs: list[str]):
    """The demo's single-turn RL stage config with this grid's budget, the paper's defaults and ``method``."""
    from resrl.trainer import demo
    from resrl.trainer.config import apply_overrides, validate_config

    base = demo.stage_config(settings, warm, out, envs=envs, steps=grid.steps, multi=False)
    shared = [
        f"train.tasks_per_step={grid.tasks_per_step}",
        f"rollout.n={grid.n}",
        f"optim.mini_batch_size={grid.tasks_per_step * grid.n}",
        f"optim.micro_batch_size={min(16, grid.tasks_per_step * grid.n)}",
        "train.filter_groups=false",  # the paper's setting: every group trains
        "train.eval_every=0",
        "train.tensorboard=false",
        "train.plots=false",
        "data.test_tasks=1",  # the experiment evaluates on its own held-out set
        f"data.train_tasks={demo.RL_TASKS}",
        f"train.seed={seed}",
        f"algo.seed={seed}",
    ]
    overrides = shared + method_overrides(base.rollout.max_new_tokens_per_turn)[method]
    return validate_config(apply_overrides(base.model_dump(), overrides))


def evaluate(trainer: Any, tasks: list[Any], k: int, threshold: float) -> dict[str, Any]:
    """``k`` samples per held-out task (the same sampling seed for every run): per-task successes and text stats."""
    from resrl.metrics import distinct_n, group_successes
    from resrl.trainer.loop import seed_everything

    seed_everything(12345, 0)
    trajs = trainer.engine.collect(tasks, k, 1.0)
    groups = group_successes(trajs, threshold)
    usable = [t for t in trajs if t.infra_error is None]
    decode = trainer.tokenizer.decode
    texts = [decode([i for i, m in zip(t.response_ids, t.loss_mask, strict=True) if m]) for t in usable]
    return {
        "successes": {t.id: groups.get(t.id, []) for t in tasks},
        "envs": {t.id: t.env_id for t in tasks},
        "distinct_2": distinct_n(texts, 2),
        "policy_tokens_mean": sum(t.n_policy_tokens for t in usable) / max(len(usable), 1),
        "infra_errors": len(trajs) - len(usable),
    }


def train_one(settings: Any, grid: Grid, warm: Path, out: Path, method: str, seed: int, heldout: list[Any]) -> dict:
    """Train one (method, seed) run and evaluate it; the record saved under ``runs/``."""
    from resrl.trainer import demo
    from resrl.trainer.loop import Trainer

    cfg = run_config(settings, grid, warm, out / "work" / f"{method}_{seed}", method, seed, demo.SINGLE_TURN)
    start = time.monotonic()
    trainer = Trainer(cfg)
    try:
        for step in range(1, grid.steps + 1):
            trainer.train_step(step)
        train_s = time.monotonic() - start
        result = evaluate(trainer, heldout, grid.k, cfg.algo.success_threshold)
    finally:
        trainer.close()
    keys = ("step", "reward_mean", "success_rate", "token_entropy", "distinct_2", "policy_tokens_mean")
    history = [{key: rec[key] for key in keys if key in rec} for rec in trainer.history]
    return {
        "method": method,
        "seed": seed,
        "history": history,
        "train_s": train_s,
        "wall_s": time.monotonic() - start,
        **result,
    }


def evaluate_warm(settings: Any, grid: Grid, warm: Path, out: Path, heldout: list[Any]) -> dict:
    """The warm start scored with the same protocol (no training step)."""
    from resrl.trainer import demo
    from resrl.trainer.loop import Trainer

    cfg = run_config(settings, grid, warm, out / "work" / "warm", "GRPO", 0, demo.SINGLE_TURN)
    trainer = Trainer(cfg)
    try:
        return {"method": "warm start", "seed": 0, "history": [], **evaluate(trainer, heldout, grid.k, 1.0)}
    finally:
        trainer.close()


# -- statistics -------------------------------------------------------------------------------------------
def bootstrap_ci(grid: np.ndarray, reps: int, rng: np.random.Generator, level: float = 0.95) -> tuple[float, ...]:
    """Mean and percentile interval of a (seeds, tasks) grid, resampling seeds and tasks with replacement."""
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 2 or grid.size == 0:
        raise ValueError(f"need a non-empty (seeds, tasks) grid, got shape {grid.shape}")
    s, t = grid.shape
    rows = rng.integers(0, s, size=(reps, s))
    cols = rng.integers(0, t, size=(reps, t))
    means = np.nanmean(grid[rows[:, :, None], cols[:, None, :]], axis=(1, 2))  # NaN: a task short of samples
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(np.nanmean(grid)), float(lo), float(hi)


def per_task_scores(record: dict, task_ids: list[str], k: int) -> tuple[list[float], list[list[float]]]:
    """Avg@k and Pass@1..k of each held-out task of one run (unbiased Pass@j over the task's usable samples)."""
    from resrl.metrics import pass_at_k

    avg, curves = [], []
    for tid in task_ids:
        s = record["successes"][tid]
        if not s:
            raise ValueError(f"{record['method']} seed {record['seed']}: no usable sample of {tid}")
        avg.append(sum(s) / len(s))
        # resrl.metrics' rule: Pass@j is defined only on a task with at least j usable samples
        curves.append([pass_at_k(len(s), sum(s), j) if j <= len(s) else float("nan") for j in range(1, k + 1)])
    return avg, curves


def summarize(records: list[dict], grid: Grid, seed: int = 0) -> dict[str, Any]:
    """Mean and 95% interval of Avg@k and every Pass@j for the runs of one method; over-steps curves."""
    rng = np.random.default_rng(seed)
    task_ids = sorted(records[0]["successes"])
    avg, curves = zip(*(per_task_scores(r, task_ids, grid.k) for r in records), strict=True)
    avg_grid = np.array(avg)  # (seeds, tasks)
    curve_grid = np.array(curves)  # (seeds, tasks, k)
    out: dict[str, Any] = {
        "runs": len(records),
        "avg_at_k": bootstrap_ci(avg_grid, grid.bootstrap, rng),
        "pass_curve": [bootstrap_ci(curve_grid[:, :, j], grid.bootstrap, rng) for j in range(grid.k)],
        "distinct_2_eval": float(np.mean([r["distinct_2"] for r in records])),
        "policy_tokens_eval": float(np.mean([r["policy_tokens_mean"] for r in records])),
    }
    envs = sorted({records[0]["envs"][t] for t in task_ids})
    for env in envs:
        cols = [i for i, t in enumerate(task_ids) if records[0]["envs"][t] == env]
        out[f"avg_at_k/{env}"] = bootstrap_ci(avg_grid[:, cols], grid.bootstrap, rng)
    if records[0]["history"]:
        out["curves"] = {}
        for key in ("reward_mean", "token_entropy", "distinct_2"):
            values = np.array([[h.get(key, np.nan) for h in r["history"]] for r in records])  # (seeds, steps)
            out["curves"][key] = [bootstrap_ci(values[:, [i]], grid.bootstrap, rng) for i in range(values.shape[1])]
    return out


# -- outputs ----------------------------------------------------------------------------------------------
def plot_pass_at_k(summary: dict[str, dict], k: int, path: Path) -> Path:
    """Pass@j against j for every method (and the warm start), with the 95% bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ks = np.arange(1, k + 1)
    for name, s in summary.items():
        mean, lo, hi = (np.array(v) for v in zip(*s["pass_curve"], strict=True))
        style = {"linestyle": "--", "color": "grey"} if name == "warm start" else {}
        (line,) = ax.plot(ks, mean, marker="o", markersize=3, label=name, **style)
        ax.fill_between(ks, lo, hi, alpha=0.12, color=line.get_color())
    ax.set(xlabel="k (samples per task)", ylabel="Pass@k", title="Held-out Pass@k (mean, 95% bootstrap band)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks[(ks & (ks - 1)) == 0], [str(x) for x in ks[(ks & (ks - 1)) == 0]])
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_training(summary: dict[str, dict], path: Path) -> Path:
    """Training reward, token entropy and distinct-2 over steps (mean over seeds, 95% band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"reward_mean": "train reward", "token_entropy": "token entropy (nats)", "distinct_2": "distinct-2"}
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (key, label) in zip(axes, labels.items(), strict=True):
        for name, s in summary.items():
            if "curves" not in s:
                continue
            mean, lo, hi = (np.array(v) for v in zip(*s["curves"][key], strict=True))
            steps = np.arange(1, len(mean) + 1)
            (line,) = ax.plot(steps, mean, label=name)
            ax.fill_between(steps, lo, hi, alpha=0.15, color=line.get_color())
        ax.set(xlabel="step", ylabel=label)
    axes[0].legend(fontsize=8)
    fig.suptitle("Training rollouts over steps (mean over seeds, 95% bootstrap band)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ci(v: tuple[float, ...] | list[float]) -> str:
    return f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"


def markdown_table(summary: dict[str, dict], k: int) -> str:
    """The results table (markdown): Avg@k, Pass@1/4/k per method with 95% intervals, and text statistics."""
    picks = [j for j in (1, 4, k) if j <= k]
    picks = sorted(set(picks))
    envs = sorted(key.split("/", 1)[1] for key in next(iter(summary.values())) if key.startswith("avg_at_k/"))
    head = f"| method | runs | Avg@{k} | " + " | ".join(f"Pass@{j}" for j in picks)
    head += "".join(f" | Avg@{k} {env}" for env in envs) + " | final train entropy | distinct-2 (held-out) |\n"
    head += "|---" * (5 + len(picks) + len(envs)) + "|\n"
    rows = []
    for name, s in summary.items():
        entropy = f"{s['curves']['token_entropy'][-1][0]:.3f}" if "curves" in s else "–"
        rows.append(
            f"| {name} | {s['runs']} | {_ci(s['avg_at_k'])} | "
            + " | ".join(_ci(s["pass_curve"][j - 1]) for j in picks)
            + "".join(f" | {_ci(s[f'avg_at_k/{env}'])}" for env in envs)
            + f" | {entropy} | {s['distinct_2_eval']:.3f} |"
        )
    return head + "\n".join(rows) + "\n"


def ordering(summary: dict[str, dict], key: str, j: int | None = None) -> str:
    """Methods from best to worst on Avg@k (``j`` None) or Pass@j, by their means."""
    trained = {n: s for n, s in summary.items() if n != "warm start"}
    value = {n: (s["avg_at_k"][0] if j is None else s["pass_curve"][j - 1][0]) for n, s in trained.items()}
    return " > ".join(f"{n} ({value[n]:.3f})" for n in sorted(value, key=value.get, reverse=True))


# -- the grid ---------------------------------------------------------------------------------------------
def run_grid(out: Path, grid: Grid, settings: Any, methods: list[str]) -> dict[str, Any]:
    """Warm start, every (method, seed) run (reusing finished ones), statistics, plots and the table."""
    from resrl.trainer import demo

    start = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs").mkdir(exist_ok=True)
    seen = demo.training_tasks(settings)  # generated once: the warm start trains on them, held-out avoids them
    warm = warm_start(settings, out, seen)
    tasks = heldout(grid, seen)
    records: dict[str, list[dict]] = {}
    plan = [("warm start", 0)] + [(m, seed) for m in methods for seed in range(grid.seeds)]
    for i, (method, seed) in enumerate(plan):
        path = out / "runs" / f"{method.replace('.', '').replace(' ', '_')}_{seed}.json"
        if path.is_file():
            record = json.loads(path.read_text(encoding="utf-8"))
        else:
            log.info("run %d/%d: %s seed %d", i + 1, len(plan), method, seed)
            if method == "warm start":
                record = evaluate_warm(settings, grid, warm, out, tasks)
            else:
                record = train_one(settings, grid, warm, out, method, seed, tasks)
            path.write_text(json.dumps(record), encoding="utf-8")
            log.info("run %s seed %d done in %.0f s", method, seed, record.get("wall_s", 0.0))
        records.setdefault(method, []).append(record)
    summary = {name: summarize(recs, grid) for name, recs in records.items()}
    result = {
        "grid": grid.model_dump(),
        "demo_settings": settings.model_dump(),
        "envs": demo.SINGLE_TURN,
        "heldout": demo.HELDOUT_LABEL,
        "command": " ".join(["python", *sys.argv]),
        "summary": summary,
        "ordering": {
            f"avg@{grid.k}": ordering(summary, "avg"),
            **{f"pass@{j}": ordering(summary, "pass", j) for j in sorted({1, 4, grid.k}) if j <= grid.k},
        },
        "run_wall_s": {f"{r['method']}/{r['seed']}": r.get("wall_s") for recs in records.values() for r in recs},
        "runs_wall_s_total": sum(r.get("wall_s") or 0.0 for recs in records.values() for r in recs),
        "wall_s": time.monotonic() - start,  # this invocation: runs reused from an earlier one cost nothing here
    }
    (out / "results.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    plot_pass_at_k(summary, grid.k, out / "pass_at_k.png")
    plot_training(summary, out / "training.png")
    table = markdown_table(summary, grid.k)
    (out / "results.md").write_text(table, encoding="utf-8")
    print(table)
    for key, line in result["ordering"].items():
        print(f"ordering by {key}: {line}")
    print(f"wall time {result['wall_s']:.0f} s; wrote {out / 'results.json'}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/learning")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run of the whole pipeline")
    parser.add_argument("--seeds", type=int, help="seeds per method (default: the grid's)")
    parser.add_argument("--steps", type=int, help="training steps per run (default: the grid's)")
    parser.add_argument("--methods", help="comma-separated subset of " + ", ".join(method_overrides(1)))
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 is faster on a busy CPU)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from resrl.trainer import demo

    grid = QUICK if args.quick else FULL
    for name in ("seeds", "steps"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                parser.error(f"--{name} must be at least 1")
            grid = grid.model_copy(update={name: value})
    known = list(method_overrides(1))
    methods = known if not args.methods else [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in known]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {known}")
    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))
    random.seed(0)
    run_grid(Path(args.out), grid, demo.QUICK if args.quick else demo.FULL, methods)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
