"""The miss_param and miss_func variants of every multi-turn fc domain."""

from __future__ import annotations

import json

import pytest

from resrl.core.messages import ParsedAction
from resrl.core.task import Task
from resrl_envs.fc.multi import domain_classes
from resrl_envs.fc.multi.engine import CANNOT_CLOSING, GoldTurn, MultiTurnFCEnv, variants

MISS_PARAM = [variants(cls)[1] for cls in domain_classes()]
MISS_FUNC = [variants(cls)[2] for cls in domain_classes()]


def turns(task: Task) -> list[GoldTurn]:
    return [GoldTurn.model_validate(t) for t in task.answer["turns"]]


def run(env: MultiTurnFCEnv, task: Task, actions: list[ParsedAction]) -> tuple[float, dict]:
    env.reset(options={"task": task})
    reward, info = 0.0, {}
    for action in actions:
        _, reward, terminated, truncated, info = env.step(env.render_action(action))
        if terminated or truncated:
            break
    return reward, info


@pytest.mark.parametrize("cls", MISS_PARAM, ids=lambda c: c.domain)
def test_miss_param_asking_is_right_and_guessing_is_wrong(cls: type[MultiTurnFCEnv]) -> None:
    env = cls()
    for task in cls.generate_tasks("test", 5, seed=1):
        gold = turns(task)
        assert 3 <= len(gold) <= 6 and task.metadata["variant"] == "miss_param"
        ask = next(i for i, t in enumerate(gold) if t.kind == "ask")
        assert not gold[ask].calls and gold[ask + 1].calls
        # the user turn after the ask supplies the value the gold calls then use
        assert task.metadata["user_turns"][ask] != task.metadata["user_turns"][ask + 1]
        assert run(env, task, cls.gold_actions(task))[0] == 1.0

        # acting at once on the incomplete request (with the value it would later get) is wrong
        eager = []
        for i, t in enumerate(gold):
            calls = gold[ask + 1].calls if i == ask else ([] if i == ask + 1 else t.calls)
            if calls:
                eager.append(ParsedAction(tool_calls=calls))
            eager.append(ParsedAction(content=t.closing))
        reward, info = run(env, task, eager)
        assert reward == 0.0
        assert info["turn_outcomes"][ask]["correct"] is False


@pytest.mark.parametrize("cls", MISS_FUNC, ids=lambda c: c.domain)
def test_miss_func_tool_appears_only_later(cls: type[MultiTurnFCEnv]) -> None:
    env = cls()
    for task in cls.generate_tasks("test", 5, seed=4):
        gold = turns(task)
        (hidden,) = task.metadata["hidden_tools"]
        reveal = task.metadata["reveal_turn"]
        assert gold[reveal - 1].kind == "cannot" and gold[reveal - 1].closing == CANNOT_CLOSING
        assert hidden in {c.name for c in gold[reveal].calls}
        assert all(c.name != hidden for t in gold[: reveal - 1] for c in t.calls)
        # the hidden tool changes the state, so no other tool can stand in for it
        state = cls.state_cls.model_validate(task.metadata["initial_state"])
        tools = state.bound_tools()
        for c in (c for t in gold[:reveal] for c in t.calls):
            tools.call(c)
        changed = False
        for c in gold[reveal].calls:
            before = state.model_dump()
            tools.call(c)
            changed |= c.name == hidden and state.model_dump() != before
        assert changed

        obs, info = env.reset(options={"task": task})
        offered = {s["function"]["name"] for s in info["tools"]}
        assert hidden not in offered and offered == {s["function"]["name"] for s in task.tools}
        for t in gold[: reveal - 1]:
            if t.calls:
                env.step(env.render_action(ParsedAction(tool_calls=t.calls)))
            env.step(t.closing)
        # on the turn where it is missing, calling it is an unknown-tool error the model can read
        call = next(c for c in gold[reveal].calls if c.name == hidden)
        obs, _, _, _, step_info = env.step(f"<tool_call>{json.dumps(call.model_dump(exclude={'id'}))}</tool_call>")
        assert f"unknown tool '{hidden}'" in obs[0]["content"]
        assert step_info["tool_errors"][0]["error"] == "unknown_tool"
        obs, _, terminated, _, step_info = env.step(CANNOT_CLOSING)
        assert not terminated
        assert "New tools are now available" in obs[0]["content"] and hidden in obs[0]["content"]
        assert f'"name": "{hidden}"' in obs[0]["content"]  # its schema, for a prompt rendered only once
        assert step_info["new_tools"] == [hidden]
        assert hidden in {s["function"]["name"] for s in step_info["tools"]}
        assert hidden in {s["function"]["name"] for s in env.tools_schema()}
        assert run(env, task, cls.gold_actions(task))[0] == 1.0


@pytest.mark.parametrize("cls", MISS_FUNC, ids=lambda c: c.domain)
def test_miss_func_acting_without_the_tool_is_wrong(cls: type[MultiTurnFCEnv]) -> None:
    """Doing the request with other tools, or claiming success, on the 'cannot' turn fails that turn."""
    env = cls(reward_mode="fraction")
    for task in cls.generate_tasks("train", 5, seed=8):
        gold = turns(task)
        reveal = task.metadata["reveal_turn"]
        # skipping the revealed turn's work: the cannot turn is right, the revealed one is wrong
        actions = []
        for i, t in enumerate(gold):
            if t.calls and i != reveal:
                actions.append(ParsedAction(tool_calls=t.calls))
            actions.append(ParsedAction(content=t.closing))
        reward, info = run(env, task, actions)
        outcomes = [o["correct"] for o in info["turn_outcomes"]]
        assert outcomes[reveal - 1] is True and outcomes[reveal] is False
        assert reward < 1.0
