"""One sandbox per spec per process, shared by every environment that asks for it, closed at exit."""

from __future__ import annotations

import atexit
import os
import threading

from resrl.sandbox.protocol import Sandbox

_lock = threading.Lock()
_cache: dict[str, Sandbox] = {}


def resolve_spec(spec: str | None) -> str:
    """``spec`` or, when None, ``$RESRL_SANDBOX_URL``, else ``$RESRL_SANDBOX_BACKEND``, else ``local``."""
    return spec or os.environ.get("RESRL_SANDBOX_URL") or os.environ.get("RESRL_SANDBOX_BACKEND", "local")


def shared_sandbox(spec: str | None = None) -> Sandbox:
    """The process-wide sandbox for ``spec`` (started on first use; warm executors are costly to start)."""
    from resrl.sandbox import make_sandbox

    key = resolve_spec(spec)
    with _lock:
        if key not in _cache:
            _cache[key] = make_sandbox(key)
        return _cache[key]


def close_shared() -> None:
    """Close every shared sandbox (registered with ``atexit``)."""
    with _lock:
        sandboxes = list(_cache.values())
        _cache.clear()
    for sandbox in sandboxes:
        sandbox.close()


atexit.register(close_shared)
