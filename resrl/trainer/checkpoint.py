"""Checkpoints: weights (``save_pretrained``, safetensors), optimizer, RNG states and the step.

A checkpoint folder ``<out_dir>/checkpoints/step_000012/`` holds ``model/`` (weights and tokenizer, or the LoRA
adapter), ``optimizer.pt``, ``rng.pt`` and ``state.json``. Everything needed to continue a run bit-for-bit on
the same machine: the loop re-seeds from (seed, step) as well, so a resumed run samples what the straight run did.

A checkpoint is written in ``.tmp_step_…``, flushed to disk (``fsync`` of every file and folder) and only then
renamed into place, so a run killed at any moment (``kill -9``, power loss) leaves its last checkpoint whole:
at most the step in flight is lost. Old checkpoints are renamed away before they are deleted, so a
half-deleted one never looks complete either.
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

log = logging.getLogger("resrl.trainer.checkpoint")

_PREFIX = "step_"
_SCRATCH = (".tmp_", ".old_", ".del_")  # a checkpoint being written, replaced, or deleted


def rng_state() -> dict[str, Any]:
    """The Python, NumPy and torch RNG states."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


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
    root.mkdir(parents=True, exist_ok=True)
    for scratch in root.iterdir():  # what a run killed while saving or pruning left behind
        if scratch.name.startswith(_SCRATCH):
            shutil.rmtree(scratch, ignore_errors=True)
    name = f"{_PREFIX}{step:06d}"
    final, tmp = root / name, root / f".tmp_{name}"
    model.save_pretrained(tmp / "model", safe_serialization=True)
    tokenizer.save_pretrained(tmp / "model")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=1), encoding="utf-8")
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
    log.info("checkpoint step=%d path=%s", step, final)
    return final


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


def load_training_state(ckpt: Path, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Load optimizer and RNG states from ``ckpt`` (weights load with the model); returns ``state.json``."""
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=False))
    set_rng_state(torch.load(ckpt / "rng.pt", weights_only=False))
    return read_state(ckpt)
