"""The ``resrl`` command. Each module in this package adds its sub-commands through ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every command module's sub-commands."""
    parser = argparse.ArgumentParser(prog="resrl", description="RL for tool-using LLM agents, with ResRL.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # shared helpers, not commands
            continue
        importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``resrl`` console script; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops collecting a positional list at the first option, so `train CFG --resume k=v` would leave
    # k=v over: dotted overrides are taken wherever they stand.
    if extra and isinstance(getattr(args, "overrides", None), list) and all(_is_override(x) for x in extra):
        args.overrides.extend(extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        print(f"resrl: error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2


def _is_override(arg: str) -> bool:
    key, sep, _ = arg.partition("=")
    return bool(sep) and bool(key) and not key.startswith("-")


if __name__ == "__main__":
    sys.exit(main())
