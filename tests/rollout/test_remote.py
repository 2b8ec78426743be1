"""The collector against envs behind a real ``resrl serve env`` server on loopback (sync and async clients)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from lookup_env import ENV_ID, LookupEnv

import resrl
from resrl.client import AsyncRemoteEnv, RemoteEnv
from resrl.models import build_tokenizer
from resrl.rollout import Collector, ScriptedPolicy

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def server_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "resrl",
            "serve",
            "env",
            "--import",
            "lookup_env_plugin",
            "--envs",
            ENV_ID,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            if proc.poll() is not None:
                pytest.fail(f"env server exited: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail("env server did not become healthy in 60s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def gold_policy():
    tok = build_tokenizer("chatml")
    hermes = resrl.get_format("hermes")
    answers = {
        k: str(LookupEnv.tools.call(resrl.ToolCall(name="lookup", arguments={"key": k})).value)
        for k in ("apple", "river", "cloud", "stone", "maple", "otter")
    }

    def respond(prompt: str) -> str:
        key = prompt.split("stored under '")[1].split("'")[0]
        if "<tool_response>" in prompt:
            return answers[key]
        return hermes.render("", [resrl.ToolCall(name="lookup", arguments={"key": key})])

    return ScriptedPolicy(tok, respond)


@pytest.mark.parametrize("client", [RemoteEnv, AsyncRemoteEnv])
def test_remote_episodes_match_in_process(server_url, gold_policy, client):
    tasks = LookupEnv.generate_tasks("test", 3, 2)
    local = Collector(gold_policy, ENV_ID, max_turns=3, progress=False).collect(tasks, 2)
    remote = Collector(gold_policy, lambda: client(server_url, ENV_ID), max_turns=3, progress=False).collect(tasks, 2)
    for a, b in zip(local, remote, strict=True):
        assert b.infra_error is None and b.reward == 1.0 and b.turns == 2
        assert (a.prompt_ids, a.response_ids, a.loss_mask) == (b.prompt_ids, b.response_ids, b.loss_mask)


def test_unreachable_server_is_an_infra_error(gold_policy):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    tasks = LookupEnv.generate_tasks("test", 1, 2)
    (traj,) = Collector(gold_policy, lambda: RemoteEnv(dead, ENV_ID), progress=False).collect(tasks, 1)
    assert traj.finish_reason == "error" and traj.infra_error and traj.response_ids == []
