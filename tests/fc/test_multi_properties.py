"""Property tests: any typed call sequence on any domain is deterministic and never raises."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resrl.core.messages import ParsedAction, ToolCall
from resrl_envs.fc.multi import domain_classes
from resrl_envs.fc.multi.engine import MultiTurnFCEnv

DOMAINS = domain_classes()


def _values(task_values: list[Any], json_type: str | None) -> st.SearchStrategy:
    """Arguments of the right JSON type, often taken from the task itself so that calls reach deep states."""
    if json_type == "integer":
        return st.one_of(st.integers(-3, 600), st.sampled_from([v for v in task_values if type(v) is int] or [1]))
    if json_type == "boolean":
        return st.booleans()
    if json_type == "array":
        return st.lists(_values(task_values, "string"), max_size=3)
    strings = [v for v in task_values if isinstance(v, str)] or ["x"]
    return st.one_of(st.sampled_from(strings), st.text(max_size=12))


def _leaves(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return [*obj.keys(), *(v for x in obj.values() for v in _leaves(x))]
    if isinstance(obj, list):
        return [v for x in obj for v in _leaves(x)]
    return [obj]


@st.composite
def episodes(draw: st.DrawFn, cls: type[MultiTurnFCEnv]) -> tuple[Any, list[ParsedAction]]:
    task = cls.generate_tasks("train", 1, draw(st.integers(0, 10_000)))[0]
    values = sorted({json.dumps(v) for v in _leaves(task.metadata["initial_state"])})
    pool = [json.loads(v) for v in values]
    schemas = [s["function"] for s in cls.state_cls.tool_schemas().values()]
    actions = []
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            actions.append(ParsedAction(content="ok"))
            continue
        calls = []
        for fn in draw(st.lists(st.sampled_from(schemas), min_size=1, max_size=3)):
            props = fn["parameters"]["properties"]
            required = set(fn["parameters"]["required"])
            args = {
                k: draw(_values(pool, p.get("type"))) for k, p in props.items() if k in required or draw(st.booleans())
            }
            if draw(st.integers(0, 9)) == 0:  # now and then an unexpected argument
                args["bogus"] = 1
            calls.append(ToolCall(name=fn["name"], arguments=args))
        actions.append(ParsedAction(tool_calls=calls))
    return task, actions


def _run(cls: type[MultiTurnFCEnv], task: Any, actions: list[ParsedAction]) -> tuple[list, dict]:
    env = cls(reward_mode="fraction")
    env.reset(options={"task": task})
    seen = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(env.render_action(action))
        assert 0.0 <= reward <= 1.0 and "infra_error" not in info
        seen.append((obs, reward))
        if terminated or truncated:
            break
    return seen, env.state.model_dump()


@pytest.mark.parametrize("cls", DOMAINS, ids=[c.domain for c in DOMAINS])
def test_random_call_sequences_are_deterministic_and_safe(cls: type[MultiTurnFCEnv]) -> None:
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(episodes(cls))
    def check(case: tuple[Any, list[ParsedAction]]) -> None:
        task, actions = case
        first = _run(cls, task, actions)
        assert first == _run(cls, task, actions)
        for obs, _ in first[0]:
            for message in obs:
                assert message["role"] in ("tool", "user") and isinstance(message["content"], str)

    check()
