"""``resrl train CONFIG.yaml [section.key=value ...] [--resume] [--nproc N]``.

Several learner ranks: ``torchrun --nproc-per-node N -m resrl train CONFIG ...``, or ``--nproc N``, which
re-runs the same command under ``torch.distributed.run --standalone`` (one machine, a free local port).
"""

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
    parser.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="learner ranks on this machine: re-runs this command under torchrun --nproc-per-node N",
    )
    add_env_file_option(parser)
    parser.set_defaults(func=run)


def torchrun_command(args: argparse.Namespace) -> list[str]:
    """The ``torchrun`` command line that runs this ``resrl train`` on ``args.nproc`` local ranks."""
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}"]
    cmd += ["-m", "resrl", *(["-v"] if getattr(args, "verbose", False) else []), "train", args.config]
    cmd += list(args.overrides)
    cmd += ["--resume"] if args.resume else []
    for path in getattr(args, "env_files", None) or []:
        cmd += ["--env-file", path]
    return cmd


def run(args: argparse.Namespace) -> int:
    import json
    import subprocess

    from resrl.trainer import distributed
    from resrl.trainer.config import load_config

    if args.nproc < 1:
        raise ValueError(f"--nproc must be at least 1, got {args.nproc}")
    load_env_files(args)
    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(json.dumps(cfg.model_dump(), indent=2))
        return 0
    if args.nproc > 1 and not distributed.launched():
        return subprocess.run(torchrun_command(args), check=False).returncode
    from resrl.trainer.loop import Trainer

    trainer = Trainer(cfg, resume=args.resume)
    main = distributed.is_main()
    try:
        result = trainer.run()
    finally:
        trainer.close()
        distributed.shutdown()
    if main:  # one result line, from rank 0
        print(json.dumps({k: v for k, v in result.items() if k != "pass_curve"}))
    return 0
