"""Checkpoints: weights (``save_pretrained``, safetensors), optimizer, RNG states and the step.

A checkpoint folder ``<out_dir>/checkpoints/step_000012/`` holds ``model/`` (weights and tokenizer, or the LoRA
adapter), ``optimizer.pt``, ``rng.pt`` and ``state.json``. Everything needed to continue a run bit-for-bit on
the same machine: the loop re-seeds from (seed, step) as well, so a resumed run samples what the straight run did.

A checkpoint is written in ``.tmp_step_…``, flushed to disk (``fsync`` of every file and folder) and only then
renamed into place, so a run killed at any moment (``kill -9``, power loss) leaves its last checkpoint whole:
at most the step in flight is lost. Old checkpoints are renamed away before they are deleted, so a
half-deleted one never looks complete either.

Under ``torchrun`` (several ranks) the folder also holds ``dcp/``: the model and optimizer state as
``torch.distributed.checkpoint`` writes it, each rank its own shards (FSDP) or rank 0 the replicated tensors
(DDP), and a ``rng_rank<N>.pt`` per rank past 0; ``optimizer.pt`` is left out. ``model/`` still holds the full
weights (gathered onto rank 0), so the checkpoint loads in one process, for evaluation or a resume. Every rank
writes into the same temp folder; after a barrier rank 0 syncs it and renames it into place.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resrl.trainer import distributed

log = logging.getLogger("resrl.trainer.checkpoint")

_PREFIX = "step_"
_SCRATCH = (".tmp_", ".old_", ".del_")  # a checkpoint being written, replaced, or deleted


def rng_state() -> dict[str, Any]:
    """The Python, NumPy and torch RNG states, and the current CUDA device's when there is one."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (a CUDA state only where CUDA is available: a GPU run's checkpoint
    still resumes on a CPU machine)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    model: Any,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write the checkpoint of ``step`` atomically (a temp folder, synced, then renamed); keep the last ``keep``."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    root = Path(out_dir) / "checkpoints"
    main, sharded = distributed.is_main(), distributed.active()
    if main:
        root.mkdir(parents=True, exist_ok=True)
        for scratch in root.iterdir():  # what a run killed while saving or pruning left behind
            if scratch.name.startswith(_SCRATCH):
                shutil.rmtree(scratch, ignore_errors=True)
    distributed.barrier()  # no rank writes into a temp folder rank 0 is still clearing
    name = f"{_PREFIX}{step:06d}"
    final, tmp = root / name, root / f".tmp_{name}"
    tmp.mkdir(parents=True, exist_ok=True)
    if sharded:
        _save_sharded(tmp, model, optimizer)
    else:
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    full = distributed.full_state_dict(model)  # a collective under FSDP; None when unsharded
    if main:
        model.save_pretrained(tmp / "model", safe_serialization=True, **({"state_dict": full} if full else {}))
        tokenizer.save_pretrained(tmp / "model")
        (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=1), encoding="utf-8")
    rank = distributed.rank()
    torch.save(rng_state(), tmp / ("rng.pt" if rank == 0 else f"rng_rank{rank}.pt"))
    distributed.barrier()  # every rank's files are written
    if main:
        _publish(root, name, final, tmp, out_dir, keep)
    distributed.barrier()  # no rank goes on (or resumes) before the checkpoint is in place
    if main:
        log.info("checkpoint step=%d path=%s", step, final)
    return final


def _save_sharded(tmp: Path, model: Any, optimizer: torch.optim.Optimizer) -> None:
    """Every rank's model and optimizer state into ``tmp/dcp`` (``torch.distributed.checkpoint``)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(model, optimizer, options=_state_options())
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(tmp / "dcp"))


def _load_sharded(ckpt: Path, model: Any, optimizer: torch.optim.Optimizer) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optim_state = get_state_dict(model, optimizer, options=_state_options())
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=str(ckpt / "dcp"))
    set_state_dict(
        model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"], options=_state_options()
    )


def _state_options():
    """Trainable state only: frozen LoRA base weights come from ``model.path`` (and ``model/``) anyway."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(ignore_frozen_params=True)


def _publish(root: Path, name: str, final: Path, tmp: Path, out_dir: str | Path, keep: int) -> None:
    """Sync the written temp folder, rename it into place and prune old checkpoints (rank 0)."""
    _sync_tree(tmp)
    if final.exists():  # the same step again: the old copy stays whole until the new one is in place
        final.rename(root / f".old_{name}")
    tmp.rename(final)
    _sync_dir(root)
    for old in list_checkpoints(out_dir)[:-keep]:
        doomed = root / f".del_{old.name}"
        old.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    shutil.rmtree(root / f".old_{name}", ignore_errors=True)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_tree(top: Path) -> None:
    """``fsync`` every file and folder under ``top`` (files first, so a synced folder names synced files)."""
    for folder, _, files in os.walk(top, topdown=False):
        for name in files:
            with open(os.path.join(folder, name), "rb") as fh:
                os.fsync(fh.fileno())
        _sync_dir(Path(folder))


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first."""
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(_PREFIX) and (p / "state.json").is_file())


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def read_state(ckpt: Path) -> dict[str, Any]:
    """The ``state.json`` of a checkpoint (step, metric history)."""
    return json.loads((ckpt / "state.json").read_text(encoding="utf-8"))


def load_training_state(ckpt: Path, optimizer: torch.optim.Optimizer, model: Any = None) -> dict[str, Any]:
    """Load optimizer and RNG states from ``ckpt`` (weights load with the model); returns ``state.json``.

    A checkpoint written under ``torchrun`` restores model and optimizer from its ``dcp/`` state (resharded to
    this run's ranks, or to one process); one written by one process from ``optimizer.pt``.
    """
    if (ckpt / "dcp").is_dir():
        if model is None:
            raise ValueError(f"{ckpt} holds sharded state (dcp/): pass the model to load it into")
        _load_sharded(ckpt, model, optimizer)
    elif (ckpt / "optimizer.pt").is_file():
        # Read onto the CPU (a GPU run's state loads anywhere); load_state_dict moves it to the parameters' device.
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=False))
    else:
        raise FileNotFoundError(f"{ckpt} has neither optimizer.pt nor dcp/")
    own = ckpt / f"rng_rank{distributed.rank()}.pt"
    set_rng_state(torch.load(own if own.is_file() else ckpt / "rng.pt", weights_only=False))
    return read_state(ckpt)
