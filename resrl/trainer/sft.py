"""Supervised warm-up on gold demonstrations.

Each train task's gold turns (``ChatEnv.gold_actions``) are replayed through the environment, so the
conversation carries the real tool results; the episode is then encoded exactly as the collector would have
recorded it (``encode_episode``) and the loss is next-token cross-entropy on the policy tokens only.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any, Literal

import torch
from rich.progress import Progress

from resrl.core.task import Task
from resrl.rollout.trajectory import Trajectory
from resrl.trainer.batch import collate, token_logprobs

log = logging.getLogger("resrl.trainer.sft")


def gold_conversation(
    task: Task, *, tool_format: str = "hermes", name_tools: bool = False
) -> tuple[list[dict[str, Any]], float]:
    """The full conversation of the gold episode of ``task`` (tool results included) and its final reward.

    ``name_tools=True`` opens each reply to a user turn with the tools that turn needs, ``Tools: a, b.`` (for a
    reply that calls none: the tools the request asks for that are not offered, ``requested_tools`` in the
    task's metadata, else ``none``). A model then names what it needs before it decides whether to call: the
    decision becomes a lookup of names it has just written in the tool list, which a tiny model learns far
    sooner than matching a request against schemas. Envs read only the calls, so rewards are unchanged.
    """
    import resrl

    env = resrl.make(task.env_id, tool_format=tool_format)
    obs, _ = env.reset(options={"task": task})
    messages = list(obs)
    reward = 0.0
    for action in env.gold_actions(task):
        message = env.render_action(action)
        if name_tools and messages and messages[-1].get("role") == "user":
            names = [c.name for c in action.tool_calls] or list(task.metadata.get("requested_tools") or [])
            opening = f"Tools: {', '.join(dict.fromkeys(names)) or 'none'}.\n"
            message = {**message, "content": opening + (message.get("content") or "")}
        messages.append(message)
        obs, reward, terminated, truncated, _ = env.step(message)
        if terminated or truncated:
            break
        messages.extend(obs)
    return messages, float(reward)


View = Literal["full", "request", "tool_names"]


def brief_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Each tool's name and description only (no parameter schemas): what choosing a tool, or none, reads."""
    if not tools:
        return tools
    out = []
    for tool in tools:
        fn = tool.get("function", tool)
        out.append({"type": "function", "function": {"name": fn["name"], "description": fn.get("description", "")}})
    return out


def gold_trajectories(
    tasks: list[Task], tokenizer: Any, *, tool_format: str = "hermes", view: View = "full", name_tools: bool = False
) -> list[Trajectory]:
    """Gold episodes as trajectories (loss mask on the assistant turns); episodes the env does not reward
    fully are left out with a warning, since training on them would teach mistakes.

    ``view`` shortens the demonstrations for cheap early training (every view keeps the gold replies):

    - ``"request"``: only the first user turn and the gold reply to it, with no system prompt and no tool list:
      a sixth of the tokens, all of them about reading values out of a request;
    - ``"tool_names"``: the first user turn and its reply after the system prompt with the tools cut to their
      names and descriptions (:func:`brief_tools`): a third of the tokens, about which tool fits, if any.

    ``name_tools``: see :func:`gold_conversation`.
    """
    if view not in ("full", "request", "tool_names"):
        raise ValueError(f"unknown SFT view {view!r}; use 'full', 'request' or 'tool_names'")
    from resrl.rollout.chat import ChatCodec, encode_episode, resolve_tool_format

    codec = ChatCodec(tokenizer)
    tool_format = resolve_tool_format(codec, tool_format)  # "auto": the format the tokenizer's template renders
    out = []
    for task in tasks:
        messages, reward = gold_conversation(task, tool_format=tool_format, name_tools=name_tools)
        if reward <= 0:
            log.warning("gold episode of %s scored %.2f; left out of SFT", task.id, reward)
            continue
        tools = task.tools
        if view != "full":
            first = next(i for i, m in enumerate(messages) if m.get("role") == "user")
            if view == "request":
                messages, tools = messages[first : first + 2], None
            else:
                messages, tools = messages[: first + 2], brief_tools(tools)
        prompt, response, mask = encode_episode(tokenizer, messages, tools, codec=codec)
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
    schedule: Literal["constant", "cosine"] = "constant",
    by_length: bool = False,
    context_weight: float = 0.0,
    view: View = "full",
    name_tools: bool = False,
) -> list[float]:
    """Fine-tune ``model`` in place on the gold episodes of ``tasks``; returns each batch's loss on its policy
    tokens.

    ``schedule="cosine"`` warms the learning rate up over the first 5% of the batches and decays it to 0 by
    the last (what a short run needs to end converged). ``by_length=True`` batches episodes of similar length
    together (shuffled in pools of 16 batches, then the batches shuffled), so little compute goes to padding
    when prompt lengths differ a lot, as they do across tool lists. ``context_weight`` > 0 adds next-token loss
    on the other tokens (prompt, tool results), each weighted that much against a policy token: a model built
    from scratch has read no text before, and the prompts hold ten times the tokens its turns do, with the
    repeats (argument names in ``required``, tool names) that teach it to copy. ``view``: see
    :func:`gold_trajectories`; ``name_tools``: see :func:`gold_conversation`.
    """
    if context_weight < 0:
        raise ValueError(f"context_weight must be >= 0, got {context_weight}")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"unknown SFT schedule {schedule!r}; use 'constant' or 'cosine'")
    data = gold_trajectories(tasks, tokenizer, tool_format=tool_format, view=view, name_tools=name_tools)
    if not data:
        raise ValueError("no usable gold demonstrations for SFT (every gold episode failed)")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    rng = random.Random(seed)
    pad = tokenizer.pad_token_id or 0
    losses: list[float] = []
    model.train()
    steps = epochs * ((len(data) + batch_size - 1) // batch_size)
    warmup = max(1, steps // 20)

    def factor(step: int) -> float:
        if schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    device = next(model.parameters()).device  # the batches go where the model is (the trainer's model.device)
    with Progress(transient=True) as bar:
        job = bar.add_task(f"SFT on {len(data)} gold episodes", total=steps)
        for epoch in range(epochs):
            for rows in _batches(data, batch_size, rng, by_length):
                batch = collate([data[i] for i in rows], pad).to(device)
                if context_weight:
                    logp, _ = token_logprobs(model, batch.input_ids, batch.attention_mask)
                    real = batch.attention_mask[:, 1:].bool()  # a real token is predicted (not padding)
                    weights = batch.mask.float() + context_weight * (real & ~batch.mask).float()
                else:
                    logp, _ = token_logprobs(model, batch.input_ids, batch.attention_mask, mask=batch.mask)
                    weights = batch.mask.float()
                loss = -(logp * weights).sum() / weights.sum().clamp(min=1)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                # the policy tokens' loss alone, comparable whatever context_weight is
                losses.append(float(-(logp.detach() * batch.mask).sum() / batch.mask.sum().clamp(min=1)))
                bar.advance(job)
            log.info("sft epoch=%d loss=%.4f", epoch + 1, sum(losses[-10:]) / len(losses[-10:]))
    model.eval()
    return losses


def _batches(data: list[Trajectory], size: int, rng: random.Random, by_length: bool) -> list[list[int]]:
    """One epoch's batches of row indices: shuffled, or (``by_length``) length-sorted within shuffled pools."""
    order = list(range(len(data)))
    rng.shuffle(order)
    if not by_length:
        return [order[i : i + size] for i in range(0, len(order), size)]
    pool = size * 16
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: len(data[i].prompt_ids) + len(data[i].response_ids))
        batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(batches)
    return batches
