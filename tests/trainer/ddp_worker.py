"""Run by test_distributed.py under ``python -m torch.distributed.run``: one learner rank of a training run.

``ddp_worker.py CONFIG.json [--resume]`` registers ``test/parity`` (through the conftest), trains the config
with :class:`~resrl.trainer.loop.Trainer` and leaves the run's files (metrics, checkpoints) in ``train.out_dir``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[2]))  # the repository root: tests.* imports

import tests.trainer.parity_env  # noqa: F401  (registers test/parity)
from resrl.trainer import distributed
from resrl.trainer.config import validate_config
from resrl.trainer.loop import Trainer

if __name__ == "__main__":
    torch.set_num_threads(1)
    cfg = validate_config(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
    trainer = Trainer(cfg, resume="--resume" in sys.argv[2:])
    try:
        trainer.run()
    finally:
        trainer.close()
        distributed.shutdown()
