"""Multi-turn fc domains: gold/wrong/fraction scoring, state across turns, determinism and model errors."""

from __future__ import annotations

import json
import random

import pytest

from resrl.core.messages import ParsedAction, ToolCall
from resrl.core.task import Task
from resrl.core.tools import tool
from resrl_envs.fc.multi import domain_classes
from resrl_envs.fc.multi.engine import GoldTurn, MultiTurnFCEnv
from resrl_envs.fc.multi.filesystem import FileSystem, FileSystemEnv

DOMAINS = domain_classes()
IDS = [cls.domain for cls in DOMAINS]


def play(env: MultiTurnFCEnv, task: Task, actions: list) -> list[tuple]:
    """Reset on ``task`` and step every action (rendered when parsed); returns the step tuples."""
    env.reset(options={"task": task})
    out = []
    for action in actions:
        rendered = env.render_action(action) if isinstance(action, ParsedAction) else action
        out.append(env.step(rendered))
        if out[-1][2] or out[-1][3]:
            break
    return out


def gold_turns(task: Task) -> list[GoldTurn]:
    return [GoldTurn.model_validate(t) for t in task.answer["turns"]]


def mutates(cls: type[MultiTurnFCEnv], task: Task, upto: int) -> bool:
    """Whether turn ``upto``'s gold calls change the state reached by the earlier gold turns."""
    state = cls.state_cls.model_validate(task.metadata["initial_state"])
    tools = state.bound_tools()
    for turn in gold_turns(task)[:upto]:
        for c in turn.calls:
            assert tools.call(c).ok
    before = state.model_dump()
    for c in gold_turns(task)[upto].calls:
        tools.call(c)
    return state.model_dump() != before


def without_turn_calls(task: Task, index: int) -> list[ParsedAction]:
    """The gold episode with user turn ``index`` closed by text alone, its calls never made."""
    actions = []
    for i, turn in enumerate(gold_turns(task)):
        if turn.calls and i != index:
            actions.append(ParsedAction(tool_calls=turn.calls))
        actions.append(ParsedAction(content=turn.closing))
    return actions


@pytest.mark.parametrize("cls", DOMAINS, ids=IDS)
def test_gold_episode_scores_one_on_every_turn(cls: type[MultiTurnFCEnv]) -> None:
    env = cls()
    for task in cls.generate_tasks("test", 6, seed=11):
        steps = play(env, task, cls.gold_actions(task))
        _, reward, terminated, truncated, info = steps[-1]
        assert terminated and not truncated and reward == 1.0
        assert sum(s[1] for s in steps) == 1.0
        assert [o["correct"] for o in info["turn_outcomes"]] == [True] * len(gold_turns(task))
        assert info["reward_components"] == {"all_turns_correct": 1.0, "turn_accuracy": 1.0}
        # the episode's state is the gold program's end state
        assert env.state.model_dump() == env.gold_state.model_dump()


@pytest.mark.parametrize("cls", DOMAINS, ids=IDS)
def test_wrong_state_scores_zero(cls: type[MultiTurnFCEnv]) -> None:
    env = cls()
    checked = 0
    for task in cls.generate_tasks("train", 12, seed=5):
        target = next((i for i in range(len(gold_turns(task))) if mutates(cls, task, i)), None)
        if target is None:
            continue
        steps = play(env, task, without_turn_calls(task, target))
        _, reward, terminated, _, info = steps[-1]
        assert terminated and reward == 0.0
        assert info["turn_outcomes"][target]["state_match"] is False
        assert all(o["correct"] for o in info["turn_outcomes"][:target])
        checked += 1
    assert checked >= 6


