"""Where BFCL v4's data lives, and reading its entries.

The data ships in the ``bfcl-eval`` wheel (``bfcl_eval/data/BFCL_v4_<category>.json`` and
``bfcl_eval/data/possible_answer/``). We never install that wheel's dependencies into the project's environment
and never copy its data into this repository: the package directory is found at run time, in this order:

1. ``RESRL_BFCL_DATA``: a directory holding ``bfcl_eval/`` (an unpacked wheel) or the ``bfcl_eval`` directory;
2. an importable ``bfcl_eval`` (``pip install --no-deps bfcl-eval``), located without importing it;
3. the cache ``scripts/fetch_bfcl.sh`` fills: ``$XDG_CACHE_HOME/resrl/bfcl/pkg`` (default ``~/.cache``).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

DATA_ENV_VAR = "RESRL_BFCL_DATA"
FETCH_HINT = (
    "run `bash scripts/fetch_bfcl.sh` (pip download --no-deps bfcl-eval, unpacked into ~/.cache/resrl/bfcl/pkg), "
    f"or point {DATA_ENV_VAR} at an unpacked bfcl-eval wheel"
)

Language = Literal["python", "java", "javascript"]
Kind = Literal["ast", "irrelevance", "relevance"]


class CategoryInfo(BaseModel):
    """One BFCL single-turn category: how its entries are scored and in which language."""

    name: str
    kind: Kind
    language: Language = "python"
    live: bool = False


AST_CATEGORIES: dict[str, CategoryInfo] = {
    c.name: c
    for c in (
        CategoryInfo(name="simple_python", kind="ast"),
        CategoryInfo(name="simple_java", kind="ast", language="java"),
        CategoryInfo(name="simple_javascript", kind="ast", language="javascript"),
        CategoryInfo(name="multiple", kind="ast"),
        CategoryInfo(name="parallel", kind="ast"),
        CategoryInfo(name="parallel_multiple", kind="ast"),
        CategoryInfo(name="irrelevance", kind="irrelevance"),
        CategoryInfo(name="live_simple", kind="ast", live=True),
        CategoryInfo(name="live_multiple", kind="ast", live=True),
        CategoryInfo(name="live_parallel", kind="ast", live=True),
        CategoryInfo(name="live_parallel_multiple", kind="ast", live=True),
        CategoryInfo(name="live_irrelevance", kind="irrelevance", live=True),
        CategoryInfo(name="live_relevance", kind="relevance", live=True),
    )
}
"""The thirteen single-turn categories, in BFCL's order."""

LEFT_OUT = {
    "memory": "needs BFCL's memory backends and a prerequisite conversation per entry (agentic, not AST-scored)",
    "web_search": "needs live web search (SerpAPI): results change over time and tests cannot reach the internet",
    "format_sensitivity": "re-runs other categories under many prompt formats; not a category of its own entries",
}
"""BFCL v4 categories without a ``bfcl/`` env, and why (``resrl envs list`` shows this)."""


class BFCLDataMissing(RuntimeError):
    """The bfcl-eval package's data could not be found."""


class Entry(BaseModel):
    """One BFCL entry with its possible answer (``None`` for the categories that have none)."""

    id: str
    question: list[list[dict[str, Any]]]
    function: list[dict[str, Any]]
    ground_truth: list[dict[str, Any]] | None = None


def _candidates() -> list[Path]:
    paths = []
    if os.environ.get(DATA_ENV_VAR):
        root = Path(os.environ[DATA_ENV_VAR]).expanduser()
        paths += [root / "bfcl_eval", root]
    spec = importlib.util.find_spec("bfcl_eval")  # finds the package without running its __init__
    if spec is not None and spec.submodule_search_locations:
        paths += [Path(p) for p in spec.submodule_search_locations]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "resrl" / "bfcl" / "pkg"
    paths.append(cache / "bfcl_eval")
    return paths


def package_dir() -> Path:
    """The ``bfcl_eval`` package directory; :class:`BFCLDataMissing` (with how to fetch it) when absent."""
    tried = _candidates()
    for path in tried:
        if (path / "data" / "possible_answer").is_dir():
            return path
    raise BFCLDataMissing(f"BFCL v4 data not found (looked in {', '.join(map(str, tried))}); {FETCH_HINT}")


def data_problem() -> str | None:
    """Why the BFCL data cannot be read here, or None."""
    try:
        package_dir()
    except BFCLDataMissing as exc:
        return str(exc)
    return None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@functools.cache
def load_entries(category: str) -> tuple[Entry, ...]:
    """Every entry of ``category`` in BFCL's order, each with its possible answer where BFCL has one."""
    if category not in AST_CATEGORIES:
        raise ValueError(f"unknown BFCL category {category!r}; choose one of {sorted(AST_CATEGORIES)}")
    data = package_dir() / "data"
    rows = _read_jsonl(data / f"BFCL_v4_{category}.json")
    answer_file = data / "possible_answer" / f"BFCL_v4_{category}.json"
    answers = {a["id"]: a["ground_truth"] for a in _read_jsonl(answer_file)} if answer_file.exists() else {}
    if AST_CATEGORIES[category].kind == "ast" and len(answers) != len(rows):
        raise BFCLDataMissing(f"{answer_file} has {len(answers)} answers for {len(rows)} entries of {category}")
    return tuple(
        Entry(id=r["id"], question=r["question"], function=r["function"], ground_truth=answers.get(r["id"]))
        for r in rows
    )
