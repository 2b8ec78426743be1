"""``resrl serve sandbox``: run untrusted code over HTTP (options and start-up)."""

from __future__ import annotations

import argparse
import logging
import os

log = logging.getLogger("resrl.server.sandbox")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``resrl serve sandbox``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    parser.add_argument(
        "--backend",
        choices=["local", "docker"],
        default=os.environ.get("RESRL_SANDBOX_BACKEND", "local"),
        help="where jobs run (default: $RESRL_SANDBOX_BACKEND or local)",
    )
    parser.add_argument("--workers", type=int, default=None, help="concurrent jobs (default: CPU count)")
    parser.add_argument("--max-queue", type=int, default=64, help="jobs waiting beyond the running ones")
    parser.add_argument(
        "--allow-network",
        action="store_true",
        help="local backend: run jobs even where no network namespace can be made (jobs then share this "
        "machine's network); without it such a sandbox refuses every job",
    )
    parser.add_argument(
        "--allow-host-files",
        action="store_true",
        help="local backend: run jobs even where no private root can be mounted (jobs then see this "
        "filesystem); without it such a sandbox refuses every job",
    )
    parser.add_argument(
        "--no-pin-cpus",
        action="store_true",
        help="local backend: let the workers float over the CPUs (by default each runs on one CPU of its own "
        "while there are no more workers than CPUs)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    """Start the backend and the server; returns when it stops."""
    import uvicorn

    from resrl.sandbox import make_sandbox
    from resrl_servers.sandbox.app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    workers = args.workers or os.cpu_count() or 1
    if workers < 1 or args.max_queue < 0:
        raise SystemExit("--workers must be at least 1 and --max-queue at least 0")
    options = {}
    if args.backend == "local":
        options = {"allow_network": args.allow_network, "allow_host_files": args.allow_host_files,
                   "pin_cpus": not args.no_pin_cpus}  # fmt: skip
    elif args.allow_network or args.allow_host_files or args.no_pin_cpus:
        raise SystemExit("--allow-network/--allow-host-files/--no-pin-cpus apply to the local backend only")
    sandbox = make_sandbox(args.backend, workers=workers, **options)
    health = sandbox.health()
    if not health.get("ok"):
        log.error("sandbox refuses jobs: %s", health.get("error"))
    log.info("sandbox backend %s with %d workers: %s", args.backend, workers, health)
    app = create_app(sandbox, max_queue=args.max_queue, workers=workers)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
