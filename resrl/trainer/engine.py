"""The trainer's side of rollouts: the policy the configured backend builds (see :mod:`resrl.rollout.backends`),
collection over tasks of several environments at once, and pushing new weights after a step."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from resrl.core.task import Task
from resrl.rollout import Collector
from resrl.rollout.backends import TrainerContext, shares_weights, trainer_policy
from resrl.rollout.trajectory import Trajectory
from resrl.trainer import distributed
from resrl.trainer.config import Config
from resrl.trainer.modeling import export_weights

log = logging.getLogger("resrl.trainer.engine")


class RolloutEngine:
    """Samples episodes for the trainer and keeps the sampler's weights equal to the trainer's."""

    def __init__(self, cfg: Config, model: Any, tokenizer: Any) -> None:
        self.cfg = cfg
        self.model = model
        ctx = TrainerContext(
            model=model,
            tokenizer=tokenizer,
            model_path=cfg.model.path,
            seed=cfg.train.seed,
            rollout=cfg.rollout,
            out_dir=Path(cfg.train.out_dir),
        )
        self.policy = trainer_policy(cfg.rollout.backend, ctx)
        if cfg.train.async_steps:  # one step off: the sampler must not be the module being trained
            from resrl.trainer.overlap import sampling_copy

            self.policy = sampling_copy(self.policy, ctx)
        self._collectors: dict[float, Collector] = {}

    def _collector(self, temperature: float) -> Collector:
        if temperature not in self._collectors:
            r = self.cfg.rollout
            self._collectors[temperature] = Collector(
                self.policy,
                None,  # each task runs in the env its env_id names
                tool_format=r.tool_format,
                chat_template_kwargs=r.chat_template_kwargs,
                max_turns=r.max_turns,
                max_tokens=r.max_tokens,
                max_new_tokens_per_turn=r.max_new_tokens_per_turn,
                temperature=temperature,
                env_workers=4,
                env_kwargs=self.cfg.data.env_kwargs,
                env_servers=self.cfg.data.env_servers,
                progress=distributed.is_main(),  # one bar per run, not one per rank
            )
        return self._collectors[temperature]

    def collect(self, tasks: list[Task], n: int, temperature: float) -> list[Trajectory]:
        """``n`` episodes of each task (one group per task).

        The collect seed is drawn from torch's RNG, which the loop seeds from ``(train.seed, step)`` just before:
        every rank draws the same one, so with per-request seeds an episode does not depend on which rank samples
        it, and a resumed run draws what the straight run did.
        """
        seed = int(torch.randint(0, 2**62, (1,)))
        return self._collector(temperature).collect(tasks, n, seed=seed)

    def sync_weights(self) -> None:
        """Push the trainer's weights into the sampler (nothing to do when it samples with the same module)."""
        if not shares_weights(self.policy):
            # under torchrun a policy with sync_scope "global" (shared servers) is pushed by rank 0 alone
            distributed.sync_policy(self.policy, lambda: export_weights(self.model))

    def close(self) -> None:
        """Shut the engine down, if it has anything to shut."""
        close = getattr(self.policy, "close", None)
        if callable(close):
            close()
