"""Entry points of a really installed package (a dist-info folder on PYTHONPATH, as pip leaves it): a plain
``gymnasium.Env``, factory functions, broken plugins, a slow plugin under threads; and ``resrl rollout
--task-file`` with no infra errors (its worker threads once saw an empty registry)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import resrl
from resrl.core.registry import ENTRY_POINT_GROUP
from resrl.core.task import read_jsonl
from tests.core import plainenv_plugin
from tests.server.helpers import free_port, wait_until


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder holding the plugin module and its dist-info, like ``pip install --target`` makes."""
    target = tmp_path_factory.mktemp("site")
    shutil.copy(plainenv_plugin.__file__, target / "plainenv_plugin.py")
    info = target / "plainenv_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plainenv-plugin\nVersion: 0.1\n")
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{k} = {v}" for k, v in plainenv_plugin.ENTRY_POINTS.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return target


def _run(site: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_envs_list_shows_wrapped_envs_and_factories_and_warns_about_the_rest(site):
    proc = _run(site, "-m", "resrl", "envs", "list", "--json", "plain/*")
    assert proc.returncode == 0, proc.stderr
    listed = {e["id"]: e for e in json.loads(proc.stdout)}
    assert set(listed) == {"plain/echo", "plain/shout-ep", "plain/shout-factory", "plain/slow"}
    assert listed["plain/echo"]["description"] == "Repeat the word the user says, once per round."
    assert listed["plain/echo"]["multi_turn"] is True
    assert listed["plain/shout-factory"]["description"] == "Shout, built by a registered factory."
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, proc.stderr
    assert any("'plain/not-an-env'" in w and "neither" in w for w in warnings), warnings
    assert any("'plain/bad-class'" in w and "not a gymnasium.Env" in w for w in warnings), warnings


def test_envs_check_plays_the_plain_env_and_the_factories(site):
    proc = _run(site, "-m", "resrl", "envs", "check", "plain/echo", "plain/shout-ep", "plain/shout-factory")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 env(s) checked, 0 failed check(s)" in proc.stdout
    assert "SKIP plain/echo: gold solution" in proc.stdout
    assert "PASS plain/shout-factory: gold solution scores 1.0" in proc.stdout


def test_tasks_generate_and_make_in_threads_and_clear_errors(site, tmp_path):
    for env_id in ("plain/echo", "plain/shout-factory"):
        out = tmp_path / f"{env_id.replace('/', '-')}.jsonl"
        proc = _run(
            site, "-m", "resrl", "tasks", "generate", "--env", env_id, "--split", "test", "--n", "3", "--out", str(out)
        )
        assert proc.returncode == 0, proc.stderr
        assert len(read_jsonl(out)) == 3
    echo = read_jsonl(tmp_path / "plain-echo.jsonl")
    assert all(t.messages[0]["content"].startswith("Repeat after me: ") and "seed" in t.metadata for t in echo)

    proc = _run(site, "-m", "resrl", "tasks", "generate", "--env", "plain/bad-class", "--n", "1", "--out", "x.jsonl")
    assert proc.returncode == 2 and "'plain/bad-class'" in proc.stderr and "not a gymnasium.Env" in proc.stderr

    # eight threads ask at once while a plugin is still registering: each waits for it, none sees a gap
    script = """
import threading, resrl
barrier, errors, made = threading.Barrier(8), [], []
def worker():
    barrier.wait()
    try:
        made.append(resrl.make("plain/slow").env_id)
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=worker) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(len(made), errors)
try:
    resrl.make("plain/not-an-env")
except KeyError as exc:
    print("error:", exc.args[0])
"""
    proc = _run(site, "-c", script)
    assert proc.returncode == 0, proc.stderr
    counts, error = proc.stdout.strip().splitlines()
    assert counts == "8 []"
    assert error.startswith("error: environment plugin 'plain/not-an-env' (plainenv_plugin:NOT_AN_ENV)")
    assert "neither" in error


def test_serve_env_hosts_the_plain_env(site):
    from resrl.client import RemoteEnv

    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    cmd = [
        sys.executable,
        "-m",
        "resrl",
        "serve",
        "env",
        "--port",
        str(port),
        "--envs",
        "plain/*",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        def up() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None

        wait_until(up, timeout_s=120)
        assert proc.poll() is None, proc.stderr.read()
        remote = RemoteEnv(url, "plain/echo")
        for options in (None, {"task_id": "test/5"}):
            obs, _ = remote.reset(seed=3, options=options)
            word = obs[0]["content"].removeprefix("Repeat after me: ")
            _, reward, terminated, _, _ = remote.step(word)
            assert (reward, terminated) == (1.0, True)
        remote.close()
    finally:
        proc.terminate()
        proc.wait(20)


def test_trainer_runs_on_a_plain_gymnasium_env(tmp_path):
    from resrl.models import build_tiny
    from resrl.trainer.config import validate_config
    from resrl.trainer.logs import read_records
    from resrl.trainer.loop import Trainer

    resrl.register("plain/echo-in-process", plainenv_plugin.EchoWordEnv, rounds=2)
    model = build_tiny(tmp_path / "model", vocab_size=512, hidden=64, layers=2, heads=2)
    cfg = {
        "model": {"path": str(model), "gradient_checkpointing": True},
        "data": {"envs": ["plain/echo-in-process"], "train_tasks": 4, "test_tasks": 2},
        "rollout": {"n": 2, "max_turns": 2, "max_tokens": 32, "max_new_tokens_per_turn": 6},
        "algo": {"scheme": "grpo"},
        "optim": {"lr": 1e-3, "mini_batch_size": 4, "micro_batch_size": 4, "ppo_epochs": 1},
        "train": {"steps": 1, "tasks_per_step": 2, "eval_every": 1, "eval_k": 2, "out_dir": str(tmp_path / "run")},
    }
    trainer = Trainer(validate_config(cfg))
    try:
        # the layers recompute in backward (enabled through resrl.models.hf_api, whatever the transformers version)
        assert any(getattr(m, "gradient_checkpointing", False) for m in trainer.model.modules())
        result = trainer.run()
    finally:
        trainer.close()
    assert 0.0 <= result["avg_at_k"] <= result["pass_at_k"] <= 1.0
    assert result["episodes"] == 4 and result["infra_errors"] == 0, result  # the eval: 2 test tasks x k=2
    assert [r["step"] for r in read_records(tmp_path / "run" / "metrics.jsonl", "train")] == [1]


def test_rollout_with_a_task_file_has_no_infra_errors(tmp_path):
    from resrl.models import build_tiny

    model = build_tiny(tmp_path / "model", vocab_size=512, hidden=64, layers=2, heads=2)
    tasks, out = tmp_path / "tasks.jsonl", tmp_path / "traj.jsonl"
    gen = _run(
        tmp_path,
        "-m",
        "resrl",
        "tasks",
        "generate",
        "--env",
        "fc/simple",
        "--split",
        "test",
        "--n",
        "8",
        "--out",
        str(tasks),
    )
    assert gen.returncode == 0, gen.stderr
    cmd = ["-m", "resrl", "rollout", "--env", "fc/simple", "--task-file", str(tasks), "--policy", f"hf:{model}"]
    proc = _run(tmp_path, *cmd, "--n", "1", "--max-turns", "1", "--max-new-tokens", "4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    trajectories = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(trajectories) == 8
    assert [t["infra_error"] for t in trajectories] == [None] * 8
    assert json.loads(proc.stdout[proc.stdout.index("{") :])["infra_errors"] == 0
