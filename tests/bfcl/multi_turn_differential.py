"""Execute BFCL multi-turn trajectories with BFCL's own executor (eval-based) and with our parsed dispatch.

Trajectories: every entry's ground truth, plus mutations of it (last call dropped, a string argument changed,
an unknown function, an unknown argument name). For each, the per-call result texts and the final instance
states must be the same in both. ``python -m tests.bfcl.multi_turn_differential`` prints the figures.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from resrl_envs.bfcl.data import package_dir
from resrl_envs.bfcl.domains import MULTI_TURN_CATEGORIES, DomainSet, parse_calls
from resrl_envs.bfcl.multi_turn import check_trajectory
from tests.bfcl.differential import oracle_python

ORACLE = Path(__file__).with_name("bfcl_executor_oracle.py")
CHECKER_ORACLE = Path(__file__).with_name("bfcl_multi_turn_oracle.py")


def entries(category: str) -> list[dict[str, Any]]:
    """The category's entries, each with its ground-truth turns under ``ground_truth``."""
    data = package_dir() / "data"
    with (data / "possible_answer" / f"BFCL_v4_{category}.json").open() as fh:
        truth = {row["id"]: row["ground_truth"] for row in map(json.loads, fh)}
    with (data / f"BFCL_v4_{category}.json").open() as fh:
        return [{**row, "ground_truth": truth[row["id"]]} for row in map(json.loads, fh)]