@pytest.mark.parametrize("cls", DOMAINS, ids=IDS)
def test_fraction_mode_counts_correct_turns(cls: type[MultiTurnFCEnv]) -> None:
    env = cls(reward_mode="fraction")
    binary = cls()
    for task in cls.generate_tasks("train", 6, seed=9):
        n = len(gold_turns(task))
        last_wrong = without_turn_calls(task, n - 1)
        _, reward, terminated, _, info = play(env, task, last_wrong)[-1]
        assert terminated and reward == pytest.approx((n - 1) / n)
        assert info["reward_components"]["turn_accuracy"] == pytest.approx((n - 1) / n)
        assert info["reward_components"]["all_turns_correct"] == 0.0
        assert play(binary, task, last_wrong)[-1][1] == 0.0
        assert play(env, task, cls.gold_actions(task))[-1][1] == 1.0


def test_reward_mode_is_validated() -> None:
    with pytest.raises(ValueError, match="reward_mode"):
        FileSystemEnv(reward_mode="partial")


def _fs_task(turns: list[tuple[str, list[ToolCall]]]) -> Task:
    return Task(
        id="fs-handmade",
        env_id="fc/multi/filesystem",
        messages=[{"role": "system", "content": "files"}, {"role": "user", "content": turns[0][0]}],
        answer={"turns": [GoldTurn(calls=calls).model_dump() for _, calls in turns]},
        metadata={
            "initial_state": {"folders": ["docs"], "files": {}},
            "user_turns": [text for text, _ in turns],
            "hidden_tools": [],
            "reveal_turn": None,
        },
    )


def test_state_persists_across_user_turns() -> None:
    write = ToolCall(name="write_file", arguments={"path": "docs/a.txt", "content": "hello"})
    append = ToolCall(name="append_line", arguments={"path": "docs/a.txt", "line": "world"})
    read = ToolCall(name="read_file", arguments={"path": "docs/a.txt"})
    task = _fs_task([("write it", [write]), ("append", [append]), ("read it back", [read])])
    env = FileSystemEnv()
    env.reset(options={"task": task})
    env.step(env.render_action(ParsedAction(tool_calls=[write])))
    obs, *_ = env.step("Written.")
    assert obs == [{"role": "user", "content": "append"}]
    env.step(env.render_action(ParsedAction(tool_calls=[append])))
    env.step("Appended.")
    obs, *_ = env.step(env.render_action(ParsedAction(tool_calls=[read])))
    assert obs[0]["content"] == "hello\nworld"
    assert obs[0]["role"] == "tool" and obs[0]["name"] == "read_file" and obs[0]["tool_call_id"]
    _, reward, terminated, _, _ = env.step("It says hello and world.")
    assert terminated and reward == 1.0


def test_results_must_reach_the_model() -> None:
    """Right end state but the read the gold program did was never made: the turn is wrong."""
    read = ToolCall(name="list_dir", arguments={"folder": "docs"})
    task = _fs_task([("what is in docs?", [read]), ("thanks", [])])
    _, reward, _, _, info = play(FileSystemEnv(), task, ["It is empty.", "Bye."])[-1]
    assert reward == 0.0
    assert info["turn_outcomes"][0] == {"turn": 0, "state_match": True, "results_returned": False, "correct": False}


@pytest.mark.parametrize("cls", DOMAINS, ids=IDS)
def test_tools_are_deterministic(cls: type[MultiTurnFCEnv]) -> None:
    task = cls.generate_tasks("train", 1, seed=3)[0]
    runs = []
    for _ in range(2):
        env = cls()
        steps = play(env, task, cls.gold_actions(task))
        runs.append(([s[0] for s in steps], env.state.model_dump()))
    assert runs[0] == runs[1]
    assert any(m["role"] == "tool" for obs in runs[0][0] for m in obs)


