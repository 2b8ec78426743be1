"""``resrl serve env|sandbox``: each server package adds its own options through ``add_arguments``."""

from __future__ import annotations

import argparse
import importlib

_SERVERS = {
    "env": ("resrl_servers.env.cli", "host registered environments over HTTP"),
    "sandbox": ("resrl_servers.sandbox.cli", "run untrusted code in sandboxes over HTTP"),
}


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run a server").add_subparsers(dest="serve_cmd", required=True)
    for name, (module, help_text) in _SERVERS.items():
        parser = serve.add_parser(name, help=help_text)
        cli = importlib.import_module(module)
        cli.add_arguments(parser)
        parser.set_defaults(func=cli.run)
