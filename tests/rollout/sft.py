"""A few SFT steps on gold episodes, so the tiny test model writes whole multi-turn episodes."""

from __future__ import annotations

from pathlib import Path

import torch
from lookup_env import ENV_ID, LookupEnv
from transformers import AutoModelForCausalLM, AutoTokenizer

import resrl
from resrl.rollout import encode_episode


def gold_messages(task: resrl.Task, tool_format: str = "hermes") -> list[dict]:
    """The gold conversation of ``task``, played through the env."""
    env = resrl.make(ENV_ID, tool_format=tool_format)
    obs, _ = env.reset(options={"task": task})
    messages = list(obs)
    for action in LookupEnv.gold_actions(task):
        message = env.render_action(action)
        messages.append(message)
        obs, _, terminated, _, _ = env.step(message)
        if terminated:
            break
        messages += obs
    return messages


def sft_on_gold(model_dir: Path, out: Path, steps: int = 30, seed: int = 0) -> Path:
    """Train on gold episodes (loss on assistant tokens) and save to ``out``."""
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tasks = LookupEnv.generate_tasks("train", 16, seed)
    rows = []
    for task in tasks:
        prompt, response, mask = encode_episode(tok, gold_messages(task), task.tools)
        rows.append((prompt + response, [0] * len(prompt) + mask))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r, _ in rows])
    labels = torch.tensor(
        [[t if m else -100 for t, m in zip(r, mk, strict=True)] + [-100] * (width - len(r)) for r, mk in rows]
    )
    attn = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r, _ in rows])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
