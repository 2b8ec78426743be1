"""The trainer's side of rollouts: one policy (the trainer's own module for ``hf``, an in-process vLLM engine
for ``vllm``), collection over tasks of several environments at once, and pushing new weights after a step."""

from __future__ import annotations

import logging
from typing import Any

from resrl.core.task import Task
from resrl.rollout import Collector
from resrl.rollout.trajectory import Trajectory
from resrl.trainer.config import Config
from resrl.trainer.modeling import export_weights

log = logging.getLogger("resrl.trainer.engine")


class TaskRoutedEnv:
    """A gymnasium-style env that builds the right registered environment for each task at ``reset``.

    It lets one collector batch the generations of tasks from several environments together.
    """

    def __init__(self, tool_format: str, env_kwargs: dict[str, dict[str, Any]] | None = None) -> None:
        self.tool_format = tool_format
        self.env_kwargs = env_kwargs or {}
        self.env: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        import resrl

        task = (options or {}).get("task")
        if task is None:
            raise ValueError("TaskRoutedEnv.reset needs options={'task': ...}")
        env_id = task.env_id if isinstance(task, Task) else task["env_id"]
        self.close()
        self.env = resrl.make(env_id, tool_format=self.tool_format, **self.env_kwargs.get(env_id, {}))
        return self.env.reset(seed=seed, options=options)

    @property
    def fast_step(self) -> bool:
        """Whether the current task's env promises pure-computation steps (see ``ChatEnv.fast_step``)."""
        return getattr(self.env, "fast_step", False) is True

    def step(self, action: Any):
        return self.env.step(action)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


class RolloutEngine:
    """Samples episodes for the trainer and keeps the sampler's weights equal to the trainer's."""

    def __init__(self, cfg: Config, model: Any, tokenizer: Any) -> None:
        self.cfg = cfg
        self.model = model
        r = cfg.rollout
        if r.backend == "hf":
            from resrl.rollout.hf import HFPolicy

            # The trainer's own module: after an optimizer step the sampler already has the new weights. A
            # single-turn run has no later turn to reuse a finished row's KV for, so keeping it only costs copies.
            store = {"prefix_cache_bytes": 0} if r.max_turns == 1 else {}
            self.policy = HFPolicy(model, tokenizer, **store)
        else:
            from resrl.rollout.vllm import VLLMPolicy

            kwargs = {"gpu_memory_utilization": 0.3, "seed": cfg.train.seed, **r.engine_kwargs}
            self.policy = VLLMPolicy(cfg.model.path, **kwargs)
        self._collectors: dict[float, Collector] = {}

    def _collector(self, temperature: float) -> Collector:
        if temperature not in self._collectors:
            r = self.cfg.rollout
            # the envs use the format the collector resolved (tool_format="auto" reads it off the template)
            self._collectors[temperature] = collector = Collector(
                self.policy,
                lambda: TaskRoutedEnv(collector.tool_format, self.cfg.data.env_kwargs),
                tool_format=r.tool_format,
                chat_template_kwargs=r.chat_template_kwargs,
                max_turns=r.max_turns,
                max_tokens=r.max_tokens,
                max_new_tokens_per_turn=r.max_new_tokens_per_turn,
                temperature=temperature,
                env_workers=4,
            )
        return self._collectors[temperature]

    def collect(self, tasks: list[Task], n: int, temperature: float) -> list[Trajectory]:
        """``n`` episodes of each task (one group per task)."""
        return self._collector(temperature).collect(tasks, n)

    def sync_weights(self) -> None:
        """Push the trainer's weights into the sampler (nothing to do for ``hf``: it is the same module)."""
        if self.cfg.rollout.backend == "vllm":
            self.policy.update_weights(export_weights(self.model))

    def close(self) -> None:
        """Shut the engine down, if it has anything to shut."""
        close = getattr(self.policy, "close", None)
        if callable(close):
            close()
