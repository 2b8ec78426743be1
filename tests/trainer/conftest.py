"""Fixtures for trainer tests: a tiny local model and a two-turn environment with mixed outcomes.

``test/parity`` is a real ``ChatEnv``: the first turn always gets a tool observation back (so trajectories
carry observation tokens that must stay out of the loss), the second turn is rewarded when its text has an
even number of characters — a coin flip for an untrained model, so groups hold positives and negatives.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer.parity_env import FlakyParityEnv, ParityEnv

__all__ = ["FlakyParityEnv", "ParityEnv"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny Qwen2-shaped model and BPE tokenizer with our ChatML template, saved like a real checkpoint
    (head size 32: the smallest vLLM's CPU attention supports)."""
    from resrl.models import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "model", vocab_size=512, hidden=64, layers=2, heads=2)


@pytest.fixture(scope="session")
def warm_model(tiny_model, tmp_path_factory) -> Path:
    """The tiny model after a short SFT on ``test/parity`` gold episodes: it now ends its turns, so episodes
    reach the reward and groups have both outcomes."""
    from resrl.trainer.config import ModelConfig
    from resrl.trainer.loop import make_tasks
    from resrl.trainer.modeling import load_model
    from resrl.trainer.sft import sft_warmup

    model, tokenizer = load_model(ModelConfig(path=str(tiny_model)))
    sft_warmup(model, tokenizer, make_tasks(["test/parity"], "train", 8, 0), epochs=20, batch_size=4, lr=3e-3)
    out = tmp_path_factory.mktemp("warm") / "model"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def base_config(model: Path, out: Path, **sections) -> dict:
    """A small but complete training config on ``test/parity``."""
    cfg = {
        "model": {"path": str(model)},
        "data": {"envs": ["test/parity"], "train_tasks": 8, "test_tasks": 2},
        "rollout": {"n": 4, "max_turns": 2, "max_tokens": 64, "max_new_tokens_per_turn": 10},
        "algo": {"scheme": "resrl", "rank": 4},
        "optim": {"lr": 1e-3, "mini_batch_size": 8, "micro_batch_size": 4, "ppo_epochs": 1},
        "train": {"steps": 2, "tasks_per_step": 2, "eval_every": 1, "eval_k": 2, "out_dir": str(out), "seed": 3},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


def assert_same_records(a: list[dict], b: list[dict]) -> None:
    """Two runs' ``metrics.jsonl`` records agree: same kinds and steps, same keys, numbers to 1e-5."""
    assert [(r["kind"], r["step"]) for r in a] == [(r["kind"], r["step"]) for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for key, value in ra.items():
            expected = pytest.approx(rb[key], rel=1e-5, abs=1e-6) if not isinstance(value, str) else rb[key]
            assert value == expected, (ra["kind"], ra["step"], key)
