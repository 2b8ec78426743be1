"""``NcclSync``'s control flow with a stand-in NCCL group and stand-in server controls.

NCCL needs GPUs, which CI does not have; the real path talks to vLLM's weight-transfer routes
(``/init_weight_transfer_engine``, ``/start_weight_update``, ``/update_weights``; docs/scale-out.md). What runs
here is the part that decides which servers count as synced: a server that fails before any weight moves is left
out, the others are tried again in the same sync, and no server is reported synced without the weights.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch

from resrl.rollout.server_sync import NcclSync, SyncError

TENSORS = [("a.weight", torch.ones(2, 2)), ("b.bias", torch.zeros(3))]


class _Group:
    def __init__(self, world: int) -> None:
        self.world, self.sent = world, 0

    def broadcast(self, tensor, src, stream) -> None:
        self.sent += 1

    def destroy(self) -> None:
        pass


class _Control:
    """Answers every route, and refuses those in ``refuse`` (as a server whose engine cannot do them)."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse, self.calls = refuse, []

    def call(self, method, path, deadline, **kwargs):
        self.calls.append(path)
        if path in self.refuse:
            raise SyncError(f"{method} {path}: refused")
        return {"world_size": 1} if path == "/get_world_size" else {}


class _Server:
    def __init__(self, name: str, refuse: set[str] | None = None) -> None:
        self.url = "http://127.0.0.1:9"  # only read for the rendezvous address; nothing connects to it
        self.name = name
        self.control = _Control(refuse or set())

    def __repr__(self) -> str:
        return self.name


@pytest.fixture
def groups(monkeypatch):
    """The groups the trainer side sets up (vLLM's ``trainer_init``, replaced)."""
    made: list[_Group] = []

    def trainer_init(info):
        if info["world_size"] < 2:
            raise RuntimeError("no server to broadcast to")
        made.append(_Group(info["world_size"]))
        return made[-1]

    module = types.ModuleType("vllm.distributed.weight_transfer.nccl_common")
    module.trainer_init = trainer_init
    monkeypatch.setitem(sys.modules, "vllm.distributed.weight_transfer.nccl_common", module)
    return made


def _sync() -> NcclSync:
    sync = NcclSync()
    sync.device = "cpu"
    return sync


@pytest.mark.parametrize("route", ["/init_weight_transfer_engine", "/start_weight_update", "/get_world_size"])
def test_a_server_that_fails_before_the_weights_move_is_left_out_and_the_others_get_them(groups, route):
    good, bad = _Server("good"), _Server("bad", {route})
    failures = _sync().sync([good, bad], TENSORS, 5.0)
    assert set(failures) == {bad} and "refused" in failures[bad]
    assert "/update_weights" in good.control.calls and "/finish_weight_update" in good.control.calls
    assert "/update_weights" not in bad.control.calls
    assert groups[-1].world == 2 and groups[-1].sent == len(TENSORS)  # the trainer and the good server only


def test_no_server_counts_as_synced_when_no_group_forms(groups):
    servers = [_Server("one", {"/init_weight_transfer_engine"}), _Server("two", {"/init_weight_transfer_engine"})]
    sync = _sync()
    failures = sync.sync(servers, TENSORS, 5.0)
    assert set(failures) == set(servers)
    assert not any("/update_weights" in s.control.calls for s in servers)
    assert sync.group is None and not any(g.sent for g in groups)


def test_a_server_that_fails_to_receive_is_the_only_one_reported(groups):
    good, bad = _Server("good"), _Server("bad", {"/update_weights"})
    sync = _sync()
    failures = sync.sync([good, bad], TENSORS, 5.0)
    assert set(failures) == {bad} and "/finish_weight_update" in good.control.calls
    assert len(groups) == 1  # weights moved: no second try in this sync
