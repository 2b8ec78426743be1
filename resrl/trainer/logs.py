"""Run logs: one JSON object per line (``metrics.jsonl``, greppable) and TensorBoard scalars/histograms."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("resrl.trainer")


class RunLogger:
    """Writes ``<out_dir>/metrics.jsonl`` and ``<out_dir>/tb/`` events.

    Each record is ``{"kind": "train"|"eval"|..., "step": N, ...metrics}``. On resume, records past the
    checkpoint's step are dropped first, so the file reads as if the run had never stopped.
    """

    def __init__(self, out_dir: str | Path, *, tensorboard: bool = True, resume_step: int | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / "metrics.jsonl"
        if resume_step is None:
            self.path.write_text("", encoding="utf-8")
        else:
            kept = [r for r in read_records(self.path) if r.get("step", 0) <= resume_step]
            # Written aside and renamed over: a run killed now still finds the old file whole on its next resume.
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(r) + "\n" for r in kept))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.out_dir / "tb"), purge_step=resume_step + 1 if resume_step else None)

    def write(self, kind: str, step: int, metrics: dict[str, Any], histograms: dict[str, Any] | None = None) -> None:
        """Append one record; numbers also go to TensorBoard as ``kind/name``."""
        record = {"kind": kind, "step": step, **metrics}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=float) + "\n")
        scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        log.info("%s step=%d %s", kind, step, " ".join(f"{k}={_fmt(v)}" for k, v in scalars.items()))
        if self._tb is not None:
            for key, value in scalars.items():
                if math.isfinite(value):
                    self._tb.add_scalar(f"{kind}/{key}", value, step)
            for key, values in (histograms or {}).items():
                if len(values):
                    self._tb.add_histogram(f"{kind}/{key}", values, step)

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self._tb is not None:
            self._tb.close()


def read_records(path: str | Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (optionally of one kind)."""
    p = Path(path)
    if not p.is_file():
        return []
    lines = [line for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise ValueError(f"{p}: line {i + 1} is not JSON") from None
            log.warning("%s: dropping a torn last line (the run was killed while writing it)", p)
    return [r for r in records if kind is None or r.get("kind") == kind]


def _fmt(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"
