"""MCP servers as environments, against real servers started here (stdio processes and HTTP on loopback)."""

from __future__ import annotations

import os
import signal

import pytest

import resrl
from resrl_envs.mcp import MCPInfraError, Transcript
from tests.mcp.conftest import STDIO, TASKS, fresh_id, http_server

_REGISTERED: dict[tuple, str] = {}


def _counter_env(*, url: str | None = None, hidden: tuple[str, ...] = ("pid", "hang"), **options):
    """An env over the counter server; one registration per configuration, so its tool listing is reused."""
    key = (url, hidden, tuple(sorted(options.items())))
    if key not in _REGISTERED:
        env_id = _REGISTERED[key] = fresh_id("counter")
        where = {"url": url} if url else {"command": STDIO}
        resrl.register_mcp(
            env_id, **where, tasks=TASKS, reward={"tool": "grade"}, setup_tool="setup", hidden_tools=hidden, **options
        )
    return resrl.make(_REGISTERED[key], tool_format="hermes")


def _call(name: str, **arguments) -> str:
    import json

    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def _task(env, i: int = 0):
    return type(env).generate_tasks("train", 2, 0)[i]


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_multi_turn_state_is_carried_and_fresh_per_episode(transport, request):
    url = request.getfixturevalue("http_url") if transport == "http" else None
    env = _counter_env(url=url)
    try:
        task = _task(env)
        obs, info = env.reset(options={"task": task})
        assert "infra_error" not in info and obs[-1]["content"] == "Bring the counter to 10."
        out = env.step(_call("add", n=2))
        assert out[0][0]["content"] == "7" and not out[2]  # setup's start (5) reached the server
        out = env.step(_call("add", n=3))
        assert out[0][0]["content"] == "10"  # the second call saw the first one's state
        _, reward, terminated, _, info = env.step("The counter is at 10.")
        assert terminated and reward == 1.0
        # the same env again: a new session, so the counter starts from the task's arguments, not from 10
        env.reset(options={"task": task})
        assert env.step(_call("total"))[0][0]["content"] == "5"
        _, reward, terminated, _, _ = env.step("done")
        assert terminated and reward == 0.0
    finally:
        env.close()


def test_two_concurrent_http_episodes_keep_their_own_state(http_url):
    first, second = _counter_env(url=http_url), _counter_env(url=http_url)
    try:
        first.reset(options={"task": _task(first, 0)})
        second.reset(options={"task": _task(second, 1)})
        first.step(_call("add", n=1))
        assert second.step(_call("total"))[0][0]["content"] == "1"
        assert first.step(_call("total"))[0][0]["content"] == "6"
    finally:
        first.close()
        second.close()


def test_hidden_tools_stay_hidden_and_tool_errors_are_observations():
    env = _counter_env()
    try:
        task = _task(env)
        shown = {s["function"]["name"] for s in task.tools}
        assert shown == {"add", "total"}
        _, info = env.reset(options={"task": task})
        assert {s["function"]["name"] for s in info["tools"]} == {"add", "total"}
        obs, reward, terminated, truncated, info = env.step(_call("grade", target=5))
        assert "unknown tool 'grade'" in obs[0]["content"] and reward == 0.0 and not (terminated or truncated)
        assert "Available tools: add, total" in obs[0]["content"]
        obs, _, _, _, info = env.step(_call("add", n=-1))  # the server's ToolError
        assert obs[0]["content"].startswith("Error") and "positive" in obs[0]["content"]
        assert info["tool_errors"] and "infra_error" not in info
        obs, _, _, _, info = env.step(_call("add", n="three"))  # the server rejects the argument type
        assert obs[0]["content"].startswith("Error") and "infra_error" not in info
        obs, _, _, _, info = env.step("<tool_call>{broken</tool_call>")
        assert info["parse_error"]["kind"] == "bad_json"
        assert env.step(_call("total"))[0][0]["content"] == "5"  # nothing above changed the state
    finally:
        env.close()


def test_reward_function_sees_transcript_and_calls_hidden_tools():
    seen: list[Transcript] = []

    def reward(transcript, call_tool):
        seen.append(transcript)
        graded = call_tool("grade", {"target": transcript.task.answer["target"]})
        return {"reward": graded.structured["reward"], "calls": float(len(transcript.calls))}

    env_id = fresh_id("reward-fn")
    resrl.register_mcp(env_id, command=STDIO, tasks=TASKS, reward=reward, setup_tool="setup", hidden_tools=["grade"])
    env = resrl.make(env_id)
    try:
        env.reset(options={"task": _task(env, 1)})
        env.step(_call("add", n=2))
        _, reward_value, terminated, _, info = env.step("at 3 now")
        assert terminated and reward_value == 1.0 and info["reward_components"] == {"calls": 1.0}
        assert seen[0].final == "at 3 now" and seen[0].calls[0].name == "add" and seen[0].calls[0].text == "3"
    finally:
        env.close()


