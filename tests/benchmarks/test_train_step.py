"""``benchmarks/train_step.py``: TRL's side sees exactly the prompts our collector builds."""

from __future__ import annotations

import argparse

import pytest

import resrl
from resrl.models import build_tiny
from resrl.rollout.chat import ChatCodec
from resrl.trainer.loop import make_tasks


@pytest.mark.parametrize("env_id", ["fc/irrelevance", "fc/simple"])
def test_trl_prompts_are_token_identical_to_ours(train_step, tmp_path, env_id):
    from transformers import AutoTokenizer

    model_dir = build_tiny(tmp_path / "tiny", vocab_size=512)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    args = argparse.Namespace(env=env_id, tasks=4, seed=3)
    rows = train_step.trl_dataset(args, tokenizer)
    tasks = make_tasks([env_id], "train", 4, 3)
    codec = ChatCodec(tokenizer)
    assert len(rows) == len(tasks)
    for row, task in zip(rows, tasks, strict=True):
        env = resrl.make(env_id)
        observation, info = env.reset(options={"task": task})
        ours = codec.prompt_ids(list(observation), list(info.get("tools") or task.tools))
        # TRL tokenizes a plain-text prompt column with the tokenizer itself
        assert tokenizer(text=[row["prompt"]])["input_ids"][0] == ours
        assert resrl.Task.model_validate_json(row["task"]) == task
