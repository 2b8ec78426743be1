"""Our checker with BFCL's semantics: is one assistant turn valid for one BFCL entry?

The rules, as BFCL's AST evaluation applies them (our own implementation; ``docs/bfcl.md`` has the details
and the measured agreement with BFCL's checker):

* A possible answer lists, per parameter, the acceptable values; ``""`` among them means it may be omitted.
* Parameters the doc requires must be present; a parameter outside the doc or the possible answer is an error;
  a parameter of the possible answer without ``""`` must be present.
* Types follow the doc's declared type exactly (``bool`` is no ``int``), except that a Python ``int`` passes
  for ``float`` and a tuple for ``tuple``. A value of the possible answer's own type passes too: the answer
  then names a variable and is compared exactly.
* Strings compare after dropping spaces and ``,./-_*^`` and lower-casing (``'`` reads as ``"``); lists compare
  element-wise after the same treatment of their string elements; dicts key by key.
* Java and JavaScript arguments are strings in that language's syntax, read by :mod:`resrl_envs.bfcl.langs`.
* ``parallel*`` categories match calls to expected calls in any order; ``multiple`` wants one call to the
  right function; ``irrelevance`` wants no call; ``relevance`` wants at least one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from resrl_envs.bfcl.data import AST_CATEGORIES, CategoryInfo, Language
from resrl_envs.bfcl.langs import COLLECTIONS, JAVA_TYPES, JS_TYPES, java_value, js_value

PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
"""The Python type a value of each BFCL (Python) type must have."""

OPTIONAL = ""
_IGNORED = re.compile(r"[ ,./\-_*^]")

Call = tuple[str, dict[str, Any]]
"""One call as the checker sees it: the (original, dotted) function name and the arguments."""


class Verdict(BaseModel):
    """Whether a turn is valid, and BFCL's kind of error when it is not."""

    valid: bool
    error_type: str = ""
    error: str = ""


_OK = Verdict(valid=True)


def _fail(error_type: str, error: str) -> Verdict:
    return Verdict(valid=False, error_type=error_type, error=error)


def standardize(text: str) -> str:
    """A string as BFCL compares it: without spaces and ``,./-_*^``, lower-cased, ``'`` read as ``"``."""
    return _IGNORED.sub("", text).lower().replace("'", '"')


def _std(value: Any) -> Any:
    return standardize(value) if type(value) is str else value


def _answer_type(possible: Sequence[Any]) -> type | None:
    """The type of the first acceptable value that is not the omission marker."""
    return next((type(v) for v in possible if v != OPTIONAL), None)


def _item_type_ok(item: Any, option: Sequence[Any], nested: type) -> bool:
    answer_type = _answer_type(option)
    return type(item) is nested or (answer_type is not None and type(item) is answer_type)


def _type_check(value: Any, possible: list[Any], expected: type, nested: type | None) -> tuple[bool, bool, str]:
    """(type is acceptable, the answer names a variable, error type)."""
    answer_type = _answer_type(possible)
    variable = answer_type is not None and answer_type is not expected
    error_type = "type_error:simple"
    if type(value) is expected:
        if nested is None:
            return True, variable, ""
        # Each option that is a list must accept every item's type; an option that is not a list accepts any.
        if any(not isinstance(o, list) or all(_item_type_ok(i, o, nested) for i in value) for o in possible):
            return True, variable, ""
        error_type = "type_error:nested"
    if answer_type is not None and type(value) is answer_type:
        return True, True, ""
    return False, variable, error_type


def _dict_ok(value: dict[str, Any], options: list[Any]) -> bool:
    for option in options:
        if option == OPTIONAL:
            continue
        known = all(k in option and _std(v) in [_std(a) for a in option[k]] for k, v in value.items())
        if known and all(k in value or OPTIONAL in vals for k, vals in option.items()):
            return True
    return False


def _list_of_dicts_ok(value: list[Any], options: list[Any]) -> bool:
    return any(
        len(value) == len(option)
        and all(isinstance(v, dict) and _dict_ok(v, [o]) for v, o in zip(value, option, strict=True))
        for option in options
    )


def _list_ok(value: list[Any], options: list[Any]) -> bool:
    wanted = [_std(v) for v in value]
    return any(isinstance(o, list | str) and wanted == [_std(a) for a in o] for o in options)


