"""BFCL's summary layout for an evaluation over ``bfcl/*``: non-live AST, live AST, multi-turn, (ir)relevance.

The aggregation follows BFCL v4's leaderboard: non-live AST is the plain mean of simple (itself the mean of
Python, Java and JavaScript), multiple, parallel and parallel-multiple; live AST weighs its four categories by
their entry counts; multi-turn is the plain mean of its four; irrelevance the mean of the non-live and live
irrelevance scores. BFCL's overall weighs non-live, live, irrelevance, multi-turn and agentic 10:10:10:30:40.
We serve no agentic category (``LEFT_OUT``), so two overall figures are given: BFCL's (agentic counted as 0,
as BFCL counts a category it did not run) and one over the parts we run (10:10:10:30). A category missing
from the evaluation counts as 0 and its group is marked incomplete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

SUMMARY_FILE = "bfcl_summary.json"


class Score(BaseModel):
    """An accuracy over ``count`` entries; ``complete`` is False when a part of it was not evaluated."""

    accuracy: float = 0.0
    count: int = 0
    complete: bool = False


def _mean(parts: list[Score]) -> Score:
    return Score(
        accuracy=sum(p.accuracy for p in parts) / len(parts),
        count=sum(p.count for p in parts),
        complete=all(p.complete for p in parts),
    )


def _weighted(parts: list[Score]) -> Score:
    count = sum(p.count for p in parts)
    accuracy = sum(p.accuracy * p.count for p in parts) / count if count else 0.0
    return Score(accuracy=accuracy, count=count, complete=all(p.complete for p in parts))


def _percent(parts: list[Score], weights: list[float]) -> Score:
    accuracy = sum(p.accuracy * w for p, w in zip(parts, weights, strict=True)) / sum(weights)
    return Score(accuracy=accuracy, count=sum(p.count for p in parts), complete=all(p.complete for p in parts))


def bfcl_summary(scores: dict[str, Score]) -> dict[str, Score]:
    """The summary rows from per-category scores (keys are BFCL category names, e.g. ``live_simple``)."""

    def get(name: str) -> Score:
        return scores.get(name, Score())

    simple = _mean([get("simple_python"), get("simple_java"), get("simple_javascript")])
    non_live = _mean([simple, get("multiple"), get("parallel"), get("parallel_multiple")])
    live = _weighted([get(c) for c in ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")])
    multi_turn = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context")
    multi = _mean([get(c) for c in multi_turn])
    irrelevance = _mean([get("irrelevance"), get("live_irrelevance")])
    agentic = Score()
    return {
        "non_live_ast": non_live,
        "non_live_simple": simple,
        "live_ast": live,
        "multi_turn": multi,
        "irrelevance": irrelevance,
        "relevance": get("live_relevance"),
        "overall_bfcl_weights": _percent([non_live, live, irrelevance, multi, agentic], [10, 10, 10, 30, 40]),
        "overall_served": _percent([non_live, live, irrelevance, multi], [10, 10, 10, 30]),
    }


def scores_from_eval(result: dict[str, Any]) -> dict[str, Score]:
    """Per-category scores from a ``resrl eval`` result (``envs`` → ``bfcl/<category>`` → success rate)."""
    out = {}
    for env_id, row in result.get("envs", {}).items():
        if env_id.startswith("bfcl/"):
            out[env_id.removeprefix("bfcl/")] = Score(
                accuracy=float(row["success_rate"]), count=int(row["tasks"]), complete=True
            )
    return out


def format_summary(summary: dict[str, Score]) -> str:
    """The summary as a fixed-width table (``*`` marks a group with a category not evaluated)."""
    lines = [f"{'BFCL v4 summary':24} {'accuracy':>9} {'entries':>8}"]
    for name, s in summary.items():
        lines.append(f"{name:24} {s.accuracy:9.2%} {s.count:8}{'' if s.complete else ' *'}")
    lines.append("* a category of this group was not evaluated and counts as 0 (agentic is never served)")
    return "\n".join(lines)


def eval_summary(result: dict[str, Any], out_dir: str | Path) -> None:
    """``resrl eval`` hook: when ``bfcl/*`` envs were evaluated, print BFCL's layout and write its JSON."""
    scores = scores_from_eval(result)
    if not scores:
        return
    summary = bfcl_summary(scores)
    path = Path(out_dir) / SUMMARY_FILE
    payload = {
        "categories": {k: v.model_dump() for k, v in scores.items()},
        "summary": {k: v.model_dump() for k, v in summary.items()},
    }
    path.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    print(format_summary(summary))
    print(f"wrote {path}")
