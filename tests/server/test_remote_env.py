"""RemoteEnv / AsyncRemoteEnv against real env servers on loopback."""

from __future__ import annotations

import asyncio
import threading

import gymnasium as gym
import httpx
import pytest

from resrl.client import AsyncRemoteEnv, AsyncSocketEnv, EnvServerError, RemoteEnv, RetryPolicy
from resrl_servers.env.app import ServerConfig
from tests.server.helpers import free_port, running_server, wait_until

FAST = RetryPolicy(attempts=4, backoff_s=0.01, max_backoff_s=0.05)


def _sessions(url: str) -> int:
    return httpx.get(f"{url}/healthz").json()["sessions"]


def test_remote_env_plays_a_gold_episode_and_close_deletes(server_url):
    env = RemoteEnv(server_url, "debug/echo")
    assert isinstance(env, gym.Env)
    obs, info = env.reset(seed=2)
    assert info["task_id"] == "echo-train-2-0" and obs[0]["role"] == "user"
    assert env.step("hello")[0] == [{"role": "user", "content": "hello"}]
    obs, reward, terminated, truncated, _ = env.step({"role": "assistant", "content": "done"})
    assert (reward, terminated, truncated) == (1.0, True, False)
    with pytest.raises(gym.error.ResetNeeded):
        env.step("more")
    before = _sessions(server_url)
    env.close()
    assert _sessions(server_url) == before - 1


def test_reset_replaces_the_session_and_takes_tasks(server_url):
    env = RemoteEnv(server_url, "debug/echo", max_steps=3)
    env.reset(options={"task_id": "test/9"})
    first = env.session_id
    obs, info = env.reset(
        options={"task": {"id": "t", "env_id": "debug/echo", "messages": [{"role": "user", "content": "hi"}]}}
    )
    assert env.session_id != first and info["task_id"] == "t" and obs[0]["content"] == "hi"
    for _ in range(2):
        assert env.step("x")[3] is False
    assert env.step("x")[3] is True  # the max_steps option reached the server
    env.close()


def test_sessions_are_balanced_over_servers():
    with running_server() as a, running_server() as b:
        envs = [RemoteEnv([a, b], "debug/echo") for _ in range(4)]
        for env in envs:
            env.reset()
        assert (_sessions(a), _sessions(b)) == (2, 2)
        for env in envs:
            env.close()
        assert (_sessions(a), _sessions(b)) == (0, 0)


def test_a_dead_server_is_skipped(server_url):
    dead = f"http://127.0.0.1:{free_port()}"
    env = RemoteEnv([dead, server_url], "debug/echo", retry=FAST)
    for _ in range(3):
        env.reset()
        assert env.url == server_url
    env.close()


def test_no_server_raises_a_typed_infra_error():
    env = RemoteEnv(f"http://127.0.0.1:{free_port()}", "debug/echo", retry=FAST)
    with pytest.raises(EnvServerError) as err:
        env.reset()
    assert err.value.kind == "connection" and err.value.infra_error
    env.close()


def test_env_crash_raises_env_error(server_url):
    env = RemoteEnv(server_url, "test/crash")
    env.reset()
    with pytest.raises(EnvServerError) as err:
        env.step("boom")
    assert err.value.kind == "env_error" and err.value.status == 500
    with pytest.raises(gym.error.ResetNeeded):
        env.step("again")
    env.close()


def test_unknown_env_is_not_retried(server_url):
    env = RemoteEnv(server_url, "no/such", retry=FAST)
    with pytest.raises(EnvServerError) as err:
        env.reset()
    assert err.value.kind == "unknown_env" and err.value.status == 404


def test_429_is_retried_after_retry_after():
    config = ServerConfig(env_patterns=["debug/*"], max_sessions=1, max_waiting=0)
    with running_server(config) as url:
        holder = RemoteEnv(url, "debug/echo")
        holder.reset()
        waiter = RemoteEnv(url, "debug/echo", retry=RetryPolicy(attempts=5))
        done = threading.Event()
        thread = threading.Thread(target=lambda: (waiter.reset(), done.set()))
        thread.start()
        # the waiter is refused (429, Retry-After: 1) until the holder lets go
        wait_until(lambda: 'resrl_env_errors_total{kind="capacity"}' in httpx.get(f"{url}/metrics").text)
        assert not done.is_set()
        holder.close()
        thread.join(30)
        assert done.is_set() and waiter.session_id is not None
        waiter.close()


def test_async_remote_env_runs_many_episodes_concurrently(server_url):
    async def episode(i: int) -> float:
        async with AsyncRemoteEnv(server_url, "debug/echo") as env:
            await env.reset(seed=i)
            await env.step(f"turn {i}")
            return (await env.step("done"))[1]

    async def main() -> list[float]:
        return await asyncio.gather(*(episode(i) for i in range(32)))

    before = _sessions(server_url)
    assert asyncio.run(main()) == [1.0] * 32
    assert _sessions(server_url) == before  # every session was deleted on exit


def test_socket_env_plays_episodes_and_types_errors(server_url):
    async def episode(i: int) -> float:
        async with AsyncSocketEnv(server_url, "debug/echo") as env:
            _, info = await env.reset(seed=i)
            assert info["task_id"] == f"echo-train-{i}-0"
            assert (await env.step(f"turn {i}"))[0] == [{"role": "user", "content": f"turn {i}"}]
            reward = (await env.step({"role": "assistant", "content": "done"}))[1]
            with pytest.raises(gym.error.ResetNeeded):
                await env.step("more")
            return reward

    async def crash() -> EnvServerError:
        async with AsyncSocketEnv(server_url, "test/crash") as env:
            await env.reset()
            with pytest.raises(EnvServerError) as err:
                await env.step("boom")
            return err.value

    async def main():
        return await asyncio.gather(*(episode(i) for i in range(16))), await crash()

    before = _sessions(server_url)
    rewards, error = asyncio.run(main())
    assert rewards == [1.0] * 16
    assert error.kind == "env_error" and error.status == 500 and error.infra_error
    wait_until(lambda: _sessions(server_url) == before)


def test_socket_env_skips_a_dead_server_and_reports_none(server_url):
    dead = f"http://127.0.0.1:{free_port()}"

    async def main():
        env = AsyncSocketEnv([dead, server_url], "debug/echo", retry=FAST)
        await env.reset()
        url = env.url
        await env.close()
        lonely = AsyncSocketEnv(dead, "debug/echo", retry=FAST)
        with pytest.raises(EnvServerError) as err:
            await lonely.reset()
        return url, err.value.kind

    assert asyncio.run(main()) == (server_url, "connection")
