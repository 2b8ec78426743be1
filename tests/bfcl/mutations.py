"""Systematic model outputs for one BFCL entry: its canonical answer and mutations of it.

Each mutation is a named, deterministic edit of the canonical calls; some keep the turn valid (another
acceptable value, string case and spacing, int for float, an omitted optional parameter, reordered parallel
calls), the others break it (wrong name, missing or unknown parameter, value outside the set, wrong type,
dropped or duplicated call). Both checkers judge every one, so the expected verdict never needs stating here.
"""

from __future__ import annotations

import copy
from typing import Any

from resrl_envs.bfcl.data import CategoryInfo, Entry
from resrl_envs.bfcl.gold import OPTIONAL, canonical_calls, source_value

Calls = list[tuple[str, dict[str, Any]]]


def _changed(value: Any) -> Any:
    """A value of the same kind that no acceptable-value list would also hold."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 7919
    if isinstance(value, float):
        return value + 1.5
    if isinstance(value, str):
        return value + "qz9"
    if isinstance(value, list):
        return [*value, value[-1] if value else "qz9"]
    if isinstance(value, dict):
        return {**value, "qz9": "qz9"}
    return "qz9"


def _other_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return 12345
    return "qz9"


def _first_param(entry: Entry, call_index: int = 0) -> tuple[str, str, list[Any], dict[str, Any]] | None:
    """(function, parameter, acceptable values, schema) of the first parameter with a non-omitted first value."""
    answer = entry.ground_truth or []
    if len(answer) <= call_index:
        return None
    ((name, params),) = answer[call_index].items()
    doc = next((f for f in entry.function if f["name"] == name), None)
    for param, options in params.items():
        if options and options[0] != OPTIONAL and doc is not None:
            return name, param, options, doc["parameters"]["properties"].get(param, {})
    return None


def mutations(entry: Entry, info: CategoryInfo) -> dict[str, Calls]:
    """Every applicable mutation of ``entry``'s canonical answer, by name (``canonical`` included)."""
    lang = info.language
    base = canonical_calls(entry.function, entry.ground_truth, lang)
    out: dict[str, Calls] = {"canonical": base}
    if not base:
        return out

    def edit(fn) -> Calls:
        calls = copy.deepcopy(base)
        fn(calls)
        return calls

    out["wrong_name"] = edit(lambda c: c.__setitem__(0, (c[0][0] + "_v2", c[0][1])))
    out["unknown_param"] = edit(lambda c: c[0][1].__setitem__("resrl_extra", "1" if lang != "python" else 1))
    doc = next((f for f in entry.function if f["name"] == base[0][0]), None)
    required = [p for p in (doc or {}).get("parameters", {}).get("required", []) if p in base[0][1]]
    if required:
        out["missing_required"] = edit(lambda c: c[0][1].pop(required[0]))
    ((_, params),) = (entry.ground_truth or [{}])[0].items()
    optional = [p for p, opts in params.items() if OPTIONAL in opts and p in base[0][1]]
    if optional:
        out["omit_optional"] = edit(lambda c: c[0][1].pop(optional[0]))
    first = _first_param(entry)
    if first is not None:
        _, param, options, prop = first

        def put(raw: Any) -> Any:
            return lambda c: c[0][1].__setitem__(param, source_value(raw, prop, lang))

        out["wrong_value"] = edit(put(_changed(options[0])))
        out["wrong_type"] = edit(
            lambda c: c[0][1].__setitem__(param, _other_type(options[0]) if lang == "python" else 1)
        )
        alternatives = [o for o in options[1:] if o != OPTIONAL]
        if alternatives:
            out["alt_value"] = edit(put(alternatives[0]))
        if isinstance(options[0], str) and options[0].strip():
            variant = options[0].upper().replace(" ", "  ") + " "
            out["string_variant"] = edit(put(variant))
        if isinstance(options[0], float) and options[0].is_integer() and lang == "python":
            out["int_for_float"] = edit(put(int(options[0])))
    if len(base) > 1:
        out["reordered"] = list(reversed(base))
        out["dropped_call"] = base[:-1]
    out["extra_call"] = [*base, base[0]]
    out["no_call"] = []
    out["name_case"] = edit(lambda c: c.__setitem__(0, (c[0][0].upper(), c[0][1])))
    return out
