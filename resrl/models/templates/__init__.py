"""Our own Jinja chat templates: ``chatml`` (Qwen/Hermes tool calls), ``compact`` (``chatml`` with one line per
tool, ``- name(arg: type, opt?: a|b): description``, instead of its JSON schema: prompts about half as long, for
tiny models), ``llama3`` (header tokens, pythonic calls) and ``think`` (a default system prompt; earlier
``<think>`` blocks are stripped, so not append-only)."""

from __future__ import annotations

from importlib.resources import files

TEMPLATES = {"chatml": "hermes", "compact": "hermes", "llama3": "pythonic", "think": "hermes"}
"""Template name → the tool-call format its model writes."""


# ``compact`` is ``chatml`` with its tool list swapped, so the two share every turn's rendering. Nested schemas
# shrink to their type there (an array's items are not shown): enough for the flat tools a tiny model calls.
_JSON_TOOLS = "Their signatures are inside <tools></tools>:\n<tools>\n{% for t in tools %}{{ t | tojson }}\n"
_LINE_TOOLS = (
    "One per line, inside <tools></tools>:\n<tools>\n"
    "{% for t in tools %}{%- set f = t.function if t.function is defined else t %}"
    "{%- set p = f.parameters or {} %}- {{ f.name }}("
    "{%- for k, v in (p.properties or {}).items() %}{{ k }}{% if k not in (p.required or []) %}?{% endif %}: "
    "{% if v.enum %}{{ v.enum | join('|') }}{% else %}{{ v.type }}{% endif %}{% if not loop.last %}, {% endif %}"
    "{% endfor %}): {{ f.description }}\n"
)


def load_template(name: str) -> str:
    """The Jinja source of template ``name``."""
    if name not in TEMPLATES:
        raise ValueError(f"unknown chat template {name!r}; choose one of {sorted(TEMPLATES)}")
    source = files(__package__).joinpath(f"{'chatml' if name == 'compact' else name}.jinja").read_text(encoding="utf-8")
    if name == "compact":
        if _JSON_TOOLS not in source:
            raise RuntimeError("chatml.jinja's tool list changed: update the compact template's swap with it")
        source = source.replace(_JSON_TOOLS, _LINE_TOOLS)
    return source
