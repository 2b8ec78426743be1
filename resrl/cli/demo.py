"""``resrl demo``: the CPU demo (tiny model, SFT warm-up, ResRL on function calling, before/after table)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo",
        help="train a tiny local model to call tools with ResRL and print a before/after table",
        description="Builds a tiny model, warms it up on gold demonstrations, trains it with ResRL on "
        "function-calling tasks (single-turn, then a multi-turn domain) and compares Avg@k / Pass@k on the test split.",
    )
    parser.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument("--quick", action="store_true", help="a smoke version of the same pipeline (about 2 minutes)")
    parser.add_argument("--model", help="a Hugging Face checkpoint folder to train instead of the tiny model")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from resrl.trainer.demo import print_table, run_demo

    result = run_demo(args.out, quick=args.quick, model_path=args.model)
    print_table(result)
    print(f"plots and logs: {args.out}/stage1_single, {args.out}/stage2_multi")
    return 0
