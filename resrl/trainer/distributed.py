"""Data-parallel learners under ``torchrun``: the process group, rank helpers, model wrapping and full weights.

Every helper works without a process group (one plain process): ``rank() == 0``, ``world_size() == 1``,
``barrier()`` returns at once and the reductions return their input. Under ``torchrun`` (``WORLD_SIZE`` > 1 in
the environment) :func:`init_process_group` joins the group the launcher set up: gloo for CPU tensors, plus
NCCL for CUDA tensors when there are GPUs (``"cpu:gloo,cuda:nccl"``), so CPU-side counts and GPU gradients
each take the right transport.

``train.parallel`` picks how the model is shared between ranks (:func:`resolve_parallel`):

- ``ddp``: every rank holds the whole model; ``DistributedDataParallel`` averages gradients. The default on
  several processes: the models this project trains fit one device, and DDP adds no collective to the forward
  pass, so each rank samples from its own module (``hf`` backend) with no lockstep between ranks.
- ``fsdp``: FSDP2 (``torch.distributed.fsdp.fully_shard``) shards parameters, gradients and optimizer state
  per decoder layer; for models that do not fit one device. Forward passes all-gather the layers, so every
  rank must run the same number of them (:func:`lockstep` counts, dummy micro-batches in the loop) and
  sampling runs with the parameters gathered once (:func:`gathered`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import torch
import torch.distributed as dist

log = logging.getLogger("resrl.trainer.distributed")

Parallel = Literal["none", "ddp", "fsdp"]


def launched() -> bool:
    """Whether this process was started by ``torchrun`` for a group of several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_process_group(timeout_s: float = 1800.0) -> bool:
    """Join the ``torchrun`` process group if launched in one (idempotent); returns whether one is active."""
    if dist.is_initialized():
        return True
    if not launched():
        return False
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    log.info("process group rank=%d world=%d backend=%s", rank(), world_size(), backend)
    return True


def shutdown() -> None:
    """Leave the process group, if this process is in one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    """Whether a process group of several ranks is active."""
    return dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a group)."""
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    """The number of ranks (1 without a group)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this is rank 0, the one that writes files and logs."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (nothing to wait for without a group)."""
    if active():
        dist.barrier()


