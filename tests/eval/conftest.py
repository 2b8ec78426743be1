"""Fixtures of the evaluation tests: the coin envs and a tiny model that has learned to end its turn."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import coin_env  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _coin_registered() -> None:
    coin_env.register()


@pytest.fixture(scope="session")
def coin_model(tmp_path_factory) -> Path:
    """A tiny ChatML model after a short SFT on gold ``test/coin`` answers: it answers in a few tokens and ends
    its turn, so episodes reach the reward and about half succeed."""
    from resrl.models import build_tiny
    from resrl.trainer.config import ModelConfig
    from resrl.trainer.loop import make_tasks
    from resrl.trainer.modeling import load_model
    from resrl.trainer.sft import sft_warmup

    base = build_tiny(tmp_path_factory.mktemp("tiny") / "model", vocab_size=512, hidden=64, layers=2, heads=2)
    model, tokenizer = load_model(ModelConfig(path=str(base)))
    sft_warmup(model, tokenizer, make_tasks(["test/coin"], "train", 16, 0), epochs=12, batch_size=8, lr=3e-3)
    out = tmp_path_factory.mktemp("coin") / "model"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