@pytest.mark.parametrize("cls", DOMAINS, ids=IDS)
def test_model_errors_are_observations_and_episode_goes_on(cls: type[MultiTurnFCEnv]) -> None:
    env = cls()
    task = cls.generate_tasks("test", 1, seed=2)[0]
    first = next(c for t in gold_turns(task) for c in t.calls if c.arguments)
    key = sorted(first.arguments)[0]
    wrong_type = {**first.arguments, key: [first.arguments[key]]}
    env.reset(options={"task": task})

    obs, reward, terminated, _, info = env.step("<tool_call>{not json</tool_call>")
    assert not terminated and reward == 0.0 and info["parse_error"]["kind"] == "bad_json"
    assert "could not be read" in obs[0]["content"]

    obs, _, terminated, _, info = env.step('<tool_call>{"name": "launch_rocket", "arguments": {}}</tool_call>')
    assert not terminated and "unknown tool 'launch_rocket'" in obs[0]["content"]
    assert info["tool_errors"] == [{"name": "launch_rocket", "error": "unknown_tool"}]

    bad = json.dumps({"name": first.name, "arguments": wrong_type})
    obs, _, terminated, _, info = env.step(f"<tool_call>{bad}</tool_call>")
    assert not terminated and f"invalid arguments for '{first.name}'" in obs[0]["content"]
    assert f"'{key}'" in obs[0]["content"]

    extra = json.dumps({"name": first.name, "arguments": {**first.arguments, "bogus": 1}})
    obs, *_ = env.step(f"<tool_call>{extra}</tool_call>")
    assert "unexpected argument 'bogus'" in obs[0]["content"]

    # none of it touched the state: the gold episode still scores full reward from here
    total = 0.0
    for action in cls.gold_actions(task):
        _, reward, terminated, truncated, _ = env.step(env.render_action(action))
        total += reward
        if terminated or truncated:
            break
    assert terminated and total == 1.0


def test_calls_past_the_per_turn_cap_are_refused() -> None:
    env = FileSystemEnv(max_calls_per_step=2)
    task = FileSystemEnv.generate_tasks("train", 1, seed=0)[0]
    env.reset(options={"task": task})
    calls = [ToolCall(name="list_dir", arguments={}) for _ in range(3)]
    obs, *_ = env.step(env.render_action(ParsedAction(tool_calls=calls)))
    assert len(obs) == 3 and [m["tool_call_id"] for m in obs] == ["call_0_0", "call_0_1", "call_0_2"]
    assert "too many calls" in obs[2]["content"] and "too many" not in obs[0]["content"]


def test_openai_format_keeps_call_ids() -> None:
    env = FileSystemEnv(tool_format="openai")
    task = FileSystemEnv.generate_tasks("train", 1, seed=4)[0]
    env.reset(options={"task": task})
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "abc", "type": "function", "function": {"name": "list_dir", "arguments": "{}"}}],
    }
    obs, *_ = env.step(message)
    assert obs[0]["tool_call_id"] == "abc"


@pytest.mark.parametrize("cls", DOMAINS, ids=IDS)
def test_perturbed_episode_is_really_wrong(cls: type[MultiTurnFCEnv]) -> None:
    rng = random.Random(0)
    diverged = 0
    tasks = cls.generate_tasks("test", 10, seed=3)
    for task in tasks:
        actions = cls.perturbed_actions(task, rng)
        assert actions != cls.gold_actions(task)
        env = cls()
        steps = play(env, task, actions)
        assert steps[-1][1] == 0.0
        diverged += any(o.state_match is False for o in env.outcomes)
    # mostly a wrong argument the tool accepts, leaving a state the gold program never reaches
    assert diverged >= len(tasks) // 2


class _Buggy(FileSystem):
    @tool
    def crash(self) -> str:
        """A tool with a bug in it."""
        return {}["missing"]


class _BuggyEnv(FileSystemEnv):
    state_cls = _Buggy


def test_a_crashing_tool_is_an_infra_error_not_a_model_error() -> None:
    task = _fs_task([("crash", [])]).model_copy(update={"env_id": "test/buggy"})
    env = _BuggyEnv()
    env.reset(options={"task": task})
    obs, reward, terminated, truncated, info = env.step('<tool_call>{"name": "crash", "arguments": {}}</tool_call>')
    assert truncated and not terminated and reward == 0.0
    assert "KeyError" in info["infra_error"] and "not your fault" in obs[0]["content"]
