"""Scoring a BFCL multi-turn trajectory with BFCL's rules: state and response checks after every turn.

A trajectory is, per user turn, the model's steps, each step the calls one assistant message made (steps
without calls are left out, as BFCL's decoding leaves them out). The model's calls run on one
:class:`~resrl_envs.bfcl.domains.DomainSet`, the ground truth's on another, both kept across turns. After each
turn whose ground truth makes calls:

* the model must have made at least one call in that turn;
* every domain's public attributes must equal the ground truth's (the state check);
* the ground truth's results of that turn must all appear among the model's results of all turns so far,
  in any order, each used once (the response check).

A turn whose ground truth is empty (the request cannot be done: a missing function or parameter) is not
checked; calls made there still change the state the next turns are checked against. BFCL v4 defines an
irrelevance check for such turns but does not apply it, and neither do we.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from resrl_envs.bfcl.domains import DomainSet

Call = tuple[str, list[Any], dict[str, Any]]
"""One parsed call: method name, positional and keyword arguments."""


class TurnVerdict(BaseModel):
    """Whether the trajectory is valid, and where and why it failed."""

    valid: bool
    error_type: str = ""
    error: str = ""
    turn: int | None = None


def _missing(expected: list[str], got: list[str]) -> list[str]:
    pool = list(got)
    missing = []
    for item in expected:
        if item in pool:
            pool.remove(item)
        else:
            missing.append(item)
    return missing


def check_trajectory(entry: dict[str, Any], category: str, model_turns: list[list[list[Call]]]) -> TurnVerdict:
    """Score ``model_turns`` (turns → steps → calls) against the entry's ground truth turns."""
    truth_turns: list[list[str]] = entry["ground_truth"]
    if len(model_turns) != len(truth_turns):
        return TurnVerdict(
            valid=False,
            error_type="multi_turn:force_terminated",
            error=f"{len(model_turns)} turns played, the entry has {len(truth_turns)}",
        )
    long_context = "long_context" in category
    model = DomainSet(entry["involved_classes"], entry["initial_config"], long_context=long_context)
    truth = DomainSet(entry["involved_classes"], entry["initial_config"], long_context=long_context)
    all_results: list[str] = []
    for turn, (steps, truth_calls) in enumerate(zip(model_turns, truth_turns, strict=True)):
        steps = [s for s in steps if s]
        all_results += [model.call(name, args, kwargs) for step in steps for name, args, kwargs in step]
        truth_results = [r for call in truth_calls for r in truth.run(call)]
        if not truth_calls:
            continue
        if not steps:
            return TurnVerdict(
                valid=False, error_type="multi_turn:empty_turn_model_response", error="no call", turn=turn
            )
        for name, expected in truth.state().items():
            got = model.state()[name]
            wrong = [k for k, v in expected.items() if got.get(k) != v]
            if wrong:
                return TurnVerdict(
                    valid=False,
                    error_type="multi_turn:instance_state_mismatch",
                    error=f"{name} differs in {', '.join(wrong)}",
                    turn=turn,
                )
        missing = _missing(truth_results, all_results)
        if missing:
            return TurnVerdict(
                valid=False,
                error_type="multi_turn:execution_response_mismatch",
                error=f"missing results: {missing!r:.200}",
                turn=turn,
            )
    return TurnVerdict(valid=True)
