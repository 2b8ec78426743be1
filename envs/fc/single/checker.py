"""The single-turn verifier: BFCL possible-answer semantics, with parallel calls matched optimally.

A ground truth is a list of expected calls in BFCL's possible-answer form, ``[{"get_weather": {"city":
["Oslo", "Oslo, Norway"], "unit": ["celsius", ""]}}]``: for every parameter of the tool, the list of
acceptable values, where :data:`OMIT` (``""``, BFCL's marker) means the optional argument may be left out.

A call is correct when its name matches, every argument is known to the expected call, every required
argument is present, each value has the schema's type (an int passes for a number; a bool never passes for an
int, a string never for a number) and equals one acceptable value. Strings compare after normalisation (case,
surrounding whitespace and the punctuation BFCL ignores), lists element-wise in order, dicts key-wise.
Parallel calls are paired with expected calls by an optimal assignment over a score matrix, so the order of
the calls never matters and a greedy first-fit cannot strand a call that had a valid partner.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from scipy.optimize import linear_sum_assignment

from resrl.core.messages import ToolCall

OMIT = ""
"""In a list of acceptable values: the (optional) argument may be omitted. BFCL's convention."""

# Characters BFCL's string standardisation drops before comparing (spaces, commas, dots, slashes, dashes,
# underscores, asterisks, carets), so "New York" == "new-york" and "2026-03-14" == "20260314".
_IGNORED = re.compile(r"[\s,./\-_*^]")
# A full match always outranks any number of partial ones in the assignment.
_FULL_MATCH_BONUS = 1000.0


class ExpectedCall(BaseModel):
    """One expected call: the tool name and, per parameter, the acceptable values."""

    name: str
    arguments: dict[str, list[Any]] = Field(default_factory=dict)

    def required(self) -> list[str]:
        """Parameters that must be present (their acceptable values lack the :data:`OMIT` marker)."""
        return [k for k, values in self.arguments.items() if not any(_is_omit(v) for v in values)]


class CallScore(BaseModel):
    """How one model call fares against one expected call; each part in [0, 1]."""

    name: float = 0.0
    keys: float = 0.0
    values: float = 0.0
    errors: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the call is fully correct."""
        return self.name == 1.0 and not self.errors

    @property
    def partial(self) -> float:
        """The ToolRL-like partial credit of this pair."""
        return (self.name + self.keys + self.values) / 3.0


class Verdict(BaseModel):
    """The score of one assistant turn."""

    correct: bool
    reward_binary: float
    reward_shaped: float
    components: dict[str, float]
    errors: list[str] = Field(default_factory=list)
    pairs: list[tuple[int, int]] = Field(default_factory=list, description="(expected index, call index)")

    def reward(self, mode: str) -> float:
        """The reward under ``mode`` (``binary`` or ``shaped``)."""
        return self.reward_shaped if mode == "shaped" else self.reward_binary


def parse_answer(answer: Any) -> list[ExpectedCall]:
    """Read a BFCL-style possible answer (a list of one-key dicts); ``ValueError`` on another shape."""
    if not isinstance(answer, list):
        raise ValueError(f"a possible answer is a list of {{name: {{arg: [values]}}}} dicts, got {answer!r:.80}")
    calls = []
    for entry in answer:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError(f"each expected call is a one-key dict {{name: {{arg: [values]}}}}, got {entry!r:.80}")
        ((name, arguments),) = entry.items()
        calls.append(ExpectedCall(name=name, arguments=arguments))
    return calls


def normalize_string(text: str) -> str:
    """Lower-case ``text`` and drop whitespace and the punctuation BFCL ignores."""
    return _IGNORED.sub("", text.lower()).replace("'", '"')


def _is_omit(value: Any) -> bool:
    return isinstance(value, str) and value == OMIT


def values_equal(value: Any, accepted: Any) -> bool:
    """Whether a (type-checked) model value equals one acceptable value."""
    if isinstance(accepted, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(accepted, bool) and value == accepted
    if isinstance(accepted, int | float):
        return isinstance(value, int | float) and math.isclose(value, accepted, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(accepted, str):
        return isinstance(value, str) and normalize_string(value) == normalize_string(accepted)
    if isinstance(accepted, list):
        return (
            isinstance(value, list)
            and len(value) == len(accepted)
            and all(values_equal(v, a) for v, a in zip(value, accepted, strict=True))
        )
    if isinstance(accepted, dict):
        return (
            isinstance(value, dict)
            and set(value) == set(accepted)
            and all(values_equal(value[k], accepted[k]) for k in accepted)
        )
    return value == accepted


_JSON_TYPES = {
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def type_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """Why ``value`` does not fit the JSON ``schema`` (the subset pydantic emits), or None."""
    for key in ("anyOf", "oneOf"):
        if key in schema:
            problems = [type_problem(value, sub) for sub in schema[key]]
            return None if any(p is None for p in problems) else " or ".join(p for p in problems if p)
    # Membership without Python's True == 1: a bool is never a member of an integer enum.
    if "enum" in schema and not any(
        value == e and isinstance(value, bool) == isinstance(e, bool) for e in schema["enum"]
    ):
        return f"must be one of {schema['enum']}, got {value!r:.60}"
    wanted = schema.get("type")
    if wanted is None:
        return None
    types = wanted if isinstance(wanted, list) else [wanted]
    if not any(_JSON_TYPES.get(t, lambda v: True)(value) for t in types):
        return f"must be {' or '.join(types)}, got {type(value).__name__}"
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problem = type_problem(item, schema["items"])
            if problem:
                return f"item {i} {problem}"
    return None


def score_call(call: ToolCall, expected: ExpectedCall, parameters: dict[str, Any] | None) -> CallScore:
    """Score one call against one expected call; ``parameters`` is the tool's JSON schema (may be None)."""
    if call.name != expected.name:
        return CallScore(errors=[f"called '{call.name}' where '{expected.name}' was expected"])
    properties = (parameters or {}).get("properties", {})
    given = set(call.arguments)
    known = set(expected.arguments)
    required = set(expected.required())
    errors = [f"'{call.name}': unexpected argument '{k}'" for k in sorted(given - known)]
    errors += [f"'{call.name}': missing required argument '{k}'" for k in sorted(required - given)]
    checked = sorted(required | (given & known))
    good = 0
    for key in checked:
        if key not in given:
            continue
        value = call.arguments[key]
        problem = type_problem(value, properties[key]) if key in properties else None
        if problem:
            errors.append(f"'{call.name}': argument '{key}' {problem}")
        elif any(values_equal(value, a) for a in expected.arguments[key] if not _is_omit(a)):
            good += 1
        else:
            errors.append(f"'{call.name}': argument '{key}' has a wrong value {value!r:.60}")
    union = given | required
    return CallScore(
        name=1.0,
        keys=len(given & known) / len(union) if union else 1.0,
        values=good / len(checked) if checked else 1.0,
        errors=errors,
    )


