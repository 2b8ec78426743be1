"""The ``bfcl/multi_turn_*`` envs played through step(): gold episodes pass, broken ones fail, reveals happen."""

from __future__ import annotations

import random

import pytest

import resrl
from resrl.core.registry import spec
from resrl_envs.bfcl.domains import MULTI_TURN_CATEGORIES
from resrl_envs.bfcl.multi_env import REVEAL_MESSAGE


def _play(env, task, actions) -> tuple[float, dict, list]:
    obs, info = env.reset(options={"task": task})
    seen = [info["tools"]]
    reward, step_info = 0.0, {}
    for action in actions:
        obs, reward, terminated, truncated, step_info = env.step(env.render_action(action))
        seen.append((obs, env.tools_schema()))
        if terminated or truncated:
            break
    assert terminated
    return reward, step_info, seen


@pytest.mark.parametrize("category", MULTI_TURN_CATEGORIES)
def test_gold_episodes_pass_and_perturbed_fail(require_bfcl_data: None, category: str) -> None:
    env = resrl.make(f"bfcl/{category}", tool_format="hermes")
    tasks = env.generate_tasks("test", 8, 0)
    assert [t.id for t in tasks] == [f"{category}_{i}" for i in range(8)]
    for task in tasks:
        reward, info, _ = _play(env, task, env.gold_actions(task))
        assert reward == 1.0 and info["correct"], (task.id, info)
        reward, info, _ = _play(env, task, env.perturbed_actions(task, random.Random(0)))
        assert reward == 0.0 and not info["correct"], task.id


def test_miss_func_reveals_held_back_functions(require_bfcl_data: None) -> None:
    env = resrl.make("bfcl/multi_turn_miss_func", tool_format="hermes")
    task = env.generate_tasks("test", 1, 0)[0]
    ((_, names),) = task.metadata["missed_function"].items()
    offered = {t["function"]["name"] for t in task.tools}
    assert not set(names) & offered
    _, _, seen = _play(env, task, env.gold_actions(task))
    reveal = [(obs, tools) for obs, tools in seen[1:] if any(m.get("content") == REVEAL_MESSAGE for m in obs)]
    assert len(reveal) == 1
    assert set(names) <= {t["function"]["name"] for t in reveal[0][1]}


def test_prompt_mode_and_train_refusal(require_bfcl_data: None) -> None:
    env = resrl.make("bfcl/multi_turn_base", tool_format="pythonic")
    task = env.generate_tasks("test", 1, 0)[0]
    obs, info = env.reset(options={"task": task})
    assert info["tools"] == [] and obs[0]["role"] == "system" and '"name": "cd"' in obs[0]["content"]
    with pytest.raises(ValueError, match="evaluation set"):
        spec("bfcl/multi_turn_base").env_class().generate_tasks("train", 1, 0)
