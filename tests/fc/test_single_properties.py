"""Properties over generated tasks: gold passes in every format; any single wrong argument fails."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resrl
from resrl import ToolCall
from resrl_envs.fc.single import register_single_turn
from resrl_envs.fc.single.checker import score_turn
from resrl_envs.fc.single.env import SINGLE_TURN_ENVS
from resrl_envs.fc.single.generator import CATEGORIES, generate

CALLING = [c for c in CATEGORIES if c != "irrelevance"]


@pytest.fixture(autouse=True, scope="module")
def _registered() -> None:
    register_single_turn()


def _wrong(value: Any) -> Any:
    """A value of the same type that no generated answer accepts for this argument."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1000.5 if isinstance(value, float) else value + 1000
    if isinstance(value, str):
        return value + " zz"
    if isinstance(value, list):
        return [*value, value[0]] if value else ["zz"]
    raise AssertionError(f"unexpected gold value {value!r}")


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(CALLING), st.sampled_from(["train", "test"]), st.integers(0, 10_000), st.data())
def test_changing_or_dropping_one_argument_fails(category: str, split: str, seed: int, data) -> None:
    task = generate(category, f"fc/{category}", split, 1, seed)[0]
    env_cls = next(c for c in SINGLE_TURN_ENVS if c.category == category)
    (gold,) = env_cls.gold_actions(task)
    assert score_turn(gold.tool_calls, task.answer, task.tools).correct
    i = data.draw(st.integers(0, len(gold.tool_calls) - 1), label="call")
    target = gold.tool_calls[i]
    key = data.draw(st.sampled_from(sorted(target.arguments)), label="argument")
    changed = [c.model_copy(deep=True) for c in gold.tool_calls]
    changed[i].arguments[key] = _wrong(target.arguments[key])
    verdict = score_turn(changed, task.answer, task.tools)
    assert not verdict.correct and 0.0 < verdict.reward_shaped < 1.0
    dropped = [c.model_copy(deep=True) for c in gold.tool_calls]
    del dropped[i].arguments[key]
    assert not score_turn(dropped, task.answer, task.tools).correct
    swapped = list(reversed(gold.tool_calls))  # order never matters
    assert score_turn(swapped, task.answer, task.tools).correct


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(SINGLE_TURN_ENVS), st.integers(0, 10_000), st.integers(0, 3))
def test_reward_is_the_same_in_every_format(env_cls, seed: int, drop: int) -> None:
    task = env_cls.generate_tasks("test", 1, seed)[0]
    (gold,) = env_cls.gold_actions(task)
    # the gold turn, or one with a call dropped, or one with an extra call: every format must agree
    calls = list(gold.tool_calls)
    if drop == 1 and calls:
        calls = calls[1:]
    elif drop == 2:
        calls.append(ToolCall(name=task.tools[0]["function"]["name"], arguments={}))
    turn = resrl.ParsedAction(content=gold.content, tool_calls=calls)
    rewards = set()
    for fmt in ("hermes", "pythonic", "openai"):
        for mode in ("binary", "shaped"):
            env = resrl.make(env_cls.env_id, tool_format=fmt, reward_mode=mode)
            env.reset(options={"task": task})
            rewards.add((mode, env.step(env.render_action(turn))[1]))
    assert len(rewards) == 2


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=8,
)
turns = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.fixed_dictionaries(
            {
                "name": st.sampled_from(["convert_currency", "get_current_weather", "factorial", "zz"]) | st.text(),
                "arguments": st.dictionaries(st.sampled_from(["city", "amount", "n", "unit", "q"]), json_like),
            }
        ),
        max_size=4,
    ).map(lambda calls: "\n".join(f"<tool_call>{json.dumps(c)}</tool_call>" for c in calls)),
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(SINGLE_TURN_ENVS), st.sampled_from(["hermes", "pythonic"]), turns)
def test_arbitrary_turns_never_raise(env_cls, fmt: str, turn: str) -> None:
    env = resrl.make(env_cls.env_id, tool_format=fmt, reward_mode="shaped")
    env.reset(seed=1)
    obs, reward, terminated, truncated, info = env.step(turn)
    assert terminated and not truncated and 0.0 <= reward <= 1.0
    assert env.observation_space.contains(obs)
    assert info["correct"] == (reward == 1.0) and info["correct"] == (not info["errors"])
