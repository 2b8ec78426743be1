"""An ``mcp`` SDK client plays resrl episodes through the env server's ``/mcp`` endpoint."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from mcp import Client

import resrl
from resrl_servers.env.app import ServerConfig
from tests.server.helpers import running_server

ENV = "fc/simple"


@pytest.fixture(scope="module")
def mcp_url():
    with running_server(ServerConfig(env_patterns=[ENV, "fc/multi/banking"])) as url:
        yield f"{url}/mcp"


def _names(listing) -> set[str]:
    return {t.name for t in listing.tools}


def test_an_mcp_client_plays_an_episode_and_gets_the_reward(mcp_url):
    task = resrl.spec(ENV).load().generate_tasks("test", 1, 3)[0]
    (gold,) = resrl.spec(ENV).load().gold_actions(task)
    (call,) = gold.tool_calls

    async def play():
        async with Client(mcp_url) as client:  # default mode "auto": the server's refusal makes it shake hands
            assert _names(await client.list_tools()) == {"start_episode", "reply", "end_episode"}
            started = await client.call_tool("start_episode", {"env_id": ENV, "task_id": "test/3"})
            assert not started.is_error and task.messages[-1]["content"] in started.content[0].text
            tools = _names(await client.list_tools())
            right = await client.call_tool(call.name, call.arguments)
            after = await client.call_tool(call.name, call.arguments)
            tools_after = _names(await client.list_tools())
            await client.call_tool("start_episode", {"env_id": ENV, "task_id": "test/3"})  # the same task again
            wrong = await client.call_tool(call.name, {"no_such_argument": 1})
            return tools, right, after, tools_after, wrong

    tools, right, after, tools_after, wrong = asyncio.run(play())
    assert {s["function"]["name"] for s in task.tools} <= tools
    # fc/simple is single-turn: the call is the episode's only turn and carries the reward
    assert right.structured_content["terminated"] and right.structured_content["reward"] == 1.0
    assert "episode over: reward 1" in right.content[0].text
    assert after.is_error and "no episode is running" in after.content[0].text
    assert tools_after == {"start_episode", "reply", "end_episode"}
    assert wrong.structured_content["terminated"] and wrong.structured_content["reward"] < 1.0


def test_a_multi_turn_episode_through_mcp_reaches_its_reward(mcp_url):
    env_id = "fc/multi/banking"
    cls = resrl.spec(env_id).load()
    task = cls.generate_tasks("test", 1, 5)[0]
    turns = cls.gold_actions(task)

    async def play():
        rewards, texts = [], []
        async with Client(mcp_url) as client:
            started = await client.call_tool("start_episode", {"env_id": env_id, "task_id": "test/5"})
            assert not started.is_error
            for turn in turns:
                for call in turn.tool_calls:
                    out = await client.call_tool(call.name, call.arguments)
                    assert not out.is_error, out.content[0].text
                    texts.append(out.content[0].text)
                if not turn.tool_calls:
                    out = await client.call_tool("reply", {"message": turn.content})
                    rewards.append(out.structured_content["reward"])
            ended = await client.call_tool("end_episode", {})
        return rewards, texts, out, ended

    rewards, texts, last, ended = asyncio.run(play())
    assert texts and last.structured_content["terminated"] and sum(rewards) == 1.0
    assert "episode over: reward 1" in last.content[0].text and ended.structured_content == {"closed": False}


def test_unknown_envs_and_sessionless_requests_are_refused(mcp_url):
    async def start_unknown():
        async with Client(mcp_url) as client:
            return await client.call_tool("start_episode", {"env_id": "no/such"})

    out = asyncio.run(start_unknown())
    assert out.is_error and "unknown env_id" in out.content[0].text
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"mcp-protocol-version": "2026-07-28", "accept": "application/json, text/event-stream"}
    response = httpx.post(mcp_url, json=body, headers=headers)
    assert response.status_code == 400 and "initialize handshake" in response.json()["error"]["message"]
