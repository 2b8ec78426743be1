"""The ``bfcl/<category>`` envs: registration, BFCL's entries as tasks, both modes, and scoring through step()."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

import resrl
from resrl.core.registry import list_envs, spec
from resrl.core.task import read_jsonl
from resrl_envs.bfcl.data import AST_CATEGORIES, load_entries
from resrl_envs.bfcl.domains import MULTI_TURN_CATEGORIES

ALL = [f"bfcl/{c}" for c in AST_CATEGORIES]
MULTI = [f"bfcl/{c}" for c in MULTI_TURN_CATEGORIES]


def test_every_category_is_registered() -> None:
    ids = {s.id for s in list_envs("bfcl/*")}
    assert ids == set(ALL) | set(MULTI)
    assert "eval-only" in spec("bfcl/simple_java").tags


def test_tasks_generate_writes_every_entry_with_bfcl_ids(require_bfcl_data: None, tmp_path) -> None:
    out = tmp_path / "live_parallel.jsonl"
    cmd = [sys.executable, "-m", "resrl", "tasks", "generate", "--env", "bfcl/live_parallel", "--split", "test"]
    proc = subprocess.run([*cmd, "--n", "100000", "--out", str(out)], capture_output=True, text=True, check=True)
    tasks = read_jsonl(out)
    entries = load_entries("live_parallel")
    assert f"wrote {len(entries)} test tasks" in proc.stdout
    assert [t.id for t in tasks] == [e.id for e in entries]
    assert all(t.split == "test" and t.answer == e.ground_truth for t, e in zip(tasks, entries, strict=True))


def test_train_split_is_refused(require_bfcl_data: None) -> None:
    with pytest.raises(ValueError, match="evaluation set"):
        spec("bfcl/simple_python").env_class().generate_tasks("train", 5, 0)


def test_fc_mode_converts_bfcl_types_and_names(require_bfcl_data: None) -> None:
    cls = spec("bfcl/simple_python").env_class()
    tasks = cls.generate_tasks("test", 100000, 0)
    tools = [t for task in tasks for t in task.tools]
    names = {t["function"]["name"] for t in tools}
    assert "math_factorial" in names and not any("." in n for n in names)

    def types(schema: dict) -> set[str]:
        found = {schema["type"]} if "type" in schema else set()
        for sub in [*schema.get("properties", {}).values(), schema.get("items", {})]:
            found |= types(sub) if sub else set()
        return found

    seen = set().union(*(types(t["function"]["parameters"]) for t in tools))
    assert seen <= {"object", "string", "integer", "number", "boolean", "array"}, seen
    assert {"object", "number", "array"} <= seen
    java = spec("bfcl/simple_java").env_class().generate_tasks("test", 1, 0)[0]
    params = java.tools[0]["function"]["parameters"]["properties"]
    assert {p["type"] for p in params.values()} == {"string"}


def test_prompt_mode_lists_functions_in_the_system_prompt(require_bfcl_data: None) -> None:
    env = resrl.make("bfcl/simple_python", tool_format="pythonic")
    task = env.generate_tasks("test", 1, 0)[0]
    obs, info = env.reset(options={"task": task})
    assert obs[0]["role"] == "system" and "calculate_triangle_area" in obs[0]["content"]
    assert info["tools"] == []
    _, reward, terminated, _, step_info = env.step(
        {"role": "assistant", "content": "[calculate_triangle_area(base=10, height=5)]"}
    )
    assert reward == 1.0 and terminated and step_info["correct"]
    env.reset(options={"task": task})
    _, reward, _, _, step_info = env.step({"role": "assistant", "content": "[calculate_triangle_area(base=10)]"})
    assert reward == 0.0 and step_info["error_type"] == "simple_function_checker:missing_required"


def test_fc_mode_scores_openai_tool_calls_with_underscored_names(require_bfcl_data: None) -> None:
    env = resrl.make("bfcl/simple_python", tool_format="openai")
    task = env.generate_tasks("test", 2, 0)[1]  # math.factorial(number=5)
    env.reset(options={"task": task})
    call = {"id": "c1", "type": "function", "function": {"name": "math_factorial", "arguments": '{"number": 5}'}}
    _, reward, _, _, _ = env.step({"role": "assistant", "content": "", "tool_calls": [call]})
    assert reward == 1.0
    env.reset(options={"task": task})
    call["function"]["arguments"] = '{"number": 6}'
    _, reward, _, _, info = env.step({"role": "assistant", "content": "", "tool_calls": [call]})
    assert reward == 0.0 and info["error_type"] == "value_error"


@pytest.mark.parametrize("env_id", ALL)
def test_gold_turns_score_like_the_checker(require_bfcl_data: None, env_id: str) -> None:
    env = resrl.make(env_id, tool_format="hermes")
    tasks = env.generate_tasks("test", 20, 0)
    rewards = []
    for task in tasks:
        env.reset(options={"task": task})
        (gold,) = env.gold_actions(task)
        _, reward, terminated, _, _ = env.step(env.render_action(gold))
        assert terminated
        rewards.append(reward)
    # A few BFCL ground truths cannot be met (docs/bfcl.md); the first 20 of each category can.
    assert rewards == [1.0] * len(tasks), [t.id for t, r in zip(tasks, rewards, strict=True) if r != 1.0]
    env.reset(options={"task": tasks[0]})
    (wrong,) = env.perturbed_actions(tasks[0], random.Random(0))
    assert env.step(env.render_action(wrong))[1] == 0.0


def test_irrelevance_rewards_no_call_and_unreadable_turns_count_as_none(require_bfcl_data: None) -> None:
    env = resrl.make("bfcl/irrelevance", tool_format="hermes")
    task = env.generate_tasks("test", 1, 0)[0]
    env.reset(options={"task": task})
    assert env.step("I cannot compute that with these tools.")[1] == 1.0
    env.reset(options={"task": task})
    name = task.tools[0]["function"]["name"]
    assert env.step(f'<tool_call>{{"name": "{name}", "arguments": {{}}}}</tool_call>')[1] == 0.0
    env.reset(options={"task": task})
    assert env.step("<tool_call>{not json</tool_call>")[1] == 1.0


def test_envs_list_says_which_categories_are_left_out_and_why() -> None:
    cmd = [sys.executable, "-m", "resrl", "envs", "list", "bfcl/*"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "200"}).stdout
    for name in ("memory", "web_search", "format_sensitivity"):
        assert f"bfcl/{name} is not served:" in out
    other = subprocess.run([*cmd[:-1], "fc/*"], capture_output=True, text=True, check=True).stdout
    assert "not served" not in other
