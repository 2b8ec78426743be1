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
from resrl_envs.bfcl.domains import MULTI_TURN_CATEGORIES, DomainSet
from tests.bfcl.differential import oracle_python

ORACLE = Path(__file__).with_name("bfcl_executor_oracle.py")


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


def run(python: str, categories: tuple[str, ...] = MULTI_TURN_CATEGORIES) -> dict[str, dict[str, Any]]:
    """Per category: trajectories, how many agree, and the disagreeing (entry, mutation) pairs."""
    cases, lines = [], []
    for category in categories:
        for entry in entries(category):
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


def main() -> int:
    python = oracle_python()
    if python is None:
        print("no bfcl-eval virtualenv: run `bash scripts/fetch_bfcl.sh`", file=sys.stderr)
        return 1
    for category, s in run(str(python)).items():
        print(f"{category:26} {s['cases']:5} trajectories, {s['agree'] / s['cases']:.2%} agree")
        for entry_id, kind in s["disagreements"]:
            print(f"  {entry_id} {kind}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
