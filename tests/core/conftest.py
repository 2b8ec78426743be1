"""Registers the documented example environment (docs/write_your_own_env.md) as module ``resrl_docs_example``."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "write_your_own_env.md"


def doc_blocks() -> list[str]:
    """The Python code blocks of the guide, in order."""
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)


def _load_example() -> None:
    module = types.ModuleType("resrl_docs_example")
    for block in doc_blocks()[:2]:  # the environment, then its registration
        exec(compile(block, str(DOC), "exec"), module.__dict__)  # our own documentation, not model output
    sys.modules["resrl_docs_example"] = module


_load_example()
