"""``resrl envs list|check``."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from resrl.cli._envfile import add_env_file_option, load_env_files
from resrl.cli._options import add_template_kwargs_option


def register(sub: argparse._SubParsersAction) -> None:
    envs = sub.add_parser("envs", help="list and check environments").add_subparsers(dest="envs_cmd", required=True)
    ls = envs.add_parser("list", help="list registered environments")
    ls.add_argument("--json", action="store_true", help="print a JSON list")
    ls.add_argument("pattern", nargs="?", help="glob over ids, e.g. 'fc/*'")
    add_env_file_option(ls)
    ls.set_defaults(func=_list)
    check = envs.add_parser("check", help="API, gold, perturbed and garbage-output checks")
    check.add_argument("env_ids", nargs="+", metavar="ID", help="env ids or globs")
    check.add_argument("--tasks", type=int, default=5, help="test tasks to play the gold solution on")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="also play the gold episodes through the collector with this tokenizer's chat template",
    )
    add_template_kwargs_option(check)
    add_env_file_option(check)
    check.set_defaults(func=_check)


def _list(args: argparse.Namespace) -> int:
    from resrl.core.registry import list_envs, plugin_problems

    load_env_files(args)
    specs = list_envs(args.pattern)
    for problem in plugin_problems().values():  # on stderr: --json output stays parseable
        Console(stderr=True).print(f"[yellow]warning:[/] {escape(problem)}", highlight=False, soft_wrap=True)
    if args.json:
        print(json.dumps([s.summary() for s in specs], indent=2))
        return 0
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("multi-turn")
    table.add_column("tags")
    table.add_column("description", ratio=1)
    for s in specs:
        table.add_row(s.id, "yes" if s.multi_turn else "", ", ".join(s.tags), s.description)
    Console().print(table)
    from importlib.metadata import entry_points

    for notes in entry_points(group="resrl.envs_notes"):  # plugins say what they leave out, and why
        for line in notes.load()(args.pattern):
            Console().print(escape(line), highlight=False, soft_wrap=True)
    return 0


def _check(args: argparse.Namespace) -> int:
    from resrl.core.check import check_env
    from resrl.core.registry import list_envs, spec

    load_env_files(args)
    ids = []
    for pattern in args.env_ids:
        matched = [s.id for s in list_envs(pattern)] if any(c in pattern for c in "*?[") else [spec(pattern).id]
        if not matched:
            raise KeyError(f"no environment matches {pattern!r}")
        ids.extend(matched)
    console = Console()
    failed = 0
    for env_id in ids:
        results = check_env(
            env_id,
            n_tasks=args.tasks,
            seed=args.seed,
            tokenizer=args.tokenizer,
            template_kwargs=args.chat_template_kwargs,
        )
        for r in results:
            mark = "[yellow]SKIP[/]" if r.skipped else "[green]PASS[/]" if r.passed else "[red]FAIL[/]"
            console.print(f"{mark} {env_id}: {r.name}" + (f"\n     {r.detail}" if r.detail else ""))
        failed += sum(not r.passed for r in results)
    console.print(f"{len(ids)} env(s) checked, {failed} failed check(s)")
    return 1 if failed else 0
