"""The environment registry: ``register``, ``make``, and discovery of the ``resrl.envs`` entry-point group.

A third-party package exposes environments by declaring an entry point in the group ``resrl.envs`` whose
object is either a function (called once; it calls :func:`register`) or a :class:`ChatEnv` subclass
(registered under the entry point's name).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from resrl.core.env import ChatEnv

log = logging.getLogger("resrl.registry")
ENTRY_POINT_GROUP = "resrl.envs"


class EnvSpec(BaseModel):
    """How to build one environment, and what ``resrl envs list`` says of it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    entry_point: str | Callable[..., ChatEnv]
    kwargs: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    multi_turn: bool = False
    tags: list[str] = Field(default_factory=list)

    def load(self) -> Callable[..., ChatEnv]:
        """The class or factory this spec names."""
        if callable(self.entry_point):
            return self.entry_point
        module, _, attr = self.entry_point.partition(":")
        if not attr:
            raise ValueError(f"entry point {self.entry_point!r} of {self.id!r} must look like 'package.module:Name'")
        return getattr(importlib.import_module(module), attr)

    def summary(self) -> dict[str, Any]:
        """The JSON ``resrl envs list --json`` prints for this env."""
        return {"id": self.id, "description": self.description, "multi_turn": self.multi_turn, "tags": self.tags}


_REGISTRY: dict[str, EnvSpec] = {}
_plugins_loaded = False


def register(
    id: str,
    entry_point: str | Callable[..., ChatEnv],
    *,
    description: str | None = None,
    multi_turn: bool | None = None,
    tags: list[str] | tuple[str, ...] | None = None,
    **kwargs: Any,
) -> EnvSpec:
    """Register an environment under ``id``; ``kwargs`` are passed to its constructor by :func:`make`.

    ``description``, ``multi_turn`` and ``tags`` default to the class attributes of a ``ChatEnv`` subclass.
    Registering an id again replaces it (with a warning), so notebooks can re-run their cells.
    """
    if not id or id != id.strip():
        raise ValueError(f"invalid env id {id!r}")
    cls = entry_point if isinstance(entry_point, type) else None
    spec = EnvSpec(
        id=id,
        entry_point=entry_point,
        kwargs=kwargs,
        description=description if description is not None else getattr(cls, "description", ""),
        multi_turn=multi_turn if multi_turn is not None else bool(getattr(cls, "multi_turn", False)),
        tags=list(tags if tags is not None else getattr(cls, "tags", ())),
    )
    if id in _REGISTRY:
        log.warning("re-registering environment %s", id)
    _REGISTRY[id] = spec
    return spec


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if isinstance(obj, type) and issubclass(obj, ChatEnv):
                register(ep.name, obj)
            elif callable(obj):
                obj()
            else:
                log.warning("environment plugin %s is neither a ChatEnv subclass nor a function", ep.name)
        except Exception as exc:  # a broken plugin must not take the registry down
            log.warning("could not load environment plugin %s (%s): %s", ep.name, ep.value, exc)


def spec(id: str) -> EnvSpec:
    """The spec registered under ``id``; ``KeyError`` with the close matches otherwise."""
    _load_plugins()
    if id not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(id, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else " See `resrl envs list`."
        raise KeyError(f"no environment registered as {id!r}.{hint}")
    return _REGISTRY[id]


def make(id: str, **kwargs: Any) -> ChatEnv:
    """Build the environment registered as ``id``; ``kwargs`` override the registered ones."""
    s = spec(id)
    env = s.load()(**{**s.kwargs, **kwargs})
    env.env_id = id
    return env


def list_envs(pattern: str | None = None) -> list[EnvSpec]:
    """Registered specs sorted by id, optionally filtered by a glob ``pattern``."""
    import fnmatch

    _load_plugins()
    return [s for k, s in sorted(_REGISTRY.items()) if pattern is None or fnmatch.fnmatch(k, pattern)]
