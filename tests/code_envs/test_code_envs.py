"""The code environments: env checks, splits, grading through the sandbox, the run_python tool, remote sandbox."""

from __future__ import annotations

import pytest

import resrl
from resrl.core.check import check_env
from resrl_envs.code.envs import extract_code
from resrl_envs.code.problems import draw_problems

CODE_ENVS = ["code/function", "code/stdio", "code/interactive"]


@pytest.mark.parametrize("env_id", CODE_ENVS)
def test_envs_pass_the_checker(env_id):
    results = check_env(env_id)
    assert [r.name for r in results if not r.passed] == []


def test_train_and_test_never_share_a_prompt():
    env_cls = type(resrl.make("code/function"))
    train = {t.messages[0]["content"] for t in env_cls.generate_tasks("train", 200, seed=1)}
    test = {t.messages[0]["content"] for t in env_cls.generate_tasks("test", 60, seed=2)}
    assert train and test and not train & test
    assert [p.key for p in draw_problems("train", 5, 7)] == [p.key for p in draw_problems("train", 5, 7)]


def test_humaneval_is_eval_only():
    env_cls = type(resrl.make("code/function"))
    tasks = env_cls.generate_tasks("eval", 500, seed=0)
    assert len(tasks) == 164 and {t.split for t in tasks} == {"eval"}
    assert all(t.metadata["source"] == "humaneval" for t in tasks)
    for split in ("train", "test"):
        assert all(t.metadata["source"] == "generated" for t in env_cls.generate_tasks(split, 50, seed=0))


def test_humaneval_episode_is_graded():
    env = resrl.make("code/function")
    task = next(t for t in type(env).generate_tasks("eval", 164, 0) if t.id == "humaneval-0")
    env.reset(options={"task": task})
    gold = type(env).gold_actions(task)[0].content
    assert env.step(gold)[1] == 1.0
    env.reset(options={"task": task})
    body = "```python\n    return None\n```"
    _, reward, terminated, _, info = env.step(body)
    assert (reward, terminated, info["status"]) == (0.0, True, "failed")


def test_stdio_wrong_program_gets_partial_credit_in_info():
    env = resrl.make("code/stdio")
    env.reset(seed=3, options={"split": "test"})
    _, reward, _, _, info = env.step("```python\nprint(0)\n```")
    assert reward == 0.0
    assert 0.0 <= info["pass_fraction"] < 1.0
    assert info["reward_components"]["tests_passed"] == info["pass_fraction"]


def test_interactive_tool_runs_code_and_shows_output():
    env = resrl.make("code/interactive")
    _, info = env.reset(seed=0, options={"split": "test"})
    assert [t["function"]["name"] for t in info["tools"]] == ["run_python"]
    call = '<tool_call>{"name": "run_python", "arguments": {"code": "print(sum(range(5)))"}}</tool_call>'
    obs, reward, terminated, _, _ = env.step(call)
    assert not terminated and reward == 0.0
    assert "status: passed" in obs[0]["content"] and "10" in obs[0]["content"]
    bad = '<tool_call>{"name": "run_python", "arguments": {"code": "while True: pass"}}</tool_call>'
    env.limits = env.limits.model_copy(update={"wall_s": 1.0, "cpu_s": 1})
    obs, *_ = env.step(bad)
    assert "status: timeout" in obs[0]["content"]
    _, reward, terminated, _, _ = env.step("no code here")
    assert terminated and reward == 0.0


def test_extract_code_prefers_the_last_python_block():
    text = "```\nplain\n```\n```python\nfirst\n```\nthen\n```py\nsecond\n```"
    assert extract_code(text) == "second\n"
    assert extract_code("```\nonly\n```") == "only\n"
    assert extract_code("no code") is None


def test_env_uses_a_remote_sandbox_server_and_flags_infra_errors():
    from tests.sandbox.support import free_port, start_server, stop_server

    proc, url = start_server("--workers", "1")
    try:
        env = resrl.make("code/function", sandbox=url)
        task = type(env).generate_tasks("test", 1, 0)[0]
        env.reset(options={"task": task})
        _, reward, *_ = env.step(type(env).gold_actions(task)[0].content)
        assert reward == 1.0
    finally:
        stop_server(proc)
    env = resrl.make("code/function", sandbox=f"http://127.0.0.1:{free_port()}")
    env.reset(options={"task": task})
    _, reward, _, _, info = env.step(type(env).gold_actions(task)[0].content)
    assert reward == 0.0 and "infra_error" in info
