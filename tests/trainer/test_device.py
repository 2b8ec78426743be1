"""``model.device``: how it resolves, the errors for devices that are not there, and that naming the CPU
explicitly trains exactly like the default on a machine without CUDA."""

from __future__ import annotations

import os

import pytest
import torch

from resrl.trainer import distributed
from resrl.trainer.batch import TokenBatch
from resrl.trainer.config import ConfigError, validate_config
from resrl.trainer.loop import Trainer
from tests.trainer.conftest import base_config


def test_device_resolves_auto_cpu_and_cuda():
    if torch.cuda.is_available():
        expected = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        assert distributed.device("auto") == expected
        assert distributed.device("cuda") == expected
    else:
        assert distributed.device("auto") == torch.device("cpu")
        for asked in ("cuda", "cuda:0", "cuda:3"):
            with pytest.raises(ValueError, match="CUDA is not available"):
                distributed.device(asked)
    assert distributed.device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="auto, cpu, cuda or cuda:N"):
        distributed.device("gpu")


def _with_device(model, out, device: str | None) -> dict:
    raw = base_config(model, out, train={"steps": 2, "eval_every": 0})
    if device is not None:
        raw["model"]["device"] = device
    return raw


def test_config_rejects_unknown_device_names(tiny_model, tmp_path):
    assert validate_config(_with_device(tiny_model, tmp_path, None)).model.device == "auto"
    # Well-formed names validate on any machine (a GPU run's config loads here); only a Trainer needs the device.
    assert validate_config(_with_device(tiny_model, tmp_path, "cuda:1")).model.device == "cuda:1"
    for bad in ("gpu", "cuda:", "cuda:x", "mps", "CPU"):
        with pytest.raises(ConfigError, match=r"model\.device"):
            validate_config(_with_device(tiny_model, tmp_path, bad))


def test_token_batch_moves_every_tensor():
    batch = TokenBatch(
        input_ids=torch.ones((2, 3), dtype=torch.long),
        attention_mask=torch.ones((2, 3), dtype=torch.long),
        mask=torch.ones((2, 2), dtype=torch.bool),
        rewards=torch.tensor([1.0, 0.0]),
        group_ids=torch.zeros(2, dtype=torch.long),
        n_policy_tokens=torch.full((2,), 2, dtype=torch.long),
        behaviour_logprobs=torch.zeros((2, 2)),
    )
    moved = batch.to("meta")  # a device with no storage: any field left behind would still read cpu
    for name, tensor in vars(moved).items():
        assert tensor.device.type == "meta", name
        assert tensor.shape == getattr(batch, name).shape and tensor.dtype == getattr(batch, name).dtype, name
    same = batch.to("cpu")
    assert all(getattr(same, k) is v for k, v in vars(batch).items())  # already there: no copies
    without = TokenBatch(**{**vars(batch), "behaviour_logprobs": None}).to("meta")
    assert without.behaviour_logprobs is None and without.input_ids.device.type == "meta"


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the default device is the GPU, not the CPU")
def test_explicit_cpu_trains_exactly_like_the_default(warm_model, tmp_path):
    runs = {}
    for name, device in {"default": None, "cpu": "cpu"}.items():
        trainer = Trainer(validate_config(_with_device(warm_model, tmp_path / name, device)))
        try:
            last_eval = trainer.run()
            assert trainer.device == torch.device("cpu")
            assert trainer.last_batch is not None and trainer.last_batch.input_ids.device.type == "cpu"
            runs[name] = (trainer.history, last_eval, {k: v.clone() for k, v in trainer.model.state_dict().items()})
        finally:
            trainer.close()
    (hist_a, eval_a, weights_a), (hist_b, eval_b, weights_b) = runs["default"], runs["cpu"]
    assert [h["step"] for h in hist_a] == [1, 2]
    assert all("loss/pg_loss" in h for h in hist_a), "both steps trained"
    assert hist_a == hist_b and eval_a == eval_b
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
