"""``resrl train CONFIG.yaml [section.key=value ...] [--resume]``."""

from __future__ import annotations

import argparse

from resrl.cli._envfile import add_env_file_option, load_env_files


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="train a policy with ResRL (or GRPO, NSR, ...) from a YAML config",
        description="Train from a YAML config; dotted overrides such as algo.scheme=nsr train.steps=20 apply on top.",
    )
    parser.add_argument("config", help="YAML config file (see configs/)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. optim.lr=1e-5")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in train.out_dir")
    parser.add_argument("--print-config", action="store_true", help="print the validated config and exit")
    add_env_file_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from resrl.trainer.config import load_config

    load_env_files(args)
    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(json.dumps(cfg.model_dump(), indent=2))
        return 0
    from resrl.trainer.loop import Trainer

    trainer = Trainer(cfg, resume=args.resume)
    try:
        result = trainer.run()
    finally:
        trainer.close()
    print(json.dumps({k: v for k, v in result.items() if k != "pass_curve"}))
    return 0