def _edit_first_string(call: str) -> str | None:
    tree = ast.parse(call, mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value += "_qz9"
            return ast.unparse(tree)
    return None


def _rename_first_keyword(call: str) -> str | None:
    tree = ast.parse(call, mode="eval")
    if isinstance(tree.body, ast.Call) and tree.body.keywords:
        tree.body.keywords[0].arg = "resrl_unknown"
        return ast.unparse(tree)
    return None


def trajectories(entry: dict[str, Any]) -> dict[str, list[list[str]]]:
    """The ground truth and its mutations, by name."""
    truth = entry["ground_truth"]
    out = {"ground_truth": truth}
    last = max((i for i, turn in enumerate(truth) if turn), default=None)
    if last is not None:
        dropped = copy.deepcopy(truth)
        dropped[last].pop()
        out["dropped_call"] = dropped
        for name, edit in (("changed_string", _edit_first_string), ("unknown_keyword", _rename_first_keyword)):
            for i, turn in enumerate(truth):
                edited = next((e for e in map(edit, turn) if e), None)
                if edited:
                    mutated = copy.deepcopy(truth)
                    j = next(k for k, c in enumerate(turn) if edit(c))
                    mutated[i][j] = edited
                    out[name] = mutated
                    break
        unknown = copy.deepcopy(truth)
        unknown[0] = [*unknown[0], "no_such_function(x=1)"]
        out["unknown_function"] = unknown
    return out


def ours(entry: dict[str, Any], category: str, turns: list[list[str]]) -> dict[str, Any]:
    domains = DomainSet(entry["involved_classes"], entry["initial_config"], long_context="long_context" in category)
    results = [[r for call in turn for r in domains.run(call)] for turn in turns]
    return {"results": results, "state": domains.state_json()}


def run(python: str, categories: tuple[str, ...] = MULTI_TURN_CATEGORIES, stride: int = 1) -> dict[str, dict[str, Any]]:
    """Per category: trajectories, how many agree, and the disagreeing (entry, mutation) pairs; every
    ``stride``-th entry only when ``stride`` > 1."""
    cases, lines = [], []
    for category in categories:
        for entry in entries(category)[::stride]:
            for kind, turns in trajectories(entry).items():
                cases.append((category, entry["id"], kind, ours(entry, category, turns)))
                keep = ("id", "initial_config", "involved_classes")
                lines.append(json.dumps({**{k: entry[k] for k in keep}, "category": category, "turns": turns}))
    proc = subprocess.run(
        [python, str(ORACLE)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    theirs = [json.loads(v) for v in proc.stdout.splitlines()]
    if len(theirs) != len(cases):
        raise RuntimeError(f"BFCL's executor answered {len(theirs)} of {len(cases)}: {proc.stderr[-2000:]}")
    summary: dict[str, dict[str, Any]] = {}
    for (category, entry_id, kind, mine), bfcl in zip(cases, theirs, strict=True):
        s = summary.setdefault(category, {"cases": 0, "agree": 0, "disagreements": []})
        s["cases"] += 1
        if json.loads(json.dumps(mine)) == bfcl:
            s["agree"] += 1
        else:
            s["disagreements"].append((entry_id, kind))
    return summary


def model_trajectories(entry: dict[str, Any]) -> dict[str, list[list[list[str]]]]:
    """Trajectories as a model plays them (turns → steps → calls): each of :func:`trajectories` with all of a
    turn's calls in one step, plus the ground truth one call per step, with a turn left empty, and with a
    turn's calls made one turn early."""
    out = {kind: [[turn] if turn else [] for turn in turns] for kind, turns in trajectories(entry).items()}
    truth = entry["ground_truth"]
    out["one_call_per_step"] = [[[call] for call in turn] for turn in truth]
    busy = [i for i, turn in enumerate(truth) if turn]
    if busy:
        emptied = copy.deepcopy(out["ground_truth"])
        emptied[busy[-1]] = []
        out["emptied_turn"] = emptied
    late = [i for i in busy if i > 0]
    if late:
        early = copy.deepcopy(out["ground_truth"])
        moved = early[late[0]]
        early[late[0]] = []
        early[late[0] - 1] = [*early[late[0] - 1], *moved]
        out["calls_one_turn_early"] = early
    return out


def run_checker(python: str, categories: tuple[str, ...] = MULTI_TURN_CATEGORIES) -> dict[str, dict[str, Any]]:
    """Per category: our trajectory verdicts against BFCL's multi_turn_checker."""
    cases, lines = [], []
    for category in categories:
        for entry in entries(category):
            for kind, turns in model_trajectories(entry).items():
                parsed = [[[c for text in step for c in parse_calls(text)] for step in turn] for turn in turns]
                verdict = check_trajectory(entry, category, parsed)
                cases.append((category, entry["id"], kind, verdict.valid, verdict.error_type))
                lines.append(json.dumps({"entry": entry, "category": category, "model_turns": turns}))
    proc = subprocess.run(
        [python, str(CHECKER_ORACLE)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    theirs = [json.loads(v) for v in proc.stdout.splitlines()]
    if len(theirs) != len(cases):
        raise RuntimeError(f"BFCL's checker answered {len(theirs)} of {len(cases)}: {proc.stderr[-2000:]}")
    summary: dict[str, dict[str, Any]] = {}
    for (category, entry_id, kind, valid, error_type), bfcl in zip(cases, theirs, strict=True):
        s = summary.setdefault(category, {"cases": 0, "agree": 0, "valid_bfcl": 0, "crashes": 0, "disagreements": []})
        s["cases"] += 1
        if "crash" in bfcl:
            s["crashes"] += 1
            s["disagreements"].append((entry_id, kind, error_type or "valid", bfcl["crash"]))
            continue
        s["valid_bfcl"] += bfcl["valid"]
        if bfcl["valid"] == valid:
            s["agree"] += 1
        else:
            s["disagreements"].append((entry_id, kind, error_type or "valid", bfcl["error_type"] or "valid"))
    return summary


def main() -> int:
    python = oracle_python()
    if python is None:
        print("no bfcl-eval virtualenv: run `bash scripts/fetch_bfcl.sh`", file=sys.stderr)
        return 1
    for category, s in run(str(python)).items():
        print(f"{category:26} {s['cases']:5} trajectories, {s['agree'] / s['cases']:.2%} agree")
        for entry_id, kind in s["disagreements"]:
            print(f"  {entry_id} {kind}")
    for category, s in run_checker(str(python)).items():
        print(
            f"{category:26} {s['cases']:5} scored trajectories, {s['valid_bfcl']} valid in BFCL, "
            f"{s['crashes']} BFCL crashes, {s['agree'] / s['cases']:.2%} agree"
        )
        for d in s["disagreements"]:
            print("  ", *d)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
