"""Java and JavaScript argument values: the model writes them as source text, the checker compares values.

BFCL asks for every Java/JavaScript argument as a string in that language's syntax (``"42L"``,
``"new ArrayList<>(Arrays.asList(1, 2))"``, ``"{a: 1}"``) and reads it back into a Python value for the
parameter's declared type. Text that does not read as that type stays a string, which the type check then
rejects unless the possible answer itself is a string (a variable name such as ``"mapController"``).
"""

from __future__ import annotations

import re
from typing import Any

JAVA_TYPES: dict[str, type] = {
    "byte": int,
    "short": int,
    "integer": int,
    "long": int,
    "float": float,
    "double": float,
    "boolean": bool,
    "char": str,
    "String": str,
    "any": str,
    "Array": list,
    "ArrayList": list,
    "Queue": list,
    "Stack": list,
    "Set": set,
    "HashMap": dict,
    "Hashtable": dict,
}
"""The Python type a Java parameter's value must have after reading."""

JS_TYPES: dict[str, type] = {
    "String": str,
    "any": str,
    "integer": int,
    "Bigint": int,
    "float": float,
    "Boolean": bool,
    "array": list,
    "dict": dict,
}
"""The Python type a JavaScript parameter's value must have after reading."""

COLLECTIONS = ("Array", "ArrayList", "array")
"""Declared types whose ``items`` type is checked too."""

_INT = re.compile(r"-?\d+")
_JAVA_FLOAT = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]")
_JAVA_DOUBLE = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_JAVA_LONG = re.compile(r"-?\d+[lL]")
_JS_FLOAT = re.compile(r"-?\d+(\.\d+)?")
_JS_BIGINT = re.compile(r"-?\d+n")


def _split_top(text: str) -> list[str]:
    """Comma-separated items of ``text``; commas inside quotes or brackets do not split."""
    items, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    last = "".join(current).strip()
    return [*items, last] if last or items else []


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'" else text


# -- Java -------------------------------------------------------------------------------------------------------
def java_literal(text: str) -> Any:
    """An element of a Java collection literal whose type is not declared: its natural Python value."""
    if text in ("true", "false"):
        return text == "true"
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    if _JAVA_LONG.fullmatch(text):
        return int(text[:-1])
    if _JAVA_FLOAT.fullmatch(text):
        return float(text[:-1])
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _java_element(text: str, nested: str | None) -> Any:
    if nested in ("char", "String"):
        return text[1:-1]  # the quotes around a char or string literal
    return java_value(text, nested) if nested else java_literal(text)


def java_value(text: str, declared: str, nested: str | None = None) -> Any:
    """Read Java source ``text`` as a value of the ``declared`` type; unreadable text stays a string."""
    if declared in ("byte", "short", "integer"):
        return int(text) if _INT.fullmatch(text) else text
    if declared == "long":
        return int(text[:-1]) if _JAVA_LONG.fullmatch(text) else text
    if declared == "float":
        return float(text[:-1]) if _JAVA_FLOAT.fullmatch(text) else text
    if declared == "double":
        return float(text) if _JAVA_DOUBLE.fullmatch(text) else text
    if declared == "boolean":
        return text == "true" if text in ("true", "false") else text
    if declared in ("char", "String", "any"):
        return text
    if declared == "Array":
        match = re.search(r"new\s+\w+\[\]\s*\{(.*?)\}", text)
        # Unlike ArrayList's, an array's String elements keep their quotes: BFCL reads them so (docs/bfcl.md).
        return (
            [java_value(x, nested) if nested else java_literal(x) for x in _split_top(match.group(1))]
            if match
            else text
        )
    if declared == "ArrayList":
        if match := re.search(r"new\s+ArrayList<\w*>\(Arrays\.asList\((.+?)\)\)", text):
            return [_java_element(x, nested) for x in _split_top(match.group(1))]
        if match := re.search(r"new\s+ArrayList<\w*>\(\)\s*\{\{\s*(.+?)\s*\}\}", text, re.DOTALL):
            return [_java_element(x.strip(), nested) for x in re.findall(r"add\((.+?)\)", match.group(1))]
        return [] if re.search(r"new\s+ArrayList<\w*>\(\)", text) else text
    if declared == "HashMap":
        if match := re.search(r"new\s+HashMap<.*?>\s*\(\)\s*\{\s*\{?\s*(.*?)\s*\}?\s*\}", text, re.DOTALL):
            pairs = re.findall(r"put\(\"(.*?)\",\s*(.*?)\)", match.group(1))
            return {key: java_literal(value.strip()) for key, value in pairs}
        return {} if re.search(r"new\s+HashMap<.*?>\s*\(\)", text) else text
    raise ValueError(f"reading Java type {declared!r} is not supported")


# -- JavaScript -------------------------------------------------------------------------------------------------
def js_literal(text: str) -> Any:
    """A JavaScript literal without a declared type: its natural Python value."""
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _js_array(text: str, nested: str | None) -> Any:
    match = re.fullmatch(r"\[(.*)\]|new\s+Array\((.*)\)", text, re.DOTALL)
    if not match:
        return text
    body = match.group(1) if match.group(1) is not None else match.group(2)
    items = _split_top(body)
    if nested is None or nested not in JS_TYPES:
        return [js_value(x, "array") if x.startswith("[") else js_literal(x) for x in items]
    return [js_value(x, nested) for x in items]


def _js_dict(text: str) -> Any:
    match = re.fullmatch(r"\{(.*)\}", text, re.DOTALL)
    if not match:
        return text
    out: dict[str, Any] = {}
    for item in _split_top(match.group(1)):
        key, sep, value = item.partition(":")
        if not sep:
            return text
        value = value.strip()
        if value.startswith("["):
            out[_unquote(key.strip())] = _js_array(value, None)
        elif value.startswith("{"):
            out[_unquote(key.strip())] = _js_dict(value)
        else:
            out[_unquote(key.strip())] = js_literal(_unquote(value))
    return out


def js_value(text: str, declared: str, nested: str | None = None) -> Any:
    """Read JavaScript source ``text`` as a value of the ``declared`` type; unreadable text stays a string."""
    text = text.strip() if declared in ("array", "dict") else text
    if declared == "String":
        return _unquote(text)
    if declared == "any":
        return text
    if declared == "integer":
        return int(text) if _INT.fullmatch(text) else text
    if declared == "float":
        return float(text) if _JS_FLOAT.fullmatch(text) else text
    if declared == "Bigint":
        return int(text[:-1]) if _JS_BIGINT.fullmatch(text) else text
    if declared == "Boolean":
        return text == "true" if text in ("true", "false") else text
    if declared == "array":
        return _js_array(text, nested)
    if declared == "dict":
        return _js_dict(text)
    raise ValueError(f"reading JavaScript type {declared!r} is not supported")