def test_a_server_killed_mid_episode_is_an_infra_error():
    env = _counter_env()
    try:
        env.reset(options={"task": _task(env)})
        env.step(_call("add", n=1))
        pid = int(env.connection.call_tool("pid").text)
        os.kill(pid, signal.SIGKILL)
        obs, reward, terminated, truncated, info = env.step(_call("add", n=1))
        assert truncated and not terminated and reward == 0.0
        assert info["infra_error"].startswith("mcp crash") and "not your fault" in obs[0]["content"]
        with pytest.raises(gym_reset_needed()):
            env.step(_call("add", n=1))
    finally:
        env.close()


def test_an_http_server_killed_mid_episode_is_an_infra_error():
    with http_server() as (url, proc):
        env = _counter_env(url=url, timeout_s=5.0)
        try:
            env.reset(options={"task": _task(env)})
            assert env.step(_call("add", n=1))[0][0]["content"] == "6"
            proc.kill()
            proc.wait(10)
            _, reward, terminated, truncated, info = env.step(_call("add", n=1))
            assert truncated and not terminated and reward == 0.0
            assert info["infra_error"].split(":")[0] in ("mcp crash", "mcp protocol", "mcp timeout")
        finally:
            env.close()


def gym_reset_needed():
    import gymnasium as gym

    return gym.error.ResetNeeded


def test_a_tool_that_never_answers_times_out(http_url):
    env = _counter_env(url=http_url, hidden=("pid",), timeout_s=1.0)
    try:
        env.reset(options={"task": _task(env)})
        env.step(_call("add", n=1))
        _, reward, terminated, truncated, info = env.step(_call("hang"))
        assert truncated and not terminated and reward == 0.0
        assert info["infra_error"].startswith("mcp timeout") and "hang" in info["infra_error"]
        assert env.connection is None  # the session was closed, not left hanging
    finally:
        env.close()


def test_the_bridge_times_out_a_call_and_keeps_the_session(http_url):
    from resrl_envs.mcp import MCPConnection, ServerTarget

    connection = MCPConnection(ServerTarget(url=http_url), timeout_s=2.0)
    connection.open()
    try:
        with pytest.raises(MCPInfraError) as err:
            connection.call_tool("hang")
        assert err.value.kind == "timeout"
        assert connection.call_tool("add", {"n": 4}).text == "4"
    finally:
        connection.close()


def test_a_server_that_never_answers_the_handshake_is_an_infra_error_at_reset():
    env_id = fresh_id("mute")
    resrl.register_mcp(env_id, command=[*STDIO, "--mute"], tasks=TASKS, reward={"tool": "grade"}, start_timeout_s=1.0)
    env = resrl.make(env_id)
    try:
        task = resrl.Task(id="t", env_id=env_id, messages=[{"role": "user", "content": "hi"}])
        _, info = env.reset(options={"task": task})
        assert info["infra_error"].startswith("mcp start") and "1.0s" in info["infra_error"]
        _, reward, terminated, truncated, info = env.step(_call("add", n=1))
        assert truncated and not terminated and reward == 0.0 and info["infra_error"].startswith("mcp start")
    finally:
        env.close()


def test_a_server_that_fails_to_start_is_an_infra_error():
    env_id = fresh_id("missing")
    resrl.register_mcp(env_id, command=["/nonexistent/mcp-server"], tasks=TASKS, reward={"tool": "grade"})
    env = resrl.make(env_id)
    task = resrl.Task(id="t", env_id=env_id, messages=[{"role": "user", "content": "hi"}])
    _, info = env.reset(options={"task": task})
    assert info["infra_error"].startswith("mcp start") and "nonexistent" in info["infra_error"]
    env.close()


def test_specs_reject_bad_input(tmp_path):
    with pytest.raises(ValueError, match="exactly one of 'command'"):
        resrl.register_mcp(fresh_id("bad"), tasks=TASKS, reward={"tool": "grade"})
    bad = tmp_path / "env.yaml"
    bad.write_text("mcp:\n  - id: x/y\n    command: python s.py\n    tasks: t.py:gen\n    rewards: r.py:f\n")
    from resrl_envs.mcp import load_env_file

    with pytest.raises(ValueError, match=r"mcp entry 0 \(x/y\).*reward: Field required.*rewards: Extra inputs"):
        load_env_file(bad)
    bad.write_text("envs: []\n")
    with pytest.raises(ValueError, match="unknown section"):
        load_env_file(bad)
