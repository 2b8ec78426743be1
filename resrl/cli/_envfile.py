"""The ``--env-file`` option every command that builds environments shares (not a command itself)."""

from __future__ import annotations

import argparse


def add_env_file_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--env-file FILE`` (repeatable): YAML files whose environments are registered before the command."""
    parser.add_argument(
        "--env-file",
        dest="env_files",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML env file to register first (e.g. an 'mcp:' section; see docs/mcp.md); repeatable",
    )


def load_env_files(args: argparse.Namespace) -> None:
    """Register the environments of every ``--env-file`` the command was given."""
    paths = getattr(args, "env_files", None) or []
    if not paths:
        return
    from resrl_envs.mcp.files import load_env_file

    for path in paths:
        load_env_file(path)
