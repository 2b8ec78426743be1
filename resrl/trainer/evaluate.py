"""Evaluating a policy on environments' task splits: the library behind ``resrl eval``.

:func:`evaluate_policy` collects k samples of each task of every environment with any policy (hf, vllm,
openai); :func:`report` scores trajectories overall and per environment with :mod:`resrl.metrics` (the same
scores the trainer's evaluation and ``resrl rollout`` print); :func:`print_report` draws the table and
:func:`write_report` writes ``results.json`` and the Pass@k curve. The trainer and the benchmarks score their own
collections with :func:`report` / :func:`resrl.metrics.score`.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from resrl.metrics import score, score_by_env

log = logging.getLogger("resrl.eval")


class EvalSettings(BaseModel):
    """What an evaluation samples: which tasks, how many samples of each, and how episodes run."""

    model_config = ConfigDict(extra="forbid")

    envs: list[str] = Field(min_length=1, description="env ids (already resolved from globs)")
    split: str = "test"
    tasks: int = Field(32, ge=1, description="tasks per environment")
    k: int = Field(4, ge=1, description="samples per task")
    temperature: float = Field(1.0, gt=0.0)
    max_turns: int = Field(8, ge=1)
    max_tokens: int = Field(2048, ge=1, description="response budget per episode, all turns")
    max_new_tokens: int = Field(256, ge=1, description="tokens per assistant turn")
    tool_format: str = Field("auto", description="auto: the format the policy's chat template renders")
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="options for every chat-template rendering, e.g. {enable_thinking: false}"
    )
    seed: int = 0
    threshold: float = Field(1.0, description="reward >= this counts as a success")
    episode_timeout: float = Field(300.0, gt=0.0, description="seconds per episode")


def resolve_envs(patterns: str | list[str]) -> list[str]:
    """Registered env ids matching comma-separated globs (``'fc/simple,fc/multi/*'``), in registry order."""
    from resrl.core.registry import list_envs

    wanted = [p.strip() for p in (patterns.split(",") if isinstance(patterns, str) else patterns) if p.strip()]
    ids = [s.id for s in list_envs()]
    found: list[str] = []
    for pattern in wanted:
        matched = [i for i in ids if fnmatch.fnmatchcase(i, pattern)]
        if not matched:
            raise ValueError(f"no environment matches {pattern!r}; see `resrl envs list`")
        found.extend(i for i in matched if i not in found)
    if not found:
        raise ValueError("--envs names no environment")
    return found


def report(trajectories: list[Any], k: int, threshold: float) -> dict[str, Any]:
    """``{"overall": score, "envs": {env id: score}}`` of ``trajectories`` (see :mod:`resrl.metrics`)."""
    return {"overall": score(trajectories, k, threshold), "envs": score_by_env(trajectories, k, threshold)}


def evaluate_policy(policy: Any, settings: EvalSettings, *, progress: bool = True) -> tuple[dict, list[Any]]:
    """Sample ``settings.k`` episodes of ``settings.tasks`` tasks of every environment; returns the report
    (with ``settings`` and ``wall_s`` added) and the trajectories. Seeded: the same policy and settings draw
    the same tasks and, with a seeded backend, the same samples."""
    from resrl.rollout import Collector
    from resrl.trainer.loop import make_tasks

    tasks = make_tasks(settings.envs, settings.split, settings.tasks, settings.seed)
    collector = Collector(
        policy,
        None,  # each task runs in the env its env_id names, in the resolved format (also for "auto")
        tool_format=settings.tool_format,
        chat_template_kwargs=settings.chat_template_kwargs,
        max_turns=settings.max_turns,
        max_tokens=settings.max_tokens,
        max_new_tokens_per_turn=settings.max_new_tokens,
        temperature=settings.temperature,
        episode_timeout=settings.episode_timeout,
        seed=settings.seed,
        progress=progress,
    )
    start = time.monotonic()
    trajectories = collector.collect(tasks, settings.k)
    result = report(trajectories, settings.k, settings.threshold)
    result["settings"] = settings.model_dump() | {"tool_format": collector.tool_format}  # "auto" resolved
    result["wall_s"] = time.monotonic() - start
    overall = result["overall"]
    log.info(
        "eval: %d tasks x %d samples, Avg@%d=%s, %d infra errors, %.1fs",
        overall["tasks"],
        settings.k,
        settings.k,
        _fmt(overall["avg_at_k"]),
        overall["infra_errors"],
        result["wall_s"],
    )
    return result, trajectories


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_report(result: dict[str, Any], console: Any = None) -> None:
    """The per-environment table (rich): Avg@k, Pass@1, Pass@k, pass^k, tasks and infra errors."""
    from rich.console import Console
    from rich.table import Table

    k = result["overall"]["k"]
    table = Table(title=f"{k} samples per task")
    for name in ("env", f"Avg@{k}", "Pass@1", f"Pass@{k}", f"pass^{k}", "tasks", "infra errors"):
        table.add_column(name, justify="left" if name == "env" else "right")
    for name, s in result["envs"].items():
        table.add_row(name, *_cells(s))
    table.add_section()
    table.add_row("all", *_cells(result["overall"]))
    (console or Console()).print(table)


def _cells(s: dict[str, Any]) -> list[str]:
    scores = (s["avg_at_k"], s["pass_at_k/1"], s["pass_at_k"], s["pass_hat_k"])
    return [*(_fmt(v) for v in scores), str(s["tasks"]), str(s["infra_errors"])]


def write_report(result: dict[str, Any], out_dir: str | Path, trajectories: list[Any] | None = None) -> list[Path]:
    """Write ``results.json``, ``pass_at_k.png`` (Pass@j for j = 1..k, per env and overall) and, when given,
    ``trajectories.jsonl`` under ``out_dir``; returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json"]
    written[0].write_text(json.dumps(result, indent=1), encoding="utf-8")
    written.append(plot_pass_curves(result, out / "pass_at_k.png"))
    if trajectories is not None:
        path = out / "trajectories.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for t in trajectories:
                fh.write(t.model_dump_json() + "\n")
        written.append(path)
    return written


def plot_pass_curves(result: dict[str, Any], path: Path) -> Path:
    """Pass@j against j for every environment and overall, as a PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    curves = [*result["envs"].items(), ("all", result["overall"])]
    for name, s in curves:
        ks = list(range(1, len(s["pass_curve"]) + 1))
        # None (no task with j usable samples) becomes a gap, not a 0
        ys = [float("nan") if v is None else v for v in s["pass_curve"]]
        ax.plot(ks, ys, marker="o", linewidth=2.5 if name == "all" else 1.2, label=name)
    ax.set(xlabel="k", ylabel="Pass@k", title="Pass@k (unbiased)", ylim=(0, 1.02))
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
