"""Run BFCL's own AST checker and ours over canonical answers and their mutations; compare the verdicts.

``python -m tests.bfcl.differential`` prints the agreement per category and every disagreement (the figures in
docs/bfcl.md come from it); ``tests/bfcl/test_differential.py`` asserts the agreement.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from resrl_envs.bfcl.checker import check_turn
from resrl_envs.bfcl.data import AST_CATEGORIES, load_entries
from tests.bfcl.mutations import mutations

ORACLE = Path(__file__).with_name("bfcl_oracle.py")


def oracle_python() -> Path | None:
    """The bfcl-eval virtualenv's Python (``RESRL_BFCL_VENV``, else scripts/fetch_bfcl.sh's cache), or None."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "resrl" / "bfcl" / "venv"
    venv = Path(os.environ.get("RESRL_BFCL_VENV", cache))
    python = venv / "bin" / "python"
    return python if python.exists() else None


class Disagreement(BaseModel):
    entry: str
    mutation: str
    ours: str
    bfcl: str


class CategoryResult(BaseModel):
    entries: int = 0
    cases: int = 0
    agree: int = 0
    bfcl_crashes: int = 0
    valid_bfcl: int = 0
    valid_ours: int = 0
    disagreements: list[Disagreement] = Field(default_factory=list)

    @property
    def agreement(self) -> float:
        judged = self.cases - self.bfcl_crashes
        return self.agree / judged if judged else 1.0


def run(python: str, categories: list[str] | None = None) -> dict[str, CategoryResult]:
    """Judge every case with both checkers; one BFCL process for all of them."""
    cases: list[tuple[str, str, str, dict[str, Any], bool, str]] = []
    lines = []
    for category in categories or [c for c, i in AST_CATEGORIES.items() if i.kind == "ast"]:
        info = AST_CATEGORIES[category]
        for entry in load_entries(category):
            for kind, calls in mutations(entry, info).items():
                ours = check_turn(info, entry.function, calls, entry.ground_truth)
                cases.append((category, entry.id, kind, {}, ours.valid, ours.error_type))
                output = [{name: args} for name, args in calls]
                case = {
                    "category": category,
                    "language": info.language,
                    "functions": entry.function,
                    "model_output": output,
                    "possible_answer": entry.ground_truth,
                }
                lines.append(json.dumps(case))
    proc = subprocess.run(
        [python, str(ORACLE)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    verdicts = [json.loads(v) for v in proc.stdout.splitlines()]
    if len(verdicts) != len(cases):
        raise RuntimeError(f"BFCL's checker answered {len(verdicts)} of {len(cases)} cases: {proc.stderr[-2000:]}")
    results: dict[str, CategoryResult] = collections.defaultdict(CategoryResult)
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for (category, entry_id, kind, _, ours, our_type), bfcl in zip(cases, verdicts, strict=True):
        r = results[category]
        seen[category].add(entry_id)
        r.cases += 1
        if "crash" in bfcl:
            r.bfcl_crashes += 1
            r.disagreements.append(
                Disagreement(entry=entry_id, mutation=kind, ours=our_type or "valid", bfcl="crash: " + bfcl["crash"])
            )
            continue
        r.valid_bfcl += bfcl["valid"]
        r.valid_ours += ours
        if bfcl["valid"] == ours:
            r.agree += 1
        else:
            r.disagreements.append(
                Disagreement(
                    entry=entry_id,
                    mutation=kind,
                    ours=our_type or "valid",
                    bfcl=bfcl["error_type"] if not bfcl["valid"] else "valid",
                )
            )
    for category, ids in seen.items():
        results[category].entries = len(ids)
    return dict(results)


def main() -> int:
    python = oracle_python()
    if python is None:
        print("no bfcl-eval virtualenv: run `bash scripts/fetch_bfcl.sh`", file=sys.stderr)
        return 1
    results = run(str(python))
    total = CategoryResult()
    print(f"{'category':24} {'entries':>7} {'cases':>6} {'bfcl valid':>10} {'crashes':>7} {'agreement':>9}")
    for category, r in results.items():
        print(f"{category:24} {r.entries:7} {r.cases:6} {r.valid_bfcl:10} {r.bfcl_crashes:7} {r.agreement:9.2%}")
        for field in ("entries", "cases", "agree", "bfcl_crashes", "valid_bfcl"):
            setattr(total, field, getattr(total, field) + getattr(r, field))
        total.disagreements += r.disagreements
    print(
        f"{'all':24} {total.entries:7} {total.cases:6} {total.valid_bfcl:10} {total.bfcl_crashes:7} "
        f"{total.agreement:9.2%}"
    )
    for d in total.disagreements:
        print(f"  {d.entry:32} {d.mutation:16} ours={d.ours:48} bfcl={d.bfcl}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
