"""Tasks: one prompt for one environment, with its hidden ground truth; JSONL task sets."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from resrl.core.messages import Message

Split = Literal["train", "test", "eval"]
"""``eval`` marks evaluation-only sets (e.g. HumanEval) that never appear in training."""


class Task(BaseModel):
    """One task. ``answer`` is env-specific ground truth and is never shown to the policy."""

    id: str
    env_id: str
    messages: list[Message]
    tools: list[dict[str, Any]] = Field(default_factory=list)
    answer: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    split: Split = "train"


def write_jsonl(tasks: Iterable[Task], path: str | Path) -> int:
    """Write tasks one per line; returns how many."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for task in tasks:
            fh.write(task.model_dump_json() + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[Task]:
    """Read a JSONL task set; a bad line raises ``ValueError`` naming the file and line."""
    tasks = []
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                tasks.append(Task.model_validate(json.loads(line)))
            except (json.JSONDecodeError, ValidationError) as exc:
                raise ValueError(f"{path}:{lineno}: not a valid task: {exc}") from exc
    return tasks
