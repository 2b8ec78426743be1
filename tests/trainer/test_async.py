"""One-step-off overlap (``train.async_steps``) on a tiny model with the hf backend (its sampling copy): 0 is the
synchronous run, 1 trains each batch one step stale with the truncated importance weight, and resumes exactly."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from resrl.trainer.batch import token_logprobs
from resrl.trainer.config import ConfigError, validate_config
from resrl.trainer.logs import read_records
from resrl.trainer.loop import Trainer
from resrl.trainer.overlap import DEFAULT_TIS_CAP, STATE_KEY, tis_default
from tests.trainer.conftest import assert_same_records, base_config

# W-REINFORCE trains on every success and every failure, so each step moves the weights whatever the outcomes.
ALGO = {"scheme": "w_reinforce"}


def _run(cfg_dict: dict, *, resume: bool = False) -> None:
    trainer = Trainer(validate_config(cfg_dict), resume=resume)
    try:
        trainer.run()
    finally:
        trainer.close()


def _weights(out) -> dict[str, torch.Tensor]:
    ckpts = sorted((out / "checkpoints").glob("step_*"))
    return load_file(ckpts[-1] / "model" / "model.safetensors")


def test_async_steps_0_is_the_synchronous_run(warm_model, tmp_path):
    plain, zero = tmp_path / "plain", tmp_path / "zero"
    _run(base_config(warm_model, plain, algo=ALGO))
    _run(base_config(warm_model, zero, algo=ALGO, train={"async_steps": 0}))
    a, b = read_records(plain / "metrics.jsonl"), read_records(zero / "metrics.jsonl")
    assert [(r["kind"], r["step"]) for r in a] == [(r["kind"], r["step"]) for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert ra == rb
    assert not any(k.startswith("loss/tis_") for r in a for k in r)  # no correction without overlap
    wa, wb = _weights(plain), _weights(zero)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_config_async_steps_and_the_tis_default(warm_model, tmp_path):
    with pytest.raises(ConfigError, match=r"train\.async_steps"):
        validate_config(base_config(warm_model, tmp_path, train={"async_steps": 2}))
    on = validate_config(base_config(warm_model, tmp_path, train={"async_steps": 1}))
    assert tis_default(on) == {"tis_cap": DEFAULT_TIS_CAP}
    off = validate_config(base_config(warm_model, tmp_path, train={"async_steps": 1}, algo={"tis_cap": None}))
    assert tis_default(off) == {}  # an explicit null keeps the correction off
    sync = validate_config(base_config(warm_model, tmp_path))
    assert tis_default(sync) == {} and sync.algo.tis_cap is None


def test_each_batch_was_sampled_by_the_weights_before_the_previous_update(warm_model, tmp_path):
    raw = base_config(warm_model, tmp_path / "run", algo=ALGO, train={"steps": 3, "async_steps": 1})
    trainer = Trainer(validate_config(raw))
    try:
        assert trainer.engine.policy.model is not trainer.model  # the sampler is a copy, not the trained module
        assert trainer.algo.tis_cap == DEFAULT_TIS_CAP
        weights = [copy.deepcopy(trainer.model.state_dict())]  # W_0
        batches, metrics = [], []
        for step in (1, 2, 3):
            metrics.append(trainer.train_step(step))
            batches.append(trainer.last_batch)
            weights.append(copy.deepcopy(trainer.model.state_dict()))  # W_step
            if step == 2:  # an evaluation waits for step 3's batch in flight, then scores W_2 itself
                trainer.evaluate(step)
                sampler = trainer.engine.policy.model.state_dict()
                assert all(torch.equal(sampler[k], weights[2][k]) for k in weights[2])
        probe = copy.deepcopy(trainer.model)
    finally:
        trainer.close()

    def gap(batch, state) -> float:
        """Largest |recorded behaviour log-prob - forward pass of ``state``| over the trained tokens."""
        probe.load_state_dict(state)
        with torch.no_grad():
            logp, _ = token_logprobs(probe, batch.input_ids, batch.attention_mask, mask=batch.mask)
        return float((logp - batch.behaviour_logprobs)[batch.mask].abs().max())

    for t in (1, 2):
        assert any(not torch.equal(weights[t][k], weights[t - 1][k]) for k in weights[t]), metrics[t - 1]
    # Step 1 collects on-policy; step t >= 2 trains on what W_{t-2} sampled while step t-1 trained.
    for t, sampler in ((1, 0), (2, 0), (3, 1)):
        batch = batches[t - 1]
        assert gap(batch, weights[sampler]) < 1e-4, (t, sampler)
        assert gap(batch, weights[t - 1]) > 1e-3 or t - 1 == sampler, (t, "not the pre-update weights")
    # The correction sees the staleness: no weight on step 1's on-policy tokens, some on the stale steps'.
    assert metrics[0]["loss/tis_weight_mean"] == pytest.approx(1.0, abs=1e-4)
    assert metrics[0]["loss/tis_truncated_frac"] == 0.0
    assert abs(metrics[2]["loss/tis_weight_mean"] - 1.0) > 1e-4
    assert 0.0 <= metrics[2]["loss/tis_truncated_frac"] <= 1.0


class _Killed(Exception):
    """Stands for the process dying between two steps."""


def test_async_resume_reproduces_the_uninterrupted_run(warm_model, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train = {"async_steps": 1, "eval_every": 2, "steps": 4}
    _run(base_config(warm_model, straight, algo=ALGO, train=train))
    # Killed after the checkpoint of step 2, while step 3's batch (prefetched during step 2) waits to be trained.
    trainer = Trainer(validate_config(base_config(warm_model, split, algo=ALGO, train={**train, "save_every": 2})))
    step_once = trainer.train_step

    def step_or_die(step: int):
        if step == 3:
            raise _Killed
        return step_once(step)

    trainer.train_step = step_or_die
    try:
        with pytest.raises(_Killed):
            trainer.run()
    finally:
        trainer.close()
    state = json.loads((split / "checkpoints" / "step_000002" / "state.json").read_text())
    assert state[STATE_KEY]["step"] == 3 and state[STATE_KEY]["trajectories"], "the prefetched batch is kept"
    _run(base_config(warm_model, split, algo=ALGO, train=train), resume=True)
    assert_same_records(read_records(straight / "metrics.jsonl"), read_records(split / "metrics.jsonl"))
    wa, wb = _weights(straight), _weights(split)
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
