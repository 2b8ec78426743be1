"""Fixtures of the rollout tests: tiny local models (one per template family) and the lookup env."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import lookup_env


@pytest.fixture(scope="session", autouse=True)
def _lookup_registered() -> None:
    lookup_env.register()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """An untrained tiny ChatML model, built and saved like a user's checkpoint."""
    from resrl.models import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "chatml")


@pytest.fixture(scope="session")
def trained_dir(tiny_dir, tmp_path_factory) -> Path:
    """The tiny model after a short SFT on gold lookup episodes: it ends its turns, so episodes have several
    turns and later turns follow observation tokens."""
    from sft import sft_on_gold

    return sft_on_gold(tiny_dir, tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="session")
def chat_templates() -> Path:
    """The real chat templates folder; skip (or fail under CI=true) where it is absent."""
    from real_templates import TEMPLATE_DIR, template_problem

    from tests.conftest import _missing

    problem = template_problem()
    if problem:
        _missing("real chat templates", problem)
    return TEMPLATE_DIR


@pytest.fixture(scope="session")
def base_tokenizer():
    """The tiny BPE tokenizer every real template is attached to (built once: training it takes seconds)."""
    from resrl.models import build_tokenizer

    return build_tokenizer("chatml")
