"""``resrl eval``: score a policy on environments' task splits (Avg@k, Pass@k, pass^k per environment)."""

from __future__ import annotations

import argparse

from resrl.cli._envfile import add_env_file_option, load_env_files
from resrl.cli._options import (
    add_episode_options,
    add_import_option,
    add_policy_option,
    check_episode_options,
    import_modules,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a policy: Avg@k, Pass@k and pass^k per environment",
        description="Sample --k episodes of --tasks tasks of every environment matching --envs and score them "
        "(infra errors are counted and left out, never scored 0). Writes results.json, pass_at_k.png and "
        "trajectories.jsonl under --out. With --trajectories FILE, scores saved trajectories instead.",
    )
    add_policy_option(p, required=False)
    p.add_argument("--envs", metavar="GLOB", help="env ids or globs, comma-separated (e.g. 'fc/simple,fc/multi/*')")
    p.add_argument("--split", default="test", help="task split to draw (train, test, ...)")
    p.add_argument("--tasks", type=int, default=32, help="tasks per environment")
    p.add_argument(
        "--k", type=int, help="samples per task (Avg@k, Pass@1..k, pass^k); default 4 (--trajectories: the group size)"
    )
    add_episode_options(p)
    p.add_argument("--trajectories", metavar="FILE", help="score this JSONL of trajectories instead of sampling")
    p.add_argument("--out", default="runs/eval", help="output folder (default: runs/eval)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_import_option(p)
    add_env_file_option(p)
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from resrl.trainer.evaluate import EvalSettings, evaluate_policy, print_report, report, resolve_envs, write_report

    import_modules(args)
    load_env_files(args)
    check_episode_options(args)
    if (args.k is not None and args.k < 1) or args.tasks < 1:
        raise ValueError("--k and --tasks must be at least 1")
    if args.trajectories:
        from resrl.rollout import Trajectory

        with open(args.trajectories, encoding="utf-8") as fh:
            trajectories = [Trajectory.model_validate_json(line) for line in fh if line.strip()]
        result = report(trajectories, args.k, args.threshold)
        write_report(result, args.out)
    else:
        if not args.policy or not args.envs:
            raise ValueError("--policy and --envs are needed (or --trajectories FILE to score saved trajectories)")
        settings = EvalSettings(
            envs=resolve_envs(args.envs),
            split=args.split,
            tasks=args.tasks,
            k=args.k or 4,
            temperature=args.temperature,
            max_turns=args.max_turns,
            max_tokens=args.max_tokens,
            max_new_tokens=args.max_new_tokens,
            tool_format=args.tool_format,
            chat_template_kwargs=args.chat_template_kwargs,
            seed=args.seed,
            threshold=args.threshold,
            episode_timeout=args.episode_timeout,
        )
        policy = _load(args.policy, args.seed)
        try:
            result, trajectories = evaluate_policy(policy, settings, progress=not args.no_progress)
        finally:
            close = getattr(policy, "close", None)
            if callable(close):
                close()
        write_report(result, args.out, trajectories)
    print_report(result)
    print(f"wrote {args.out}/results.json and {args.out}/pass_at_k.png")
    from importlib.metadata import entry_points

    for hook in entry_points(group="resrl.eval_summaries"):  # plugins' own layouts, e.g. BFCL's summary table
        hook.load()(result, args.out)
    return 0


def _load(spec: str, seed: int):
    from resrl.rollout import load_policy

    # An in-process vLLM engine takes the seed; hf and openai sample with per-request seeds from the collector.
    return load_policy(spec, seed=seed) if spec.startswith("vllm:") else load_policy(spec)
