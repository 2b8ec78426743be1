"""Canonical answers: one valid turn per BFCL entry, written the way a model would write it.

For each parameter the first acceptable value is used (a parameter whose first value is the omission marker is
left out). Java and JavaScript values are written as source text of the declared type, which
:mod:`resrl_envs.bfcl.langs` reads back.
"""

from __future__ import annotations

import json
from typing import Any

from resrl_envs.bfcl.data import Language

OPTIONAL = ""
_JAVA_ARRAY_ELEMENT = {
    "integer": "int",
    "long": "long",
    "double": "double",
    "float": "float",
    "boolean": "boolean",
    "String": "String",
}


def _plain(option: Any) -> Any:
    """A dict option's acceptable values collapsed onto their first, dropping keys that may be omitted."""
    if isinstance(option, dict):
        return {k: vals[0] for k, vals in option.items() if isinstance(vals, list) and vals and vals[0] != OPTIONAL}
    return option


def _python_value(option: Any, prop: dict[str, Any]) -> Any:
    if prop.get("type") == "dict":
        return _plain(option)
    if prop.get("type") == "array" and prop.get("items", {}).get("type") == "dict" and isinstance(option, list):
        return [_plain(d) for d in option]
    return option


def java_source(value: Any, declared: str, nested: str | None = None) -> str:
    """``value`` as Java source text of the ``declared`` type."""
    if (isinstance(value, str) and declared not in ("Array", "ArrayList", "HashMap")) or declared in (
        "String",
        "any",
        "char",
    ):
        return value if isinstance(value, str) else json.dumps(value)
    if declared == "boolean" and isinstance(value, bool):
        return "true" if value else "false"
    if declared == "long":
        return f"{value}L"
    if declared == "float":
        return f"{float(value)!r}f"
    if declared == "double":
        return repr(float(value))
    if declared in ("Array", "ArrayList") and isinstance(value, list):
        if declared == "Array":  # BFCL compares an array's String elements with their quotes: write none
            items = ", ".join(str(v) if nested in ("String", "char") else _java_element(v, nested) for v in value)
            return f"new {_JAVA_ARRAY_ELEMENT.get(nested or '', 'Object')}[]{{{items}}}"
        items = ", ".join(_java_element(v, nested) for v in value)
        return f"new ArrayList<>(Arrays.asList({items}))" if value else "new ArrayList<>()"
    if declared == "HashMap" and isinstance(value, dict):
        puts = " ".join(f'put("{k}", {_java_element(v, None)});' for k, v in _plain(value).items())
        return f"new HashMap<String, Object>() {{{{ {puts} }}}}"
    return str(value)


def _java_element(value: Any, nested: str | None) -> str:
    if nested in ("String", "char") or (nested is None and isinstance(value, str)):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return java_source(value, nested) if nested else str(value)


def _js_quote(text: str) -> str:
    return f'"{text}"' if "'" in text else f"'{text}'"


def _js_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _js_quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(_js_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_js_literal(v)}" for k, v in value.items()) + "}"
    return str(value)


def js_source(value: Any, declared: str) -> str:
    """``value`` as JavaScript source text of the ``declared`` type."""
    if (isinstance(value, str) and declared != "dict") or declared in ("String", "any"):
        return value if isinstance(value, str) else json.dumps(value)
    if declared == "dict":
        return _js_literal(_plain(value)) if isinstance(value, dict) else str(value)
    return _js_literal(value)


def source_value(value: Any, prop: dict[str, Any], language: Language) -> Any:
    """A model's argument for ``prop`` holding ``value``: the value itself (Python) or its source text."""
    if language == "python":
        return _python_value(value, prop)
    declared = prop.get("type", "any")
    if language == "java":
        return java_source(value, declared, prop.get("items", {}).get("type"))
    return js_source(value, declared)


def canonical_calls(
    functions: list[dict[str, Any]], answer: list[dict[str, Any]] | None, language: Language
) -> list[tuple[str, dict[str, Any]]]:
    """The calls of one valid turn for a possible answer (dotted function names, as in BFCL's docs)."""
    docs = {f["name"]: f for f in functions}
    calls = []
    for expected in answer or []:
        ((name, params),) = expected.items()
        props = docs[name]["parameters"]["properties"] if name in docs else {}
        args = {
            p: source_value(options[0], props.get(p, {}), language)
            for p, options in params.items()
            if options and options[0] != OPTIONAL
        }
        calls.append((name, args))
    return calls
