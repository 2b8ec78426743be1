"""Tools: typed Python functions become OpenAI function schemas through pydantic.

Descriptions come from the docstring (first paragraph, and ``Args:`` lines for parameters). Parameters typed
``Annotated[T, Injected]`` are supplied by the environment (session handles, state) and never shown to the model.
Arguments are validated strictly (an int is accepted for a float, nothing else is coerced), and every failure
becomes a :class:`ToolResult` whose text the model can read.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from resrl.core.messages import ToolCall


class Injected:
    """Marker: ``Annotated[T, Injected]`` parameters are filled by the env and hidden from the schema."""


class ToolError(Exception):
    """Raised by a tool for a failure the model caused and should read (``no such file``, ``insufficient funds``)."""


class ToolResult(BaseModel):
    """What a tool call produced: the text shown to the model, and an error kind when it failed."""

    name: str
    content: str
    ok: bool = True
    error: str | None = None  # unknown_tool | invalid_arguments | tool_error
    value: Any = None
    call_id: str | None = None


_ARG_LINE = re.compile(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    if not doc:
        return "", {}
    doc = inspect.cleandoc(doc)
    summary = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    params: dict[str, str] = {}
    section = re.search(r"^(?:Args|Arguments|Parameters):\s*$(.*?)(?=^\S|\Z)", doc, re.MULTILINE | re.DOTALL)
    if section:
        current = None
        for line in section.group(1).splitlines():
            match = _ARG_LINE.match(line)
            if match and (len(line) - len(line.lstrip())) <= 4:
                current = match.group(1)
                params[current] = match.group(2).strip()
            elif current and line.strip():
                params[current] += " " + line.strip()
    return summary, params


def _is_injected(annotation: Any) -> bool:
    return get_origin(annotation) is Annotated and any(a is Injected for a in get_args(annotation)[1:])


def _strip_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items() if k != "title" or not isinstance(v, str)}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


class Tool:
    """A callable with an OpenAI function schema and strict argument validation."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, description: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        summary, param_docs = _parse_docstring(fn.__doc__)
        self.description = description or summary
        hints = get_type_hints(fn, include_extras=True)
        fields: dict[str, Any] = {}
        self.injected: set[str] = set()
        for pname, param in inspect.signature(fn).parameters.items():
            if pname in ("self", "cls") or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            annotation = hints.get(pname, Any)
            if _is_injected(annotation):
                self.injected.add(pname)
                continue
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[pname] = (annotation, Field(default, description=param_docs.get(pname)))
        self.model: type[BaseModel] = create_model(
            f"{self.name}_arguments",
            __config__=ConfigDict(strict=True, extra="forbid"),
            **fields,
        )

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``{"type": "function", "function": {...}}`` schema."""
        params = _strip_titles(self.model.model_json_schema())
        params.setdefault("properties", {})
        params.setdefault("required", [])
        params.pop("additionalProperties", None)
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": params},
        }

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Validated arguments (explicitly given ones only); raise :class:`ValidationError` otherwise."""
        model = self.model.model_validate(arguments)
        return {k: getattr(model, k) for k in model.model_fields_set}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        bound = copy.copy(self)  # shares the validated model: binding must stay cheap
        bound.fn = self.fn.__get__(obj, objtype)
        return bound


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None) -> Any:
    """Decorator: make ``fn`` (a function or a method) a :class:`Tool`."""
    if fn is None:
        return lambda f: Tool(f, name, description)
    return Tool(fn, name, description)


def _describe_validation(tool_name: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        if err["type"] == "extra_forbidden":
            problems.append(f"unexpected argument '{where}'")
        elif err["type"] == "missing":
            problems.append(f"missing required argument '{where}'")
        else:
            got = type(err.get("input")).__name__
            problems.append(f"argument '{where}': {err['msg'].lower()} (got {got})")
    return f"Error: invalid arguments for '{tool_name}': " + "; ".join(problems)


class ToolSet:
    """The tools an episode offers, looked up by name; executes calls and turns every failure into text."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self.tools: dict[str, Tool] = {}
        for t in tools:
            if t.name in self.tools:
                raise ValueError(f"duplicate tool name {t.name!r}")
            self.tools[t.name] = t

    @classmethod
    def from_object(cls, obj: Any, names: Iterable[str] | None = None) -> ToolSet:
        """The :func:`tool` methods of ``obj`` (bound to it), optionally only those in ``names``."""
        wanted = set(names) if names is not None else None
        found = []
        for attr in dir(type(obj)):
            member = inspect.getattr_static(type(obj), attr, None)
            if isinstance(member, Tool) and (wanted is None or member.name in wanted):
                found.append(getattr(obj, attr))
        return cls(found)

    def schemas(self) -> list[dict[str, Any]]:
        """OpenAI schemas of every tool, in name order."""
        return [self.tools[name].schema() for name in sorted(self.tools)]

    def __contains__(self, name: str) -> bool:
        return name in self.tools

    def call(self, call: ToolCall, **injected: Any) -> ToolResult:
        """Run one call; unknown tools, bad arguments and :class:`ToolError` become error results."""
        t = self.tools.get(call.name)
        if t is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return ToolResult(
                name=call.name,
                call_id=call.id,
                ok=False,
                error="unknown_tool",
                content=f"Error: unknown tool '{call.name}'. Available tools: {known}.",
            )
        try:
            args = t.validate(call.arguments)
        except ValidationError as exc:
            return ToolResult(
                name=call.name,
                call_id=call.id,
                ok=False,
                error="invalid_arguments",
                content=_describe_validation(call.name, exc),
            )
        try:
            value = t(**args, **{k: v for k, v in injected.items() if k in t.injected})
        except ToolError as exc:
            return ToolResult(name=call.name, call_id=call.id, ok=False, error="tool_error", content=f"Error: {exc}")
        return ToolResult(name=call.name, call_id=call.id, value=value, content=render_value(value))


def render_value(value: Any) -> str:
    """Text the model reads for a tool's return value (strings as-is, everything else as JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, default=str, sort_keys=True)
