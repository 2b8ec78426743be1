"""The env server's HTTP API against a real uvicorn server on loopback."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from resrl.core.task import Task, write_jsonl
from resrl_servers.env.app import ServerConfig
from tests.server.helpers import running_server, wait_until


@pytest.fixture
def http(server_url):
    with httpx.Client(base_url=server_url, timeout=30) as client:
        yield client


def _open(http, **body):
    response = http.post("/v1/sessions", json={"env_id": "debug/echo", **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_lists_hosted_envs(http):
    envs = {e["id"]: e for e in http.get("/v1/envs").json()["envs"]}
    assert {"debug/echo", "test/crash", "test/slow"} <= set(envs)
    assert envs["debug/echo"]["multi_turn"] is True
    assert "echo" in envs["debug/echo"]["description"].lower()


def test_episode_holds_state_and_scores_gold(http):
    created = _open(http, seed=4)
    sid = created["session_id"]
    assert created["observation"][0]["role"] == "user"
    assert created["info"]["task_id"] == "echo-train-4-0"
    step = http.post(f"/v1/sessions/{sid}/step", json={"action": "hello"}).json()
    assert step["observation"] == [{"role": "user", "content": "hello"}]
    assert (step["reward"], step["terminated"]) == (0.0, False)
    last = http.post(f"/v1/sessions/{sid}/step", json={"action": {"role": "assistant", "content": "done"}}).json()
    assert (last["reward"], last["terminated"]) == (1.0, True)
    again = http.post(f"/v1/sessions/{sid}/step", json={"action": "done"})
    assert again.status_code == 409 and again.json()["error"]["kind"] == "session_closed"
    assert http.delete(f"/v1/sessions/{sid}").json() == {"session_id": sid, "closed": True}
    gone = http.delete(f"/v1/sessions/{sid}")
    assert gone.status_code == 404 and gone.json()["error"]["kind"] == "unknown_session"


def test_models_bad_action_is_an_observation(http):
    sid = _open(http)["session_id"]
    response = http.post(f"/v1/sessions/{sid}/step", json={"action": '<tool_call>{"name": </tool_call>'})
    assert response.status_code == 200
    body = response.json()
    assert body["info"]["parse_error"]["kind"] == "bad_json"
    assert body["observation"][0]["content"].startswith("Error")
    assert body["terminated"] is False


def test_typed_client_errors(http):
    unknown_env = http.post("/v1/sessions", json={"env_id": "no/such"})
    assert unknown_env.status_code == 404 and unknown_env.json()["error"]["kind"] == "unknown_env"
    unknown_session = http.post("/v1/sessions/nope/step", json={"action": "x"})
    assert unknown_session.status_code == 404 and unknown_session.json()["error"]["kind"] == "unknown_session"
    for bad in (b"{", b'{"env_id": 3}', b'{"env_id": "debug/echo", "seed": -1}', b'{"env_id": "x", "extra": 1}'):
        response = http.post("/v1/sessions", content=bad, headers={"content-type": "application/json"})
        assert response.status_code == 422 and response.json()["error"]["kind"] == "invalid_request", bad
    both = http.post("/v1/sessions", json={"env_id": "debug/echo", "task_id": "test/1", "task": _task().model_dump()})
    assert both.status_code == 422
    no_task = http.post("/v1/sessions", json={"env_id": "debug/echo", "task_id": "nonsense"})
    assert no_task.status_code == 404 and no_task.json()["error"]["kind"] == "unknown_task"


def _task() -> Task:
    return Task(id="mine", env_id="debug/echo", messages=[{"role": "user", "content": "say done"}], answer="done")


def test_task_by_value_and_generated_task_id(http):
    assert _open(http, task=_task().model_dump())["info"]["task_id"] == "mine"
    first = _open(http, task_id="test/7")
    assert first["info"]["task_id"] == "echo-test-7-0"
    assert _open(http, task_id="test/7")["observation"] == first["observation"]


def test_task_ids_from_a_loaded_task_file(tmp_path):
    path = tmp_path / "tasks.jsonl"
    write_jsonl([_task()], path)
    with running_server(ServerConfig(env_patterns=["debug/*"], task_files=[str(path)])) as url:
        body = httpx.post(f"{url}/v1/sessions", json={"env_id": "debug/echo", "task_id": "mine"}).json()
    assert body["observation"] == [{"role": "user", "content": "say done"}]


def test_env_crash_is_typed_closes_the_session_and_the_server_stays_up(http):
    created = http.post("/v1/sessions", json={"env_id": "test/crash"}).json()
    sid = created["session_id"]
    assert http.post(f"/v1/sessions/{sid}/step", json={"action": "fine"}).status_code == 200
    crashed = http.post(f"/v1/sessions/{sid}/step", json={"action": "boom"})
    assert crashed.status_code == 500
    assert crashed.json()["error"] == {
        "kind": "env_error",
        "message": crashed.json()["error"]["message"],
        "session_id": sid,
    }
    assert "the env blew up" in crashed.json()["error"]["message"]
    assert http.post(f"/v1/sessions/{sid}/step", json={"action": "fine"}).status_code == 404
    assert http.get("/healthz").json()["status"] == "ok"
    assert 'resrl_env_errors_total{kind="env_error"}' in http.get("/metrics").text


def test_slow_env_neither_blocks_the_loop_nor_outlives_the_timeout():
    config = ServerConfig(env_patterns=["test/*"], step_timeout_s=1.0)
    with running_server(config) as url, httpx.Client(base_url=url, timeout=30) as http:
        sid = http.post("/v1/sessions", json={"env_id": "test/slow"}).json()["session_id"]
        result: dict = {}
        slow = threading.Thread(
            target=lambda: result.update(r=http.post(f"/v1/sessions/{sid}/step", json={"action": "3"}))
        )
        slow.start()
        # while the slow step runs in the thread pool, the event loop still answers
        wait_until(lambda: "resrl_env_steps_in_flight 1.0" in http.get("/metrics").text)
        assert slow.is_alive() and http.get("/healthz").status_code == 200
        slow.join()
        assert result["r"].status_code == 504 and result["r"].json()["error"]["kind"] == "step_timeout"
        assert http.get("/healthz").json()["sessions"] == 0


def test_capacity_queue_then_429_with_retry_after():
    config = ServerConfig(env_patterns=["debug/*"], max_sessions=2, max_waiting=1, queue_timeout_s=20)
    with running_server(config) as url, httpx.Client(base_url=url, timeout=30) as http:
        held = [http.post("/v1/sessions", json={"env_id": "debug/echo"}).json()["session_id"] for _ in range(2)]
        queued: dict = {}
        waiter = threading.Thread(
            target=lambda: queued.update(r=httpx.post(f"{url}/v1/sessions", json={"env_id": "debug/echo"}, timeout=30))
        )
        waiter.start()
        wait_until(lambda: "resrl_env_sessions_waiting 1.0" in http.get("/metrics").text)
        refused = http.post("/v1/sessions", json={"env_id": "debug/echo"})
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1" and refused.json()["error"]["kind"] == "capacity"
        http.delete(f"/v1/sessions/{held[0]}")
        waiter.join()
        assert queued["r"].status_code == 200


def test_idle_sessions_are_reaped():
    config = ServerConfig(env_patterns=["debug/*"], session_ttl_s=0.3)
    with running_server(config) as url, httpx.Client(base_url=url, timeout=30) as http:
        sid = http.post("/v1/sessions", json={"env_id": "debug/echo"}).json()["session_id"]
        wait_until(lambda: http.get("/healthz").json()["sessions"] == 0)
        assert http.post(f"/v1/sessions/{sid}/step", json={"action": "x"}).status_code == 404
        assert "resrl_env_sessions_reaped_total 1.0" in http.get("/metrics").text


def test_metrics_count_steps_and_latency(http):
    sid = _open(http)["session_id"]
    http.post(f"/v1/sessions/{sid}/step", json={"action": "a"})
    text = http.get("/metrics").text
    assert 'resrl_env_steps_total{env_id="debug/echo"}' in text
    assert 'resrl_env_step_seconds_bucket{env_id="debug/echo",le="+Inf"}' in text
    assert "resrl_env_sessions_active" in text


def test_websocket_sessions(server_url):
    from websockets.sync.client import connect

    with connect(server_url.replace("http", "ws", 1) + "/v1/ws") as ws:
        ws.send(json.dumps({"op": "step", "action": "x"}))
        assert json.loads(ws.recv())["error"]["kind"] == "session_closed"
        ws.send(json.dumps({"op": "reset", "env_id": "debug/echo", "seed": 4}))
        created = json.loads(ws.recv())
        assert created["info"]["task_id"] == "echo-train-4-0"
        ws.send(json.dumps({"op": "step", "action": "hello"}))
        assert json.loads(ws.recv())["observation"] == [{"role": "user", "content": "hello"}]
        ws.send(json.dumps({"op": "step", "action": {"content": "done"}}))
        assert json.loads(ws.recv())["reward"] == 1.0
        ws.send(json.dumps({"op": "bogus"}))
        bad = json.loads(ws.recv())
        assert bad["status"] == 422 and bad["error"]["kind"] == "invalid_request"
        ws.send(json.dumps({"op": "reset", "env_id": "debug/echo"}))
        second = json.loads(ws.recv())["session_id"]
        assert second != created["session_id"]
        assert (
            httpx.post(f"{server_url}/v1/sessions/{created['session_id']}/step", json={"action": "x"}).status_code
            == 404
        )
    # the socket's session is closed when the socket goes away
    wait_until(lambda: httpx.post(f"{server_url}/v1/sessions/{second}/step", json={"action": "x"}).status_code == 404)
