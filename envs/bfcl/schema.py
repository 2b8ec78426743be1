"""BFCL function docs as the model sees them: OpenAI tools (FC mode) or a system prompt (prompt mode).

BFCL writes its docs in its own type vocabulary (``dict``, ``float``, ``tuple``, ``any``, Java and JavaScript
type names). FC mode maps them onto JSON Schema types the way BFCL's FC handlers do, and (as OpenAI-style APIs
only accept ``^[a-zA-Z0-9_-]{1,64}$``) writes dotted names with underscores. Java and JavaScript parameters
become strings holding the value in that language's syntax, with a hint naming the original type.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from resrl_envs.bfcl.data import Language

# BFCL's type names onto JSON Schema's; a name missing here becomes "string", as in BFCL.
JSON_SCHEMA_TYPE = {
    "integer": "integer",
    "number": "number",
    "float": "number",
    "double": "number",
    "string": "string",
    "String": "string",
    "char": "string",
    "any": "string",
    "Any": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "Boolean": "boolean",
    "array": "array",
    "list": "array",
    "tuple": "array",
    "ArrayList": "array",
    "Array": "array",
    "Queue": "array",
    "Stack": "array",
    "dict": "object",
    "object": "object",
    "HashMap": "object",
    "Hashtable": "object",
    "byte": "integer",
    "short": "integer",
    "long": "integer",
    "Bigint": "integer",
}
_LANGUAGE_NAME = {"python": "Python 3", "java": "Java", "javascript": "JavaScript"}


def fc_name(name: str) -> str:
    """A function name as an OpenAI-style tool name (dots are not allowed there)."""
    return re.sub(r"\.", "_", name)


def _json_schema(prop: dict[str, Any]) -> dict[str, Any]:
    out = dict(prop)
    original = prop.get("type")
    out["type"] = JSON_SCHEMA_TYPE.get(original, "string") if original else "string"
    if original == "float":
        out["format"] = "float"
        out["description"] = prop.get("description", "") + " (A floating-point number.)"
    if "properties" in prop:
        out["properties"] = {k: _json_schema(v) for k, v in prop["properties"].items()}
    if "items" in prop:
        out["items"] = _json_schema(prop["items"])
    return out


def with_language_hints(functions: list[dict[str, Any]], language: Language) -> list[dict[str, Any]]:
    """The docs with a note on the language and, for Java/JavaScript, every parameter turned into a string."""
    functions = copy.deepcopy(functions)
    lang = _LANGUAGE_NAME[language]
    for fn in functions:
        fn["description"] = fn.get("description", "") + f" (This function is written in {lang}.)"
        if language == "python":
            continue
        for prop in fn["parameters"]["properties"].values():
            kind = prop.get("type", "any")
            what = f"any {lang} object" if kind == "any" else f"a {lang} {kind}"
            notes = [f"Pass {what} as a string holding its {lang} source text."]
            if "items" in prop:
                notes.append(f"Its elements are {lang} {prop.pop('items').get('type')} values.")
            if "properties" in prop and language == "javascript":
                notes.append(f"Its entries follow this schema: {json.dumps(prop.pop('properties'))}.")
            prop["description"] = " ".join([prop.get("description", ""), *notes]).strip()
            prop["type"] = "string"
    return functions


def openai_tools(functions: list[dict[str, Any]], language: Language) -> list[dict[str, Any]]:
    """FC mode: BFCL's docs as OpenAI ``tools`` (JSON Schema types, underscored names, language hints)."""
    tools = []
    for fn in with_language_hints(functions, language):
        params = dict(fn["parameters"])
        params["type"] = "object"
        params["properties"] = {k: _json_schema(v) for k, v in params.get("properties", {}).items()}
        tools.append(
            {
                "type": "function",
                "function": {"name": fc_name(fn["name"]), "description": fn["description"], "parameters": params},
            }
        )
    return tools


def prompt_mode_system(functions: list[dict[str, Any]], language: Language) -> str:
    """Prompt mode: the system prompt listing the functions (as JSON) and asking for a pythonic call list."""
    docs = json.dumps(with_language_hints(functions, language), ensure_ascii=False)
    return (
        "You compose function calls. Given the question and the functions below, make the call or calls that "
        "do what is asked. If no function fits, say so; if the question lacks a parameter a function needs, "
        "say so too.\n"
        "Reply with the calls only, written as a Python list: "
        "[func_name1(param_a=value_a, param_b=value_b), func_name2(param=value)]. Add no other text.\n\n"
        f"The functions you may call, in JSON:\n{docs}\n"
    )
