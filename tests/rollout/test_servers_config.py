"""The ``servers`` backend's configuration: clear errors before any server is contacted."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from resrl.rollout.backends import backend_class
from resrl.trainer.config import RolloutConfig


def test_servers_is_a_registered_trainer_backend():
    cls = backend_class("servers")
    assert cls.__name__ == "ServerPoolPolicy"
    assert cls.shares_weights is False and cls.sync_scope == "global"


def test_backend_servers_needs_servers():
    with pytest.raises(ValidationError, match=r"rollout\.backend=servers needs rollout\.servers"):
        RolloutConfig(backend="servers")


def test_servers_need_the_servers_backend():
    with pytest.raises(ValidationError, match=r"only with rollout\.backend=servers"):
        RolloutConfig(backend="hf", servers=["http://127.0.0.1:8000"])


def test_server_urls_and_sync_method_are_checked():
    with pytest.raises(ValidationError, match="must start with http"):
        RolloutConfig(backend="servers", servers=["127.0.0.1:8000"])
    with pytest.raises(ValidationError, match="sync"):
        RolloutConfig(backend="servers", servers=["http://127.0.0.1:8000"], sync="rsync")
    with pytest.raises(ValidationError, match="sync_timeout_s"):
        RolloutConfig(backend="servers", servers=["http://127.0.0.1:8000"], sync_timeout_s=0)
    cfg = RolloutConfig(backend="servers", servers=["http://127.0.0.1:8000", "http://127.0.0.1:8001/v1"])
    assert cfg.sync == "auto" and cfg.sync_timeout_s > 0


def test_pool_refuses_bad_urls_before_connecting():
    from resrl.rollout.servers import ServerPoolPolicy

    with pytest.raises(ValueError, match="at least one server"):
        ServerPoolPolicy.from_spec(" , ")
    with pytest.raises(ValueError, match="must be distinct"):
        ServerPoolPolicy(["http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"])
    with pytest.raises(ValueError, match="must start with http"):
        ServerPoolPolicy(["127.0.0.1:8000"])


def test_nccl_sync_needs_cuda_here():
    import torch

    from resrl.rollout.server_sync import choose_method

    with pytest.raises(ValueError, match="unknown weight sync method"):
        choose_method("rsync", [], 1.0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs CUDA"):
            choose_method("nccl", [], 1.0)
        assert choose_method("auto", [], 1.0) == "reload"
