"""BFCL's multi-turn domains, driven by parsed calls: one instance set per episode, no ``eval``.

The domain classes (a file system, a message API, a trading bot, ...) are library code shipped in
``bfcl_eval/eval_checker/multi_turn_eval/func_source_code``; they are imported from the package found by
:mod:`resrl_envs.bfcl.data`. BFCL's own executor builds a source string per call and ``eval``s it; here a call
is parsed with :mod:`ast` into a name and literal arguments (:func:`parse_calls`), and the public method of that
name is called with them (positional arguments allowed, as BFCL's ground truth uses them). Model output is never
executed.
"""

from __future__ import annotations

import ast
import copy
import importlib
import importlib.util
import inspect
import json
import sys
import threading
from typing import Any

from resrl_envs.bfcl.data import package_dir

MULTI_TURN_CATEGORIES = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context")
_MODULE_PREFIX = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code"
DOMAIN_MODULES = {
    "GorillaFileSystem": "gorilla_file_system",
    "MathAPI": "math_api",
    "MessageAPI": "message_api",
    "TwitterAPI": "posting_api",
    "TicketAPI": "ticket_api",
    "TradingBot": "trading_bot",
    "TravelAPI": "travel_booking",
    "VehicleControlAPI": "vehicle_control",
}
"""The eight domains of the multi-turn categories and the module of each."""
STATELESS = frozenset({"MathAPI"})
"""Domains without a scenario to load."""
ERROR_PREFIX = "Error during execution: "
_IMPORT_LOCK = threading.Lock()


class CallSyntaxError(ValueError):
    """A call string that is not ``name(literal, ..., key=literal)``."""


def domain_class(name: str) -> type:
    """The domain class ``name`` from the bfcl-eval package (made importable on first use)."""
    if name not in DOMAIN_MODULES:
        raise ValueError(f"unknown BFCL domain {name!r}; choose one of {sorted(DOMAIN_MODULES)}")
    with _IMPORT_LOCK:
        if importlib.util.find_spec("bfcl_eval") is None:
            # The domain modules import each other as bfcl_eval.*: its (empty) package root must be importable.
            sys.path.append(str(package_dir().parent))
            importlib.invalidate_caches()
        module = importlib.import_module(f"{_MODULE_PREFIX}.{DOMAIN_MODULES[name]}")
    return getattr(module, name)


def _dotted(node: ast.expr) -> str | None:
    """The method name of ``f`` or ``Domain.f`` (the last part); None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and _dotted(node.value) is not None:
        return node.attr
    return None


def parse_calls(text: str) -> list[tuple[str, list[Any], dict[str, Any]]]:
    """``"f(1, b='x')"`` or ``"[f(1), g(c=2)]"`` into (name, positional, keyword) triples, literals only."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise CallSyntaxError(f"not a Python call: {exc.msg} in {text[:80]!r}") from exc
    nodes = tree.elts if isinstance(tree, ast.List | ast.Tuple) else [tree]
    calls = []
    for node in nodes:
        name = _dotted(node.func) if isinstance(node, ast.Call) else None
        if name is None:
            raise CallSyntaxError(f"not a call of a named function: {ast.unparse(node)[:80]!r}")
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg is not None}
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
            raise CallSyntaxError(f"an argument of {name!r} is not a literal value") from exc
        if any(k.arg is None for k in node.keywords):
            raise CallSyntaxError(f"{name!r} uses ** unpacking, which is not allowed")
        calls.append((name, args, kwargs))
    return calls


def _as_text(result: Any) -> str:
    """A method's result as the model sees it (strings as they are, dicts as JSON, anything else by str())."""
    if isinstance(result, str):
        return result
    if isinstance(result, dict):
        try:
            return json.dumps(result)
        except (TypeError, ValueError):
            return str(result)
    return str(result)


class DomainSet:
    """The instances of one episode: each involved domain, loaded with the entry's initial configuration."""

    def __init__(self, involved: list[str], initial_config: dict[str, Any], *, long_context: bool = False) -> None:
        self.instances: dict[str, Any] = {}
        self.methods: dict[str, Any] = {}
        for name in involved:
            instance = domain_class(name)()
            if name not in STATELESS:
                instance._load_scenario(copy.deepcopy(initial_config.get(name, {})), long_context=long_context)
            self.instances[name] = instance
            for method_name, method in inspect.getmembers(instance, predicate=inspect.ismethod):
                if not method_name.startswith("_"):
                    self.methods[method_name] = method

    def call(self, name: str, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None) -> str:
        """Invoke one public method by name; any failure comes back as an error text, as in BFCL."""
        method = self.methods.get(name.rsplit(".", 1)[-1])
        if method is None:
            return f"{ERROR_PREFIX}name '{name}' is not defined"
        try:  # a bad argument list raises TypeError here, with Python's own message, as under BFCL's eval
            return _as_text(method(*(args or []), **(kwargs or {})))
        except Exception as exc:  # the domain's own failure is the model's feedback, as in BFCL
            return f"{ERROR_PREFIX}{exc}"

    def run(self, text: str) -> list[str]:
        """Parse and invoke every call in ``text``; a parse failure is one error result."""
        try:
            calls = parse_calls(text)
        except CallSyntaxError as exc:
            return [f"{ERROR_PREFIX}{exc}"]
        return [self.call(name, args, kwargs) for name, args, kwargs in calls]

    def state(self) -> dict[str, dict[str, Any]]:
        """Each instance's public attributes (what BFCL's state check compares with ``==``)."""
        return {
            name: {k: v for k, v in vars(inst).items() if not k.startswith("_")}
            for name, inst in self.instances.items()
        }

    def state_json(self) -> dict[str, dict[str, Any]]:
        """:meth:`state` as plain JSON: objects as ``{"__class__": name, ...}``, back-links (``parent``) left out."""
        return {name: {k: _plain(v) for k, v in attrs.items()} for name, attrs in self.state().items()}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        items = [_plain(v) for v in value]
        return sorted(items, key=json.dumps) if isinstance(value, set) else items
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "__dict__"):
        return {
            "__class__": type(value).__name__,
            **{k: _plain(v) for k, v in vars(value).items() if k != "parent" and not k.startswith("_")},
        }
    return str(value)
