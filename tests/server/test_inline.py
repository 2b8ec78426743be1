"""Inline steps (``fast_step`` envs on the event loop) and the plain-ASGI step lane, on a real server."""

from __future__ import annotations

import threading

import httpx

from resrl_servers.env.app import ServerConfig
from tests.server.helpers import running_server, wait_until

POOL = "resrl-env"  # the env thread pool's thread-name prefix


def _thread_of_step(http: httpx.Client, sid: str, action: str = "where") -> str:
    response = http.post(f"/v1/sessions/{sid}/step", json={"action": action})
    assert response.status_code == 200, response.text
    return response.json()["observation"][0]["content"]


def _open(http: httpx.Client, env_id: str) -> str:
    response = http.post("/v1/sessions", json={"env_id": env_id, "options": {"max_steps": 100}})
    assert response.status_code == 200, response.text
    return response.json()["session_id"]


def test_fast_step_envs_run_on_the_event_loop_unless_disabled():
    for inline in (True, False):
        with (
            running_server(ServerConfig(env_patterns=["test/*"], inline_steps=inline)) as url,
            httpx.Client(base_url=url, timeout=30) as http,
        ):
            thread = _thread_of_step(http, _open(http, "test/loop"))
            assert thread.startswith(POOL) is not inline, (inline, thread)
            # envs that do not declare fast_step always use the pool
            crash_sid = _open(http, "test/crash")
            assert http.post(f"/v1/sessions/{crash_sid}/step", json={"action": "fine"}).status_code == 200


def test_a_broken_fast_step_promise_moves_the_env_to_the_thread_pool():
    config = ServerConfig(env_patterns=["test/*"], inline_limit_s=0.05)
    with running_server(config) as url, httpx.Client(base_url=url, timeout=30) as http:
        sid, other = _open(http, "test/loop"), _open(http, "test/loop")
        assert not _thread_of_step(http, sid).startswith(POOL)
        assert not _thread_of_step(http, sid, "sleep 0.2").startswith(POOL)  # ran inline, overran the limit
        assert _thread_of_step(http, sid).startswith(POOL)
        assert _thread_of_step(http, other).startswith(POOL)  # every session of that env id, and new ones
        assert _thread_of_step(http, _open(http, "test/loop")).startswith(POOL)


def test_a_slow_sync_env_does_not_block_inline_steps_of_other_sessions():
    config = ServerConfig(env_patterns=["debug/*", "test/*"], step_timeout_s=30)
    with running_server(config) as url, httpx.Client(base_url=url, timeout=30) as http:
        slow_sid, echo_sid = _open(http, "test/slow"), _open(http, "debug/echo")
        done: dict = {}
        slow = threading.Thread(
            target=lambda: done.update(
                r=httpx.post(f"{url}/v1/sessions/{slow_sid}/step", json={"action": "3"}, timeout=30)
            )
        )
        slow.start()
        wait_until(lambda: "resrl_env_steps_in_flight 1.0" in http.get("/metrics").text)
        for i in range(20):  # echo steps inline on the loop while the slow step holds a pool thread
            step = http.post(f"/v1/sessions/{echo_sid}/step", json={"action": f"turn {i}"})
            assert step.status_code == 200 and step.json()["observation"] == [{"role": "user", "content": f"turn {i}"}]
        assert slow.is_alive()
        slow.join()
        assert done["r"].status_code == 200 and done["r"].json()["observation"][0]["content"] == "slept"


def test_step_lane_reads_chunked_bodies_and_leaves_invalid_ones_to_fastapi(server_url):
    with httpx.Client(base_url=server_url, timeout=30) as http:
        sid = _open(http, "debug/echo")
        chunks = iter([b'{"action": ', b'{"role": "assistant", ', b'"content": "hello"}}'])
        chunked = http.post(f"/v1/sessions/{sid}/step", content=chunks, headers={"content-type": "application/json"})
        assert chunked.status_code == 200 and chunked.json()["observation"] == [{"role": "user", "content": "hello"}]
        for bad in (b"{", b'{"action": 3}', b'{"action": "x", "extra": 1}', b""):
            response = http.post(f"/v1/sessions/{sid}/step", content=bad, headers={"content-type": "application/json"})
            assert response.status_code == 422, bad
            error = response.json()["error"]
            assert error["kind"] == "invalid_request" and error["message"].startswith("invalid request: "), bad
        # the session survived the bad bodies; other methods on the path are not the lane's
        assert _thread_of_step(http, sid, "again") == "again"
        assert http.get(f"/v1/sessions/{sid}/step").status_code == 405


def test_step_operation_stays_documented(server_url):
    schema = httpx.get(f"{server_url}/openapi.json").json()
    operation = schema["paths"]["/v1/sessions/{session_id}/step"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/StepRequest"}
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/StepResult"}
    assert {"404", "409", "422", "500", "504"} <= set(operation["responses"])
