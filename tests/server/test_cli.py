"""``resrl serve env`` as a user starts it: a subprocess on loopback, driven through RemoteEnv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from resrl.client import RemoteEnv
from tests.server.helpers import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_env_command_hosts_the_chosen_envs():
    port = free_port()
    cmd = [sys.executable, "-m", "resrl", "serve", "env", "--port", str(port), "--envs", "debug/*"]
    proc = subprocess.Popen([*cmd, "--import", "resrl_servers.env.echo"], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(url) or proc.poll() is not None, timeout_s=60)
        assert proc.poll() is None, proc.stderr.read()
        assert [e["id"] for e in httpx.get(f"{url}/v1/envs").json()["envs"]] == ["debug/echo"]
        env = RemoteEnv(url, "debug/echo")
        env.reset(seed=1)
        env.step("hello")
        assert env.step("done")[1] == 1.0
        env.close()
    finally:
        proc.terminate()
        proc.wait(20)


def test_serve_env_rejects_an_unmatched_pattern():
    proc = subprocess.run(
        [sys.executable, "-m", "resrl", "serve", "env", "--envs", "nothing/*"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "no registered environment matches 'nothing/*'" in proc.stderr


def test_serve_env_no_inline_steps_puts_fast_envs_on_the_pool():
    port = free_port()
    cmd = [sys.executable, "-m", "resrl", "serve", "env", "--port", str(port), "--envs", "test/loop"]
    cmd += ["--import", "tests.server.helpers", "--no-inline-steps", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(url) or proc.poll() is not None, timeout_s=60)
        assert proc.poll() is None, proc.stderr.read()
        env = RemoteEnv(url, "test/loop")
        env.reset(seed=0)
        thread = env.step("where")[0][0]["content"]
        env.close()
        assert thread.startswith("resrl-env"), thread  # test/loop declares fast_step; the flag overrides it
    finally:
        proc.terminate()
        proc.wait(20)


def test_rollout_remote_takes_several_replicas(tmp_path, capsys):
    """``resrl rollout --remote A,B``: gold episodes on two env servers, one of them down, all score 1."""
    import json

    from resrl.cli import main
    from resrl.models import build_tokenizer
    from resrl_servers.env.app import ServerConfig
    from tests.server.helpers import running_server

    tok_dir = tmp_path / "tok"
    build_tokenizer("chatml").save_pretrained(tok_dir)
    dead = f"http://127.0.0.1:{free_port()}"
    with running_server(ServerConfig(env_patterns=["fc/*"])) as url:
        out = tmp_path / "t.jsonl"
        argv = ["rollout", "--env", "fc/simple", "--policy", f"gold:{tok_dir}", "--tasks", "4", "--n", "2"]
        assert main([*argv, "--remote", f"{dead},{url}", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 8 and all(r["infra_error"] is None and r["reward"] == 1.0 for r in rows)
    assert capsys.readouterr().out.count('"infra_errors": 0') == 1
