"""Where ``task_id`` in ``POST /v1/sessions`` comes from: loaded JSONL task sets, or a seeded generator.

A ``task_id`` found in a task set loaded with ``--tasks`` names that task (its ``env_id`` must match). Otherwise
an id of the form ``<split>/<seed>`` (``train/3``, ``test/41``) is generated on demand with the env's own
``generate_tasks(split, 1, seed)``, so the same id always names the same task on every replica.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import get_args

from resrl.core.task import Split, Task, read_jsonl

log = logging.getLogger("resrl.server.env")
_SPLITS = set(get_args(Split))


class UnknownTask(LookupError):
    """The id names no task of this env."""


class TaskStore:
    """Task lookup by id for one server."""

    def __init__(self, files: Iterable[str | Path] = ()) -> None:
        self._tasks: dict[tuple[str, str], Task] = {}
        for path in files:
            tasks = read_jsonl(path)
            for task in tasks:
                self._tasks[(task.env_id, task.id)] = task
            log.info("loaded %d task(s) from %s", len(tasks), path)

    def __len__(self) -> int:
        return len(self._tasks)

    def get(self, env_id: str, task_id: str, generate: Callable[[Split, int, int], list[Task]]) -> Task:
        """The task ``task_id`` of ``env_id``; ``generate`` is the env's ``generate_tasks``."""
        found = self._tasks.get((env_id, task_id))
        if found is not None:
            return found
        split, _, seed = task_id.partition("/")
        if split not in _SPLITS or not seed.isdigit():
            raise UnknownTask(
                f"no task {task_id!r} for {env_id!r}: not in a loaded task set, and not of the form "
                f"'<split>/<seed>' with split in {sorted(_SPLITS)}"
            )
        return generate(split, 1, int(seed))[0]  # type: ignore[arg-type]
