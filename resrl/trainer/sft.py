"""Supervised warm-up on gold demonstrations.

Each train task's gold turns (``ChatEnv.gold_actions``) are replayed through the environment, so the
conversation carries the real tool results; the episode is then encoded exactly as the collector would have
recorded it (``encode_episode``) and the loss is next-token cross-entropy on the policy tokens only.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import torch
from rich.progress import Progress

from resrl.core.task import Task
from resrl.rollout.trajectory import Trajectory
from resrl.trainer.batch import collate, token_logprobs

log = logging.getLogger("resrl.trainer.sft")


def gold_conversation(task: Task, *, tool_format: str = "hermes") -> tuple[list[dict[str, Any]], float]:
    """The full conversation of the gold episode of ``task`` (tool results included) and its final reward."""
    import resrl

    env = resrl.make(task.env_id, tool_format=tool_format)
    obs, _ = env.reset(options={"task": task})
    messages = list(obs)
    reward = 0.0
    for action in env.gold_actions(task):
        message = env.render_action(action)
        messages.append(message)
        obs, reward, terminated, truncated, _ = env.step(message)
        if terminated or truncated:
            break
        messages.extend(obs)
    return messages, float(reward)


def gold_trajectories(tasks: list[Task], tokenizer: Any, *, tool_format: str = "hermes") -> list[Trajectory]:
    """Gold episodes as trajectories (loss mask on the assistant turns); episodes the env does not reward
    fully are left out with a warning, since training on them would teach mistakes."""
    from resrl.rollout.chat import ChatCodec, encode_episode

    codec = ChatCodec(tokenizer)
    out = []
    for task in tasks:
        messages, reward = gold_conversation(task, tool_format=tool_format)
        if reward <= 0:
            log.warning("gold episode of %s scored %.2f; left out of SFT", task.id, reward)
            continue
        prompt, response, mask = encode_episode(tokenizer, messages, task.tools, codec=codec)
        out.append(
            Trajectory(
                prompt_ids=prompt,
                response_ids=response,
                loss_mask=mask,
                logprobs=[0.0] * len(response),
                reward=reward,
                group_id=task.id,
                env_id=task.env_id,
                task_id=task.id,
            )
        )
    return out


def sft_warmup(
    model: torch.nn.Module,
    tokenizer: Any,
    tasks: list[Task],
    *,
    epochs: int = 1,
    batch_size: int = 8,
    lr: float = 1e-3,
    seed: int = 0,
    tool_format: str = "hermes",
) -> list[float]:
    """Fine-tune ``model`` in place on the gold episodes of ``tasks``; returns the loss of each batch."""
    data = gold_trajectories(tasks, tokenizer, tool_format=tool_format)
    if not data:
        raise ValueError("no usable gold demonstrations for SFT (every gold episode failed)")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    rng = random.Random(seed)
    pad = tokenizer.pad_token_id or 0
    losses: list[float] = []
    model.train()
    steps = epochs * ((len(data) + batch_size - 1) // batch_size)
    with Progress(transient=True) as bar:
        job = bar.add_task(f"SFT on {len(data)} gold episodes", total=steps)
        for epoch in range(epochs):
            order = list(range(len(data)))
            rng.shuffle(order)
            for start in range(0, len(order), batch_size):
                batch = collate([data[i] for i in order[start : start + batch_size]], pad)
                logp, _ = token_logprobs(model, batch.input_ids, batch.attention_mask, mask=batch.mask)
                loss = -(logp * batch.mask).sum() / batch.mask.sum().clamp(min=1)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                losses.append(float(loss.detach()))
                bar.advance(job)
            log.info("sft epoch=%d loss=%.4f", epoch + 1, sum(losses[-10:]) / len(losses[-10:]))
    model.eval()
    return losses
