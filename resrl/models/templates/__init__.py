"""Our own Jinja chat templates: ``chatml`` (Qwen/Hermes tool calls), ``compact`` (``chatml`` with one line per
tool, ``- name(arg: type, opt?: a|b): description``, instead of its JSON schema: prompts about half as long, for
tiny models), ``llama3`` (header tokens, pythonic calls) and ``think`` (a default system prompt; earlier
``<think>`` blocks are stripped, so not append-only)."""

from __future__ import annotations

from importlib.resources import files

TEMPLATES = {"chatml": "hermes", "compact": "hermes", "llama3": "pythonic", "think": "hermes"}
"""Template name → the tool-call format its model writes."""


def load_template(name: str) -> str:
    """The Jinja source of template ``name``."""
    if name not in TEMPLATES:
        raise ValueError(f"unknown chat template {name!r}; choose one of {sorted(TEMPLATES)}")
    return files(__package__).joinpath(f"{name}.jinja").read_text(encoding="utf-8")
