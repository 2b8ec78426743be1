"""The policy backend registry: a new backend is its own file plus one registry line (or an entry point), the
trainer pushes weights exactly to the policies that do not share its module, and bad names fail clearly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from resrl.rollout import load_policy
from resrl.rollout.backends import BACKENDS, ENTRY_POINT_GROUP, backend_class, backend_names
from resrl.trainer.config import ConfigError, validate_config
from resrl.trainer.loop import Trainer
from tests.trainer.conftest import base_config
from tests.trainer.copy_backend import CopyPolicy


def test_a_registered_backend_trains_and_gets_every_step_pushed(warm_model, tmp_path, monkeypatch):
    monkeypatch.setitem(BACKENDS, "copyhf", "tests.trainer.copy_backend:CopyPolicy")
    monkeypatch.setattr(CopyPolicy, "pushes", 0)
    raw = base_config(warm_model, tmp_path / "run", rollout={"backend": "copyhf"}, train={"eval_every": 0})
    cfg = validate_config(raw)
    trainer = Trainer(cfg)
    try:
        assert isinstance(trainer.engine.policy, CopyPolicy) and not trainer.engine.policy.shares_weights
        trainer.run()
        sampler = dict(trainer.engine.policy.model.named_parameters())
        assert CopyPolicy.pushes == cfg.train.steps
        for name, p in trainer.model.named_parameters():  # the copy caught up with every step
            assert sampler[name].data_ptr() != p.data_ptr()
            torch.testing.assert_close(sampler[name], p, rtol=0, atol=0)
    finally:
        trainer.close()


def test_hf_on_the_trainer_module_shares_weights_and_gets_no_push(warm_model, tmp_path):
    trainer = Trainer(validate_config(base_config(warm_model, tmp_path / "run", train={"steps": 0})))
    try:
        assert trainer.engine.policy.shares_weights and trainer.engine.policy.model is trainer.model
    finally:
        trainer.close()
    assert not load_policy(f"hf:{warm_model}").shares_weights  # its own copy: nothing syncs it


def test_unknown_backends_fail_with_the_known_names(warm_model, tmp_path):
    with pytest.raises(ConfigError, match=r"rollout\.backend.*unknown policy backend 'vlm'.*did you mean 'vllm'"):
        validate_config(base_config(warm_model, tmp_path, rollout={"backend": "vlm"}))
    with pytest.raises(ConfigError, match="'gold' cannot sample for the trainer"):
        validate_config(base_config(warm_model, tmp_path, rollout={"backend": "gold"}))
    with pytest.raises(ValueError, match=r"NAME:TARGET, e.g. hf:PATH.*\(backends: hf, vllm, openai, gold"):
        load_policy("nocolon")
    with pytest.raises(ValueError, match="unknown policy backend 'nope'"):
        load_policy("nope:x")


def test_an_installed_package_adds_a_backend_by_entry_point(tmp_path, warm_model):
    site = tmp_path / "site"
    info = site / "copyhf_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: copyhf-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ncopyhf = tests.trainer.copy_backend:CopyPolicy\n")
    script = (
        "from resrl.rollout.backends import backend_names, backend_class\n"
        "from resrl.rollout import load_policy\n"
        "print(backend_names()[-1], backend_class('copyhf').__name__, type(load_policy({!r})).__name__)\n"
    ).format(f"copyhf:{warm_model}")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), root])}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["copyhf", "CopyPolicy", "CopyPolicy"]
    assert "copyhf" not in backend_names()  # not installed in this process
    with pytest.raises(ValueError, match="unknown policy backend 'copyhf'"):
        backend_class("copyhf")
