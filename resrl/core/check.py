"""``resrl envs check``: gymnasium's API checks adapted to chat spaces, plus gold/perturbed/garbage episodes.

With a tokenizer (``--tokenizer PATH``), the gold episodes are also played through the real collector with that
tokenizer's chat template and the tool-call format it resolves to (:class:`~resrl.rollout.scripted.GoldPolicy`):
the pre-flight check of a new model family.
"""

from __future__ import annotations

import random
import traceback
from collections.abc import Callable

import gymnasium as gym
from pydantic import BaseModel

from resrl.core.env import ChatEnv
from resrl.core.gym_adapter import has_gold_solution
from resrl.core.messages import ParsedAction
from resrl.core.registry import make
from resrl.core.task import Task

GARBAGE = [
    "",
    "I don't know.",
    "<tool_call>{not json</tool_call>",
    "<tool_call>",
    '<tool_call>{"name": "no_such_tool", "arguments": {}}</tool_call>',
    '<tool_call>{"name": 42}</tool_call>',
    "[f(1, 2), g(**x)]",
    "[__import__('os').system('true')]",
    "\x00\xff" * 50,
    {"role": "assistant", "content": None, "tool_calls": [{"function": "oops"}]},
]


class CheckResult(BaseModel):
    """One named check and whether it held."""

    name: str
    passed: bool
    detail: str = ""
    skipped: bool = False


def run_episode(env: ChatEnv, task: Task, turns: list[ParsedAction]) -> tuple[float, bool]:
    """Play scripted turns on ``task``; returns the total reward and whether the episode terminated."""
    env.reset(options={"task": task})
    total, terminated = 0.0, False
    for turn in turns:
        _, reward, terminated, truncated, _ = env.step(env.render_action(turn))
        total += reward
        if terminated or truncated:
            break
    return total, terminated


def _check(results: list[CheckResult], name: str, fn: Callable[[], str | None]) -> None:
    try:
        problem = fn()
    except Exception as exc:  # the check reports the failure; it must not stop the other checks
        problem = f"raised {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
    results.append(CheckResult(name=name, passed=problem is None, detail=problem or ""))


def check_gold_collection(
    env_id: str, tasks: list[Task], tokenizer: str, template_kwargs: dict | None = None, max_reward: float = 1.0
) -> str | None:
    """Play the gold solutions of ``tasks`` through the collector with the tokenizer at ``tokenizer``; the
    problem found, or None. Each episode must score ``max_reward`` without an infrastructure error, and its
    SFT encoding (``encode_episode`` of the recorded conversation) must be the collected ids and mask."""
    from resrl.rollout import Collector, encode_episode
    from resrl.rollout.scripted import GoldPolicy

    policy = GoldPolicy.from_pretrained(tokenizer)
    collector = Collector(
        policy, env_id, max_turns=32, max_tokens=32768, chat_template_kwargs=template_kwargs, progress=False
    )
    env = make(env_id, tool_format=collector.tool_format)
    for task, traj in zip(tasks, collector.collect(tasks, 1), strict=True):
        if traj.infra_error or abs(traj.reward - max_reward) > 1e-9:
            return (
                f"gold episode of {task.id} with {collector.tool_format} calls scored {traj.reward} "
                f"(finish {traj.finish_reason}, infra error {traj.infra_error})"
            )
        tools = env.reset(options={"task": task})[1]["tools"]
        encoded = encode_episode(policy.tokenizer, traj.messages, tools, codec=collector.codec)
        if encoded != (traj.prompt_ids, traj.response_ids, traj.loss_mask):
            return f"the SFT encoding of {task.id}'s conversation differs from the collected trajectory"
    env.close()
    return None


def check_env(
    env_id: str, n_tasks: int = 5, seed: int = 0, *, tokenizer: str | None = None, template_kwargs: dict | None = None
) -> list[CheckResult]:
    """Run every check on ``env_id``; each result says what held and what did not. With ``tokenizer`` (a folder),
    the gold episodes are also collected with its chat template (:func:`check_gold_collection`)."""
    env = make(env_id)
    tasks = type(env).generate_tasks("test", n_tasks, seed)
    results: list[CheckResult] = []

    def api() -> str | None:
        if not isinstance(env, gym.Env):
            return "not a gymnasium.Env"
        obs, info = env.reset(seed=seed)
        if not env.observation_space.contains(obs):
            return f"reset observation is not a list of chat messages: {obs!r:.200}"
        if not isinstance(info, dict) or not isinstance(info.get("tools"), list):
            return "reset info must be a dict with a 'tools' list"
        again, _ = env.reset(seed=seed)
        if again != obs:
            return "reset with the same seed gave a different observation"
        out = env.step(env.action_space.sample())
        if len(out) != 5:
            return f"step returned {len(out)} values, not 5"
        obs, reward, terminated, truncated, info = out
        if not env.observation_space.contains(obs):
            return "step observation is not a list of chat messages"
        if not isinstance(reward, float) or not isinstance(terminated, bool) or not isinstance(truncated, bool):
            return "step must return (list, float, bool, bool, dict)"
        return None if isinstance(info, dict) else "step info is not a dict"

    def gold() -> str | None:
        for task in tasks:
            reward, terminated = run_episode(env, task, type(env).gold_actions(task))
            if not terminated or abs(reward - env.max_reward) > 1e-9:
                return f"gold solution of {task.id} scored {reward} (terminated={terminated}), want {env.max_reward}"
        return None

    def perturbed() -> str | None:
        rng = random.Random(seed)
        for task in tasks:
            reward, _ = run_episode(env, task, type(env).perturbed_actions(task, rng))
            if reward >= env.max_reward:
                return f"a perturbed solution of {task.id} still scored {reward}"
        return None

    def garbage() -> str | None:
        for task in tasks:
            env.reset(options={"task": task})
            for i in range(env.max_steps):
                _, _, terminated, truncated, _ = env.step(GARBAGE[i % len(GARBAGE)])
                if terminated or truncated:
                    break
        return None

    _check(results, "gymnasium API (chat spaces, seeding, step contract)", api)
    if has_gold_solution(type(env)):
        _check(results, f"gold solution scores {env.max_reward} on {len(tasks)} test tasks", gold)
        _check(results, "perturbed solutions score less", perturbed)
    else:
        why = "a plain gymnasium.Env has no gold solution"
        for name in ("gold solution", "perturbed solutions"):
            results.append(CheckResult(name=name, passed=True, skipped=True, detail=why))
    _check(results, "garbage output does not raise", garbage)
    if tokenizer is not None:
        _check(
            results,
            f"gold episodes collected token-exactly with the chat template of {tokenizer}",
            lambda: check_gold_collection(env_id, tasks, tokenizer, template_kwargs, env.max_reward),
        )
    env.close()
    return results