def score_turn(calls: list[ToolCall], answer: Any, tools: list[dict[str, Any]]) -> Verdict:
    """Score a turn's calls against a possible answer; ``tools`` are the offered OpenAI function schemas."""
    expected = parse_answer(answer)
    schemas = {t["function"]["name"]: t["function"].get("parameters") for t in tools if "function" in t}
    n_exp, n_got = len(expected), len(calls)
    errors = [
        f"unknown tool '{c.name}'; the offered tools are: {', '.join(sorted(schemas)) or 'none'}"
        for c in calls
        if c.name not in schemas
    ]
    if n_exp == 0 and n_got == 0:
        ones = {"name": 1.0, "keys": 1.0, "values": 1.0, "count": 1.0}
        return Verdict(correct=True, reward_binary=1.0, reward_shaped=1.0, components=ones)
    if n_exp == 0:
        errors.append(f"no offered tool fits this request, but the turn made {n_got} call(s); answer in text")
    elif n_got == 0:
        errors.append(f"expected {n_exp} tool call(s), the turn made none")
    scores = [[score_call(c, e, schemas.get(e.name)) for c in calls] for e in expected]
    pairs: list[tuple[int, int]] = []
    if n_exp and n_got:
        matrix = np.array([[s.partial + _FULL_MATCH_BONUS * s.ok for s in row] for row in scores])
        rows, cols = linear_sum_assignment(matrix, maximize=True)
        pairs = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]
    matched = [scores[i][j] for i, j in pairs]
    for i, j in pairs:
        errors += [f"call {j + 1}: {e}" for e in scores[i][j].errors]
    paired_exp, paired_got = {i for i, _ in pairs}, {j for _, j in pairs}
    errors += [f"missing a call to '{expected[i].name}'" for i in range(n_exp) if i not in paired_exp]
    if n_exp:
        errors += [f"call {j + 1} to '{calls[j].name}' was not asked for" for j in range(n_got) if j not in paired_got]
    denom = max(n_exp, n_got)
    components = {
        "name": sum(s.name for s in matched) / denom,
        "keys": sum(s.keys for s in matched) / denom,
        "values": sum(s.values for s in matched) / denom,
        "count": min(n_exp, n_got) / denom,
    }
    correct = n_exp == n_got and all(s.ok for s in matched) and not errors
    shaped = 1.0 if correct else (components["name"] + components["keys"] + components["values"]) / 3.0
    return Verdict(
        correct=correct,
        reward_binary=float(correct),
        reward_shaped=min(shaped, 1.0),
        components=components,
        errors=errors,
        pairs=pairs,
    )
