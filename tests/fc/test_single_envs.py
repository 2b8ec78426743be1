"""The five single-turn fc envs: registry, check_env, every tool-call format, bad turns, shaped rewards."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import resrl
from resrl.core.check import GARBAGE, check_env
from resrl_envs.fc.single import register_single_turn
from resrl_envs.fc.single.env import SINGLE_TURN_ENVS

ENV_IDS = [cls.env_id for cls in SINGLE_TURN_ENVS]
CALLING_IDS = [i for i in ENV_IDS if i != "fc/irrelevance"]


@pytest.fixture(autouse=True, scope="module")
def _registered() -> None:
    register_single_turn()


def test_registered_with_metadata() -> None:
    specs = {s.id: s for s in resrl.list_envs("fc/*")}
    for env_id in ENV_IDS:
        assert env_id in specs
        assert not specs[env_id].multi_turn
        assert {"function-calling", "single-turn", "bfcl-like"} <= set(specs[env_id].tags)
        assert specs[env_id].description


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_passes(env_id: str) -> None:
    results = check_env(env_id, n_tasks=25, seed=3)
    assert [r.name for r in results if not r.passed] == [], [r.detail for r in results if not r.passed]


def test_cli_check_exits_zero() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "resrl", "envs", "check", *ENV_IDS, "--tasks", "5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 env(s) checked, 0 failed" in proc.stdout


@pytest.mark.parametrize("fmt", ["hermes", "pythonic", "openai"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gold_turn_scores_one_in_every_format(env_id: str, fmt: str) -> None:
    env = resrl.make(env_id, tool_format=fmt)
    for task in type(env).generate_tasks("test", 6, seed=11):
        obs, info = env.reset(options={"task": task})
        assert obs == task.messages and info["tools"] == task.tools and info["task_id"] == task.id
        json.dumps([obs, info])
        (gold,) = type(env).gold_actions(task)
        obs, reward, terminated, truncated, info = env.step(env.render_action(gold))
        assert (reward, terminated, truncated) == (1.0, True, False), info
        assert info["correct"] and info["errors"] == [] and obs == []
        json.dumps(info)  # what the env server sends must be plain JSON


def _turn(*calls: dict) -> str:
    return "\n".join(f"<tool_call>{json.dumps(c)}</tool_call>" for c in calls)


def _first_task(env_id: str, **kwargs: object):
    env = resrl.make(env_id, **kwargs)
    task = type(env).generate_tasks("train", 1, seed=5)[0]
    env.reset(options={"task": task})
    return env, task


def _gold_calls(env, task) -> list[dict]:
    (gold,) = type(env).gold_actions(task)
    return [{"name": c.name, "arguments": c.arguments} for c in gold.tool_calls]


def _assert_readable_failure(out: tuple, needle: str) -> None:
    obs, reward, terminated, _, info = out
    assert reward == 0.0 and terminated
    assert any(needle in e for e in info["errors"]), info["errors"]
    assert obs and obs[0]["role"] == "tool" and needle in obs[0]["content"]


@pytest.mark.parametrize("env_id", CALLING_IDS)
def test_broken_json_is_a_readable_error(env_id: str) -> None:
    env, _ = _first_task(env_id)
    out = env.step('<tool_call>{"name": "x", "arguments": {</tool_call>')
    _assert_readable_failure(out, "could not read the tool calls")
    assert out[4]["parse_error"]["kind"] == "bad_json"


@pytest.mark.parametrize("env_id", CALLING_IDS)
def test_unknown_tool_is_a_readable_error(env_id: str) -> None:
    env, task = _first_task(env_id)
    calls = _gold_calls(env, task)
    calls[0]["name"] = "launch_rocket"
    _assert_readable_failure(env.step(_turn(*calls)), "unknown tool 'launch_rocket'")


@pytest.mark.parametrize("env_id", CALLING_IDS)
def test_wrong_types_are_a_readable_error(env_id: str) -> None:
    env, task = _first_task(env_id)
    calls = _gold_calls(env, task)
    key = next(iter(calls[0]["arguments"]))
    value = calls[0]["arguments"][key]
    calls[0]["arguments"][key] = {"nested": value} if not isinstance(value, dict) else 3
    _assert_readable_failure(env.step(_turn(*calls)), f"argument '{key}' must be")


@pytest.mark.parametrize("env_id", CALLING_IDS)
def test_extra_calls_are_a_readable_error(env_id: str) -> None:
    env, task = _first_task(env_id)
    calls = _gold_calls(env, task)
    _assert_readable_failure(env.step(_turn(*calls, calls[0])), "was not asked for")


def test_irrelevance_accepts_text_and_rejects_a_call() -> None:
    env, task = _first_task("fc/irrelevance")
    _, reward, terminated, _, info = env.step("I can't do that with these tools, sorry.")
    assert (reward, terminated, info["correct"]) == (1.0, True, True)
    env.reset(options={"task": task})
    name = task.tools[0]["function"]["name"]
    _assert_readable_failure(env.step(_turn({"name": name, "arguments": {}})), "no offered tool fits")


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("fmt", ["hermes", "pythonic", "openai"])
def test_garbage_never_raises(env_id: str, fmt: str) -> None:
    env = resrl.make(env_id, tool_format=fmt, reward_mode="shaped")
    task = type(env).generate_tasks("test", 1, seed=2)[0]
    for action in [*GARBAGE, {"role": "assistant", "content": "x", "tool_calls": [{"function": {"name": 3}}]}]:
        env.reset(options={"task": task})
        obs, reward, terminated, _, info = env.step(action)
        assert terminated and 0.0 <= reward <= 1.0
        assert set(info["reward_components"]) == {"name", "keys", "values", "count"}
        if reward < 1.0:
            assert info["errors"] and obs[0]["content"].startswith("Error:")


def test_shaped_mode_gives_partial_credit_with_components() -> None:
    env, task = _first_task("fc/parallel", reward_mode="shaped")
    calls = _gold_calls(env, task)
    _, full, *_ = env.step(_turn(*calls))
    env.reset(options={"task": task})
    _, partial, _, _, info = env.step(_turn(*calls[:-1]))
    env.reset(options={"task": task})
    _, none, *_ = env.step("no calls at all")
    assert full == 1.0 > partial > none == 0.0
    n = len(calls)
    assert info["reward_components"]["count"] == pytest.approx((n - 1) / n)
    binary = resrl.make("fc/parallel")
    binary.reset(options={"task": task})
    assert binary.step(_turn(*calls[:-1]))[1] == 0.0


def test_bad_constructor_arguments_are_clear() -> None:
    with pytest.raises(ValueError, match="reward_mode"):
        resrl.make("fc/simple", reward_mode="dense")
    with pytest.raises(ValueError, match="tool-call format"):
        resrl.make("fc/simple", tool_format="xml")


@pytest.mark.parametrize("answer", [{"f": {}}, [{"get_current_weather": {"city": "Oslo"}}], [["x"]]])
def test_malformed_answer_is_refused_at_reset(answer: object) -> None:
    env = resrl.make("fc/simple")
    task = type(env).generate_tasks("train", 1, seed=0)[0].model_copy(update={"answer": answer})
    with pytest.raises(ValueError, match="malformed answer"):
        env.reset(options={"task": task})
