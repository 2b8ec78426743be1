"""``resrl rollout``: collect episodes with a policy and write them as JSONL trajectories."""

from __future__ import annotations

import argparse
import json

from resrl.cli._envfile import add_env_file_option, load_env_files


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rollout", help="collect multi-turn episodes with a policy (hf, vllm or openai)")
    p.add_argument("--env", required=True, help="environment id (see `resrl envs list`)")
    p.add_argument(
        "--policy",
        required=True,
        metavar="SPEC",
        help="hf:PATH, vllm:PATH, openai:URL, or gold:PATH (each task's gold solution, with the tokenizer at PATH)",
    )
    p.add_argument("--tasks", type=int, default=8, help="number of tasks to generate (ignored with --task-file)")
    p.add_argument("--task-file", help="JSONL task set to use instead of generated tasks")
    p.add_argument("--split", choices=["train", "test", "eval"], default="test")
    p.add_argument("--seed", type=int, default=0, help="task generation and sampling seed")
    p.add_argument("--n", type=int, default=4, help="samples per task (the group size k of Avg@k / Pass@k)")
    p.add_argument("--max-turns", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=2048, help="response budget per episode, all turns")
    p.add_argument("--max-new-tokens", type=int, default=256, help="tokens per assistant turn")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--episode-timeout", type=float, default=300.0, help="seconds per episode")
    p.add_argument(
        "--tool-format",
        default="auto",
        help="auto (the format the chat template renders), hermes, pythonic, llama3_json, mistral or openai",
    )
    p.add_argument(
        "--chat-template-kwargs",
        type=json.loads,
        default={},
        metavar="JSON",
        help="options for every chat-template rendering, e.g. '{\"enable_thinking\": false}'",
    )
    p.add_argument("--threshold", type=float, default=1.0, help="reward counted as a success")
    p.add_argument("--remote", metavar="URL", help="play the env on a `resrl serve env` server at URL")
    p.add_argument(
        "--overlap-env", action="store_true", help="keep generating while env steps run (faster; not reproducible)"
    )
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (it may call resrl.register); repeatable",
    )
    p.add_argument("--out", required=True, help="output JSONL of trajectories")
    add_env_file_option(p)
    p.set_defaults(func=_rollout)


def _rollout(args: argparse.Namespace) -> int:
    import importlib
    from pathlib import Path

    from resrl.core.registry import make
    from resrl.core.task import read_jsonl
    from resrl.metrics import score
    from resrl.rollout import Collector, load_policy

    for module in args.imports:
        importlib.import_module(module)
    load_env_files(args)
    if args.n < 1 or args.tasks < 1:
        raise ValueError("--n and --tasks must be at least 1")
    if not isinstance(args.chat_template_kwargs, dict):
        raise ValueError('--chat-template-kwargs must be a JSON object, e.g. {"enable_thinking": false}')
    if args.task_file:
        tasks = read_jsonl(args.task_file)
    else:
        tasks = make(args.env).generate_tasks(args.split, args.tasks, args.seed)
    env_factory = args.env
    if args.remote:
        from resrl.client import RemoteEnv

        url, env_id = args.remote, args.env
        # the collector resolves tool_format=auto when it is built, before any env is made
        env_factory = lambda: RemoteEnv(url, env_id, tool_format=collector.tool_format)  # noqa: E731
    policy = load_policy(args.policy)
    collector = Collector(
        policy,
        env_factory,
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
