"""``resrl rollout``: collect episodes with a policy and write them as JSONL trajectories."""

from __future__ import annotations

import argparse
import json

from resrl.cli._envfile import add_env_file_option, load_env_files
from resrl.cli._options import (
    add_episode_options,
    add_import_option,
    add_policy_option,
    check_episode_options,
    import_modules,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rollout", help="collect multi-turn episodes with a policy (hf, vllm or openai)")
    p.add_argument("--env", required=True, help="environment id (see `resrl envs list`)")
    add_policy_option(p, required=True)
    p.add_argument("--tasks", type=int, default=8, help="number of tasks to generate (ignored with --task-file)")
    p.add_argument("--task-file", help="JSONL task set to use instead of generated tasks")
    p.add_argument("--split", choices=["train", "test", "eval"], default="test")
    p.add_argument("--n", type=int, default=4, help="samples per task (the group size k of Avg@k / Pass@k)")
    add_episode_options(p)
    p.add_argument(
        "--remote", metavar="URL[,URL...]", help="play the env on `resrl serve env` servers (sticky sessions)"
    )
    p.add_argument(
        "--overlap-env", action="store_true", help="keep generating while env steps run (faster; not reproducible)"
    )
    add_import_option(p)
    p.add_argument("--out", required=True, help="output JSONL of trajectories")
    add_env_file_option(p)
    p.set_defaults(func=_rollout)


def _rollout(args: argparse.Namespace) -> int:
    from pathlib import Path

    from resrl.core.registry import make
    from resrl.core.task import read_jsonl
    from resrl.metrics import score
    from resrl.rollout import Collector, load_policy

    import_modules(args)
    load_env_files(args)
    if args.n < 1 or args.tasks < 1:
        raise ValueError("--n and --tasks must be at least 1")
    check_episode_options(args)
    if args.task_file:
        tasks = read_jsonl(args.task_file)
    else:
        tasks = make(args.env).generate_tasks(args.split, args.tasks, args.seed)
    servers = [u.strip() for u in (args.remote or "").split(",") if u.strip()]
    if servers:  # every task plays --env, as in process (the router goes by each task's env_id)
        tasks = [t if t.env_id == args.env else t.model_copy(update={"env_id": args.env}) for t in tasks]
    policy = load_policy(args.policy)
    collector = Collector(
        policy,
        None if servers else args.env,  # with servers: each task on the replicas, as its env_id names
        env_servers=servers or None,
        tool_format=args.tool_format,
        chat_template_kwargs=args.chat_template_kwargs,
        max_turns=args.max_turns,
        max_tokens=args.max_tokens,
        max_new_tokens_per_turn=args.max_new_tokens,
        temperature=args.temperature,
        episode_timeout=args.episode_timeout,
        seed=args.seed,
        overlap_env=args.overlap_env or None,
    )
    trajectories = collector.collect(tasks, args.n)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for t in trajectories:
            fh.write(t.model_dump_json() + "\n")
    summary = score(trajectories, args.n, args.threshold)
    print(f"wrote {len(trajectories)} trajectories to {out}")
    print(json.dumps(summary, indent=2))
    return 0
