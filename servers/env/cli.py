"""``resrl serve env``: host registered environments over HTTP (options and start-up)."""

from __future__ import annotations

import argparse
import logging

from resrl.cli._envfile import add_env_file_option, load_env_files
from resrl.cli._options import add_import_option, import_modules

log = logging.getLogger("resrl.server.env")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``resrl serve env``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument(
        "--envs",
        nargs="*",
        metavar="PATTERN",
        default=None,
        help="glob(s) over env ids to host, e.g. 'fc/*' (default: every registered env)",
    )
    add_import_option(parser)
    parser.add_argument(
        "--tasks",
        dest="task_files",
        action="append",
        default=[],
        metavar="JSONL",
        help="task set whose ids POST /v1/sessions may name as task_id; repeatable",
    )
    parser.add_argument("--max-sessions", type=int, default=4096, help="open sessions at most")
    parser.add_argument("--max-waiting", type=int, default=256, help="session requests queued past capacity")
    parser.add_argument("--queue-timeout", type=float, default=10.0, help="seconds a queued request waits")
    parser.add_argument("--session-ttl", type=float, default=600.0, help="idle seconds before a session is reaped")
    parser.add_argument("--step-timeout", type=float, default=60.0, help="seconds one reset/step may take")
    parser.add_argument("--threads", type=int, default=32, help="worker threads for synchronous envs")
    parser.add_argument(
        "--no-inline-steps",
        dest="inline_steps",
        action="store_false",
        help="run every step on the thread pool, even of envs that declare fast_step",
    )
    parser.add_argument(
        "--inline-limit",
        type=float,
        default=0.02,
        metavar="SECONDS",
        help="an inline (fast_step) step slower than this moves its env to the thread pool (default 0.02)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_env_file_option(parser)


def run(args: argparse.Namespace) -> int:
    """Start the server; returns when it stops."""
    import uvicorn

    from resrl_servers.env.app import ServerConfig, create_app

    import_modules(args)
    load_env_files(args)
    config = ServerConfig(
        env_patterns=args.envs or None,
        task_files=args.task_files,
        max_sessions=args.max_sessions,
        max_waiting=args.max_waiting,
        queue_timeout_s=args.queue_timeout,
        session_ttl_s=args.session_ttl,
        step_timeout_s=args.step_timeout,
        threads=args.threads,
        inline_steps=args.inline_steps,
        inline_limit_s=args.inline_limit,
    )
    app = create_app(config)
    log.info("env server on http://%s:%d hosting %d env(s)", args.host, args.port, len(app.state.envs))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0
