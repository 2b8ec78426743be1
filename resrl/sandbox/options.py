"""The executor's command line, parsed by hand: ``argparse`` imports ``shutil``, and with it bz2, lzma and zlib,
~35 more mappings in the executor before it forks its zygote, which every program fork then copies and every
program exit unmaps. Standard library only (it ships with ``executor.py``)."""

from __future__ import annotations

import os
import sys

USAGE = """usage: executor.py (--stdio | --socket PATH) [--base DIR] [--cpu N] [--allow-network] [--allow-host-files]

resrl sandbox executor (one slot)
  --stdio             framed requests on stdin, answers on stdout
  --socket PATH       listen on this Unix socket path
  --base DIR          the folder of its work directory and job root (default: $TMPDIR/resrl-sandbox)
  --cpu N             run it and its jobs on CPU N only
  --allow-network     run jobs even without a network namespace (they then share this network)
  --allow-host-files  run jobs even without a private root (they then see this filesystem)"""


def parse(argv: list[str]) -> dict:
    """The options as a dict; usage and exit status 2 on a bad argument, 0 after ``--help``."""
    base = os.path.join(os.environ.get("TMPDIR", "/tmp"), "resrl-sandbox")
    opts: dict = {
        "stdio": False,
        "socket": None,
        "base": base,
        "allow_network": False,
        "allow_host_files": False,
        "cpu": None,
    }
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        if name in ("-h", "--help"):
            print(USAGE)
            sys.exit(0)
        if name in ("--stdio", "--allow-network", "--allow-host-files") and not eq:
            opts[name[2:].replace("-", "_")] = True
        elif name in ("--socket", "--base") and (value := value if eq else next(args, "")):
            opts[name[2:]] = value
        elif name == "--cpu" and (value := value if eq else next(args, "")).isdigit():
            opts["cpu"] = int(value)
        else:
            sys.exit(f"{USAGE}\nexecutor.py: error: bad argument {arg!r}")
    if opts["stdio"] == (opts["socket"] is not None):
        sys.exit(f"{USAGE}\nexecutor.py: error: exactly one of --stdio and --socket PATH is required")
    return opts
