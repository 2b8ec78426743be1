"""Evaluation on the test split: Avg@k, unbiased Pass@k (and its curve over k), per environment."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from resrl.metrics import pass_at_k
from resrl.rollout.trajectory import Trajectory


def score_groups(trajectories: list[Trajectory], k: int, threshold: float) -> dict[str, Any]:
    """Avg@k, Pass@k and the Pass@j curve (j = 1..k) over the groups of ``trajectories``.

    Infrastructure failures are dropped, not counted as misses; a group's Pass@j uses its remaining samples.
    """
    groups: dict[str, list[bool]] = defaultdict(list)
    envs: dict[str, str] = {}
    masked = 0
    for t in trajectories:
        if t.infra_error is not None:
            masked += 1
            continue
        groups[t.group_id].append(t.reward >= threshold)
        envs[t.group_id] = t.env_id
    if not groups:
        return {"avg_at_k": 0.0, "pass_at_k": 0.0, "pass_curve": [0.0] * k, "k": k, "tasks": 0, "infra_masked": masked}
    curve = [
        sum(pass_at_k(len(s), sum(s), min(j, len(s))) for s in groups.values()) / len(groups) for j in range(1, k + 1)
    ]
    result: dict[str, Any] = {
        "avg_at_k": sum(sum(s) / len(s) for s in groups.values()) / len(groups),
        "pass_at_k": curve[-1],
        "pass_curve": curve,
        "k": k,
        "tasks": len(groups),
        "infra_masked": masked,
    }
    by_env: dict[str, list[list[bool]]] = defaultdict(list)
    for gid, s in groups.items():
        by_env[envs[gid]].append(s)
    for env_id, sets in sorted(by_env.items()):
        result[f"avg_at_k/{env_id}"] = sum(sum(s) / len(s) for s in sets) / len(sets)
    return result
