"""``resrl tasks generate``."""

from __future__ import annotations

import argparse

from resrl.cli._envfile import add_env_file_option, load_env_files


def register(sub: argparse._SubParsersAction) -> None:
    tasks = sub.add_parser("tasks", help="generate task sets").add_subparsers(dest="tasks_cmd", required=True)
    gen = tasks.add_parser("generate", help="write a seeded JSONL task set")
    gen.add_argument("--env", required=True, help="environment id")
    gen.add_argument("--split", choices=["train", "test", "eval"], default="train")
    gen.add_argument("--n", type=int, required=True, help="number of tasks")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", required=True, help="output JSONL path")
    add_env_file_option(gen)
    gen.set_defaults(func=_generate)


def _generate(args: argparse.Namespace) -> int:
    from resrl.core.registry import spec
    from resrl.core.task import write_jsonl

    load_env_files(args)
    if args.n < 1:
        raise ValueError("--n must be at least 1")
    cls = spec(args.env).env_class()
    n = write_jsonl(cls.generate_tasks(args.split, args.n, args.seed), args.out)
    print(f"wrote {n} {args.split} tasks of {args.env} to {args.out}")
    return 0