def _declared(prop: dict[str, Any], language: Language) -> tuple[type, type | None]:
    declared = prop["type"]
    table = {"python": PYTHON_TYPES, "java": JAVA_TYPES, "javascript": JS_TYPES}[language]
    if declared not in table:
        raise ValueError(f"BFCL type {declared!r} has no {language} reading")
    collections = ("array", "tuple") if language == "python" else COLLECTIONS
    nested = None
    if declared in collections:
        item_type = prop["items"]["type"]
        if item_type not in table:
            raise ValueError(f"BFCL item type {item_type!r} has no {language} reading")
        nested = table[item_type]
    return table[declared], nested


def check_call(doc: dict[str, Any], call: Call, expected: dict[str, list[Any]], language: Language) -> Verdict:
    """One call against one expected call (``expected`` maps each parameter to its acceptable values)."""
    name, args = call
    if name != doc["name"]:
        return _fail("simple_function_checker:wrong_func_name", f"expected a call to {doc['name']!r}, got {name!r}")
    props = doc["parameters"]["properties"]
    for param in doc["parameters"].get("required", []):
        if param not in args:
            return _fail("simple_function_checker:missing_required", f"missing required parameter {param!r}")
    for param, value in args.items():
        if param not in props or param not in expected:
            return _fail("simple_function_checker:unexpected_param", f"unexpected parameter {param!r}")
        possible = expected[param]
        try:
            want, nested = _declared(props[param], language)
        except ValueError as exc:
            return _fail("checker:unsupported_type", str(exc))
        if language != "python":
            if type(value) is not str:
                return _fail(f"type_error:{'java' if language == 'java' else 'js'}", f"{param!r} must be a string")
            declared = props[param]["type"]
            item = props[param]["items"]["type"] if declared in COLLECTIONS else None
            try:
                value = (java_value if language == "java" else js_value)(value, declared, item)
            except ValueError as exc:
                return _fail("checker:unsupported_type", str(exc))
        elif props[param]["type"] == "float" and type(value) is int:
            value = float(value)  # Python's int passes for float
        if type(value) is tuple:
            value = list(value)
        ok, variable, error_type = _type_check(value, possible, want, nested)
        if not ok:
            return _fail(error_type, f"{param!r}: wrong type {type(value).__name__}")
        if variable:
            good = value in possible
        elif want is dict:
            good = _dict_ok(value, possible)
        elif want is list and nested is dict:
            good = _list_of_dicts_ok(value, possible)
        elif want is str:
            good = standardize(value) in [standardize(a) for a in possible if type(a) is str]
        elif want is list:
            good = _list_ok(value, possible)
        else:
            good = value in possible
        if not good:
            return _fail("value_error", f"{param!r}: {value!r:.80} is not among {possible!r:.120}")
    for param, possible in expected.items():
        if param not in args and OPTIONAL not in possible:
            return _fail("simple_function_checker:missing_optional", f"parameter {param!r} must be given")
    return _OK


def _doc(functions: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for fn in functions:
        if fn["name"] == name:
            return fn
    raise ValueError(f"the possible answer calls {name!r}, which the entry's functions lack")


def _matches(calls: list[Call], functions: list[dict[str, Any]], answer: list[dict[str, Any]], lang: Language) -> bool:
    """Whether every expected call can be paired with its own valid call (a perfect bipartite matching)."""
    ok = [
        [check_call(_doc(functions, name), c, params, lang).valid for c in calls]
        for exp in answer
        for name, params in exp.items()
    ]
    partner: dict[int, int] = {}  # call index -> expected index

    def augment(i: int, seen: set[int]) -> bool:
        for j, good in enumerate(ok[i]):
            if good and j not in seen:
                seen.add(j)
                if j not in partner or augment(partner[j], seen):
                    partner[j] = i
                    return True
        return False

    return all(augment(i, set()) for i in range(len(ok)))


def check_turn(
    category: str | CategoryInfo,
    functions: list[dict[str, Any]],
    calls: list[Call],
    ground_truth: list[dict[str, Any]] | None,
) -> Verdict:
    """Score one turn's calls (empty when the turn made none or could not be read) for one entry."""
    info = AST_CATEGORIES[category] if isinstance(category, str) else category
    if info.kind == "irrelevance":
        return _OK if not calls else _fail("irrelevance_error:decoder_success", "no function should be called")
    if info.kind == "relevance":
        return _OK if calls else _fail("relevance_error:decoder_failed", "a function call was expected")
    answer = ground_truth or []
    if len(calls) != len(answer):
        return _fail("wrong_count", f"expected {len(answer)} call(s), got {len(calls)}")
    if "parallel" in info.name:
        if _matches(calls, functions, answer, info.language):
            return _OK
        return _fail("parallel_function_checker_no_order:cannot_find_match", "the calls do not match the answer")
    ((name, params),) = answer[0].items()
    return check_call(_doc(functions, name), calls[0], params, info.language)