def all_reduce_sum(x: float | int | torch.Tensor) -> Any:
    """The sum over ranks of a number or a CPU tensor (its own type back)."""
    if not active():
        return x
    t = x.clone() if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    if isinstance(x, torch.Tensor):
        return t
    return int(t.item()) if isinstance(x, int) else float(t.item())


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` without a group."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shard_bounds(n: int, r: int | None = None, world: int | None = None) -> tuple[int, int]:
    """``[start, end)`` of rank ``r``'s contiguous share of ``n`` items (shares differ by at most one).

    Contiguous shares in rank order keep the concatenation of the ranks' results in the single-process order.
    """
    r = rank() if r is None else r
    world = world_size() if world is None else world
    base, extra = divmod(n, world)
    start = r * base + min(r, extra)
    return start, start + base + (1 if r < extra else 0)


def lockstep(count: int) -> int:
    """The largest ``count`` over ranks: how many collective passes every rank must run."""
    if not active():
        return count
    t = torch.tensor(count, dtype=torch.long)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t)


def device(choice: str = "auto") -> torch.device:
    """The device ``model.device`` names for this rank: ``auto`` is ``cuda:<LOCAL_RANK>`` when CUDA is available,
    else ``cpu``; ``cuda`` without an index is ``cuda:<LOCAL_RANK>`` too. A CUDA device becomes the current one, so
    CUDA RNG states and NCCL collectives of this rank refer to the device its model is on."""
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cpu":
        return torch.device("cpu")
    if choice != "cuda" and not (choice.startswith("cuda:") and choice[5:].isdigit()):
        raise ValueError(f"model.device must be auto, cpu, cuda or cuda:N, got {choice!r}")
    if not torch.cuda.is_available():
        raise ValueError(f"model.device={choice!r} but CUDA is not available here; use model.device=cpu or auto")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    index = int(choice[5:]) if choice != "cuda" else local
    if launched() and index != local:
        raise ValueError(
            f"model.device={choice!r} under torchrun: each rank trains on cuda:<LOCAL_RANK> (cuda:{local} here); "
            "use model.device=cuda or auto"
        )
    if index >= torch.cuda.device_count():
        raise ValueError(f"model.device={choice!r} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def resolve_parallel(choice: str) -> Parallel:
    """``auto`` is ``none`` on one process and ``ddp`` on several; ``ddp``/``fsdp`` need several processes."""
    if choice not in ("auto", "none", "ddp", "fsdp"):
        raise ValueError(f"train.parallel must be auto, ddp or fsdp, got {choice!r}")
    if world_size() == 1:
        if choice in ("ddp", "fsdp"):
            log.info("train.parallel=%s on one process: training without a wrapper", choice)
        return "none"
    return "ddp" if choice in ("auto", "none") else choice  # type: ignore[return-value]


def _decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated decoder blocks of a Hugging Face model (LoRA-wrapped or not): FSDP's sharding units."""
    found = []
    for module in model.modules():
        layers = getattr(module, "layers", None)
        if isinstance(layers, torch.nn.ModuleList) and len(layers) and not found:
            found = list(layers)
    return found


def shard(model: torch.nn.Module, parallel: Parallel) -> torch.nn.Module:
    """FSDP2: shard ``model`` in place per decoder layer, then as a whole (before the optimizer is built)."""
    if parallel != "fsdp":
        return model
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    # the mesh on the device the weights are on (CPU under gloo), not the default accelerator's
    mesh = init_device_mesh(next(model.parameters()).device.type, (world_size(),))
    for layer in _decoder_layers(model):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def replicate(model: torch.nn.Module, parallel: Parallel) -> torch.nn.Module:
    """DDP: the wrapper that averages gradients (it broadcasts rank 0's weights first); else ``model`` itself.

    The loop keeps the plain module for sampling, scoring and export (state-dict names without ``module.``)
    and trains through the wrapper.
    """
    if parallel != "ddp":
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


@contextlib.contextmanager
def accumulate(train_model: torch.nn.Module, sync: bool) -> Iterator[None]:
    """Gradient accumulation: with ``sync=False`` the backward keeps gradients local (DDP ``no_sync``, FSDP2
    ``set_requires_gradient_sync(False)``); the last micro-batch of a mini-batch runs with ``sync=True``."""
    if sync:
        yield
    elif hasattr(train_model, "no_sync"):
        with train_model.no_sync():
            yield
    elif hasattr(train_model, "set_requires_gradient_sync"):
        train_model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            train_model.set_requires_gradient_sync(True)
    else:
        yield


def _fsdp_modules(model: torch.nn.Module) -> list[Any]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


@contextlib.contextmanager
def gathered(model: torch.nn.Module) -> Iterator[None]:
    """FSDP2: hold the full parameters for a while (sampling), so forwards issue no collectives and ranks
    need not run the same number of decode steps. A no-op for unsharded models. Costs one full copy."""
    modules = _fsdp_modules(model) if active() else []
    for m in modules:
        m.set_reshard_after_forward(False)
        m.unshard()
    try:
        yield
    finally:
        for m in modules:
            m.reshard()
            m.set_reshard_after_forward(True)


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """A sharded ``DTensor`` all-gathered (every rank must call), any other tensor as it is."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def full_tensors(named: Iterable[tuple[str, torch.Tensor]]) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, full tensor)`` pairs for a weight export from a sharded or plain model."""
    for name, t in named:
        yield name, full_tensor(t)


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """FSDP2: the whole state dict on CPU, gathered from shards (every rank must call; rank 0 gets the
    tensors). None for an unsharded model, whose own ``state_dict()`` is already whole."""
    if not _fsdp_modules(model):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def sync_policy(policy: Any, weights: Callable[[], Iterable[tuple[str, torch.Tensor]]]) -> None:
    """Push new weights into a rank's policy.

    A policy whose update reaches every rank's sampler at once (``sync_scope == "global"``: shared inference
    servers) is updated by rank 0 alone, and the other ranks wait at a barrier so no rank samples old weights;
    every other policy (an engine of this rank's own) is updated on each rank. The export is iterated on every
    rank either way: gathering FSDP shards is a collective.
    """
    if getattr(policy, "sync_scope", "rank") != "global" or not active():
        policy.update_weights(weights())
        return
    if is_main():
        policy.update_weights(weights())
    else:
        for _ in weights():
            pass
    barrier()


@dataclass
class RowLayout:
    """Where the rows of one step's global batch live.

    Rank ``r`` holds global rows ``offsets[r]:offsets[r + 1]`` (rank order is the single-process order, see
    :func:`shard_bounds`); ``tokens[g]`` counts the trainable tokens of global row ``g``. Every rank holds the
    same layout, so mini-batches drawn over global rows, their token counts (the loss's global normaliser) and
    the number of micro-batches each rank must run need no further collective.
    """

    tokens: list[int]
    offsets: list[int]
    rank: int

    @classmethod
    def gather(cls, local_tokens: list[int]) -> RowLayout:
        """The layout from each rank's per-row token counts (one collective)."""
        parts = all_gather_objects(list(local_tokens))
        offsets = [0]
        for part in parts:
            offsets.append(offsets[-1] + len(part))
        return cls(tokens=[n for part in parts for n in part], offsets=offsets, rank=rank())

    @property
    def total(self) -> int:
        """Rows over all ranks."""
        return self.offsets[-1]

    def rows_of(self, r: int) -> int:
        """Rows rank ``r`` holds."""
        return self.offsets[r + 1] - self.offsets[r]

    def local(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's rows among global ``rows``, as indices into its own batch, in the order given."""
        lo, hi = self.offsets[self.rank], self.offsets[self.rank + 1]
        return rows[(rows >= lo) & (rows < hi)] - lo

    def token_count(self, rows: torch.Tensor) -> int:
        """Trainable tokens of global ``rows`` on all ranks."""
        return sum(self.tokens[int(g)] for g in rows)

    def micro_count(self, rows: torch.Tensor | None, micro: int) -> int:
        """Micro-batches of at most ``micro`` rows the busiest rank needs for global ``rows`` (all rows: None)."""
        counts = []
        for r in range(len(self.offsets) - 1):
            lo, hi = self.offsets[r], self.offsets[r + 1]
            n = hi - lo if rows is None else int(((rows >= lo) & (rows < hi)).sum())
            counts.append(math.ceil(n / micro))
        return max(counts)
