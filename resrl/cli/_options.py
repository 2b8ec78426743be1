"""Options several commands share (not a command itself): the policy spec, how episodes are sampled, and
``--import``. One definition each, so ``rollout`` and ``eval`` read them the same way."""

from __future__ import annotations

import argparse
import importlib
import json


def add_policy_option(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """``--policy SPEC``: a backend name and its target (see :mod:`resrl.rollout.backends`)."""
    parser.add_argument(
        "--policy",
        required=required,
        metavar="SPEC",
        help="hf:PATH, vllm:PATH, openai:URL (the server's /v1 base), servers:URL,URL, or gold:PATH "
        "(each task's gold solution, with the tokenizer at PATH)",
    )


def add_episode_options(parser: argparse.ArgumentParser) -> None:
    """Sampling and episode limits: temperature, turns, token budgets, tool format, template options, seed,
    success threshold and episode timeout."""
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-turns", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=2048, help="response budget per episode, all turns")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="tokens per assistant turn")
    parser.add_argument(
        "--tool-format",
        default="auto",
        help="auto (the format the chat template renders), hermes, pythonic, llama3_json, mistral or openai",
    )
    add_template_kwargs_option(parser)
    parser.add_argument("--seed", type=int, default=0, help="task generation and sampling seed")
    parser.add_argument("--threshold", type=float, default=1.0, help="reward counted as a success")
    parser.add_argument("--episode-timeout", type=float, default=300.0, help="seconds per episode")


def add_template_kwargs_option(parser: argparse.ArgumentParser) -> None:
    """``--chat-template-kwargs JSON``: options for every chat-template rendering."""
    parser.add_argument(
        "--chat-template-kwargs",
        type=json.loads,
        default={},
        metavar="JSON",
        help="options for every chat-template rendering, e.g. '{\"enable_thinking\": false}'",
    )


def check_episode_options(args: argparse.Namespace) -> None:
    """Clear errors for values argparse's types let through."""
    if not isinstance(args.chat_template_kwargs, dict):
        raise ValueError('--chat-template-kwargs must be a JSON object, e.g. {"enable_thinking": false}')


def add_import_option(parser: argparse.ArgumentParser) -> None:
    """``--import MODULE`` (repeatable): modules that register environments, imported before the command."""
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (it may call resrl.register); repeatable",
    )


def import_modules(args: argparse.Namespace) -> None:
    """Import every ``--import`` module."""
    for module in getattr(args, "imports", None) or []:
        importlib.import_module(module)
