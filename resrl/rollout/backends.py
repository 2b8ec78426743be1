"""The policy backend registry: one line per backend, plus the ``resrl.backends`` entry-point group.

A backend is a class in its own module that implements :class:`~resrl.rollout.policy.Policy` and says three
things about itself:

* ``shares_weights`` (attribute): True when it samples with the trainer's own module, so an optimizer step
  reaches it with no sync (``hf``); False when :meth:`update_weights` must push the new weights (``vllm``,
  ``servers``).
* ``from_spec(target, **kwargs)`` (classmethod): the policy ``load_policy("NAME:TARGET")`` builds.
* ``for_trainer(ctx)`` (classmethod, optional): the policy the trainer builds from a :class:`TrainerContext`.
  A backend without it cannot be ``rollout.backend``.

Adding a backend: its file, and one line in :data:`BACKENDS` (or an entry point
``[project.entry-points."resrl.backends"] name = "pkg.module:Class"`` in a third-party package).
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

ENTRY_POINT_GROUP = "resrl.backends"

BACKENDS: dict[str, str] = {
    "hf": "resrl.rollout.hf:HFPolicy",
    "vllm": "resrl.rollout.vllm:VLLMPolicy",
    "openai": "resrl.rollout.openai_server:OpenAIPolicy",
    "gold": "resrl.rollout.scripted:GoldPolicy",
    "servers": "resrl.rollout.servers:ServerPoolPolicy",
}


@dataclass
class TrainerContext:
    """What the trainer hands a backend's ``for_trainer``: its module and tokenizer, where the checkpoint lives,
    the run's seed and out folder, and the ``rollout`` config section (``engine_kwargs``, ``servers``, ...)."""

    model: Any
    tokenizer: Any
    model_path: str
    seed: int
    rollout: Any
    out_dir: Path = field(default_factory=lambda: Path("."))


def backend_names() -> list[str]:
    """Every backend name: the built-in ones, then those of installed packages."""
    names = list(BACKENDS)
    names.extend(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in BACKENDS)
    return names


def backend_class(name: str) -> Any:
    """The class registered as ``name``; a clear error naming the known ones otherwise."""
    target = BACKENDS.get(name)
    if target is None:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not found:
            close = difflib.get_close_matches(name, backend_names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown policy backend {name!r}{hint} (known: {', '.join(backend_names())})")
        return found[0].load()
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def trainer_policy(name: str, ctx: TrainerContext) -> Any:
    """The policy backend ``name`` builds for the trainer."""
    cls = backend_class(name)
    build = getattr(cls, "for_trainer", None)
    if build is None:
        raise ValueError(f"policy backend {name!r} cannot sample for the trainer (it has no for_trainer)")
    return build(ctx)


def shares_weights(policy: Any) -> bool:
    """Whether ``policy`` samples with the trainer's own weights (then nothing needs syncing after a step)."""
    return bool(getattr(policy, "shares_weights", False))
