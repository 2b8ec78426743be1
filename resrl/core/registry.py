"""The environment registry: ``register``, ``make``, and discovery of the ``resrl.envs`` entry-point group.

A third-party package exposes environments by declaring an entry point in the group ``resrl.envs``. Its object
is a :class:`ChatEnv` subclass or a plain ``gymnasium.Env`` subclass (registered under the entry point's name;
a plain env is wrapped, see :mod:`resrl.core.gym_adapter`), or a function called once with no arguments that
calls :func:`register` (a function that returns a ``ChatEnv`` instead is taken as a factory and registered under
the entry point's name). Anything else is left out with a warning that ``resrl envs list`` shows and a clear error
from :func:`make`. Entry points are read from installed package metadata: after adding one, reinstall the package.

Plugins are loaded once, on first use, under a lock: a thread that asks for an env while another thread is
loading them waits until every plugin has registered.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import gymnasium as gym
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from resrl.core.env import ChatEnv
from resrl.core.gym_adapter import wrap_gym_class

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
    _class: type[ChatEnv] | None = PrivateAttr(default=None)

    def load(self) -> Callable[..., ChatEnv]:
        """The ``ChatEnv`` class (a plain gymnasium env's wrapper) or the factory function this spec names."""
        obj = self.entry_point
        if isinstance(obj, str):
            module, _, attr = obj.partition(":")
            if not attr:
                raise ValueError(f"entry point {obj!r} of {self.id!r} must look like 'package.module:Name'")
            try:
                obj = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise ValueError(f"cannot load {obj!r}, the entry point of {self.id!r}: {exc}") from exc
        return _env_callable(self.id, obj)

    def env_class(self) -> type[ChatEnv]:
        """The ``ChatEnv`` class this spec builds, whose classmethods (``generate_tasks``, ``gold_actions``) the
        task generators, the trainer and the env server call. A factory's class is that of one env it builds."""
        if self._class is None:
            made = self.load()
            if isinstance(made, type):
                self._class = made
            else:
                env = _checked(self.id, made(**self.kwargs))
                env.close()
                self._class = type(env)
        return self._class

    def summary(self) -> dict[str, Any]:
        """The JSON ``resrl envs list --json`` prints for this env."""
        return {"id": self.id, "description": self.description, "multi_turn": self.multi_turn, "tags": self.tags}


_REGISTRY: dict[str, EnvSpec] = {}
_PROBLEMS: dict[str, str] = {}  # entry-point name -> why its plugin registered nothing
_LOCK = threading.RLock()  # reentrant: a plugin's registration function calls register()
_plugins_loaded = False
_loading = False
_wrappers: dict[tuple[str, type], type[ChatEnv]] = {}


def _env_callable(env_id: str, obj: Any) -> Callable[..., ChatEnv]:
    """``obj`` as something :func:`make` can call: a ``ChatEnv`` class, a plain gym env's wrapper, a factory."""
    if isinstance(obj, type):
        if issubclass(obj, ChatEnv):
            return obj
        if issubclass(obj, gym.Env):
            with _LOCK:  # one wrapper class per (id, class): its classmethods see the same class every time
                return _wrappers.setdefault((env_id, obj), wrap_gym_class(env_id, obj))
        raise TypeError(f"{env_id!r}: {obj.__module__}.{obj.__qualname__} is a class but not a gymnasium.Env")
    if callable(obj):
        return obj
    raise TypeError(f"{env_id!r}: {obj!r:.80} is neither an env class nor a factory function")


def _checked(env_id: str, env: Any) -> ChatEnv:
    if not isinstance(env, ChatEnv):
        hint = " (register the gymnasium.Env class itself: it is wrapped)" if isinstance(env, gym.Env) else ""
        raise TypeError(f"the factory of {env_id!r} returned {type(env).__name__}, not a resrl.ChatEnv{hint}")
    return env


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
    if not id or not isinstance(id, str) or id != id.strip():
        raise ValueError(f"invalid env id {id!r}")
    if not isinstance(entry_point, str):
        entry_point = _env_callable(id, entry_point)
    cls = entry_point if isinstance(entry_point, type) else None
    spec = EnvSpec(
        id=id,
        entry_point=entry_point,
        kwargs=kwargs,
        description=description if description is not None else getattr(cls, "description", ""),
        multi_turn=multi_turn if multi_turn is not None else bool(getattr(cls, "multi_turn", False)),
        tags=list(tags if tags is not None else getattr(cls, "tags", ())),
    )
    with _LOCK:
        if id in _REGISTRY:
            log.warning("re-registering environment %s", id)
        _REGISTRY[id] = spec
        _PROBLEMS.pop(id, None)
    return spec


def _load_plugins() -> None:
    global _plugins_loaded, _loading
    if _plugins_loaded:
        return
    with _LOCK:  # other threads wait here until every plugin has registered
        if _plugins_loaded or _loading:  # _loading: a plugin of this thread's own loading asked for an env
            return
        _loading = True
        try:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                _load_plugin(ep)
        finally:
            _loading = False
            _plugins_loaded = True


def _load_plugin(ep: Any) -> None:
    try:
        obj = ep.load()
        if isinstance(obj, type):
            register(ep.name, obj)
        elif callable(obj):
            made = obj()
            if isinstance(made, ChatEnv):  # a factory, not a registration function
                made.close()
                register(ep.name, obj)
            elif made is not None:
                raise TypeError(
                    f"the function returned {type(made).__name__}: an entry-point function should call "
                    "resrl.register (or return a ChatEnv, as a factory)"
                )
        else:
            raise TypeError(f"{type(obj).__name__} is neither a ChatEnv or gymnasium.Env class nor a function")
    except Exception as exc:  # a broken plugin must not take the registry down; list and make say why
        problem = f"environment plugin {ep.name!r} ({ep.value}) was not registered: {exc}"
        log.warning("%s", problem)
        _PROBLEMS[ep.name] = problem


def plugin_problems() -> dict[str, str]:
    """Entry points of the ``resrl.envs`` group that registered nothing, and why (``resrl envs list`` shows them)."""
    _load_plugins()
    with _LOCK:
        return dict(_PROBLEMS)


def spec(id: str) -> EnvSpec:
    """The spec registered under ``id``; ``KeyError`` with the close matches otherwise."""
    _load_plugins()
    with _LOCK:
        found = _REGISTRY.get(id)
        problem = _PROBLEMS.get(id)
        known = list(_REGISTRY)
    if found is not None:
        return found
    if problem is not None:
        raise KeyError(problem)
    import difflib

    close = difflib.get_close_matches(id, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else " See `resrl envs list`."
    raise KeyError(f"no environment registered as {id!r}.{hint}")


def make(id: str, **kwargs: Any) -> ChatEnv:
    """Build the environment registered as ``id``; ``kwargs`` override the registered ones."""
    s = spec(id)
    env = _checked(id, s.load()(**{**s.kwargs, **kwargs}))
    env.env_id = id
    return env


def list_envs(pattern: str | None = None) -> list[EnvSpec]:
    """Registered specs sorted by id, optionally filtered by a glob ``pattern``."""
    import fnmatch

    _load_plugins()
    with _LOCK:
        items = sorted(_REGISTRY.items())
    return [s for k, s in items if pattern is None or fnmatch.fnmatch(k, pattern)]
