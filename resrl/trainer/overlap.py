"""One-step-off overlap (``train.async_steps=1``): step t+1's rollouts are sampled while step t trains.

With ``async_steps=0`` :class:`Rollouts` is a pass-through: every step collects its own batch with the weights
of the step before, and pushes its new weights into the sampler right after its optimizer step.

With ``async_steps=1``, writing W_t for the weights after step t's optimizer step and B_t for the batch step t
trains on:

* step 1 collects B_1 with W_0 itself (nothing was prefetched), then starts B_2, also with W_0, in a background
  thread, and trains B_1 → W_1;
* step t ≥ 2 takes B_t (sampled with W_{t-2}; it waits only if the collection is not done yet), pushes W_{t-1}
  into the sampler, starts B_{t+1} with W_{t-1}, and trains B_t → W_t.

So the batch a step trains on is one step stale: it was sampled by the weights before the previous step's update.
The loss corrects for that with the rollouts' recorded log-probs (``algo.tis_cap``, on at :data:`DEFAULT_TIS_CAP`
under ``async_steps=1`` unless set). The push of W_t waits for the collection in flight (a sampler never changes
weights mid-collection) and the next collection starts after it. An evaluation first waits for the collection in
flight and pushes the newest weights, so it scores W_t as in a synchronous run; it and the prefetch never share
the engine at once.

What a step samples stays a function of its step number: its tasks come from ``Trainer._pick_tasks(step)`` and
the background collection seeds from ``(train.seed, step)`` as the synchronous one does (with per-request seeds
the global RNG is not read at all; without them the training thread must not draw from it meanwhile, and it does
not: the PPO shuffle and the ResRL PCA use their own generators).

Resume: a checkpoint waits for the collection in flight and stores that next batch (its tasks, group size,
temperature and trajectories) in ``state.json``; a resumed run trains on it first, so it reproduces the
uninterrupted run. Where there is none (a checkpoint of a synchronous run, or several ranks: each rank holds its
own share and only rank 0 writes ``state.json``), the first step after resume collects synchronously with the
checkpoint's weights, i.e. that one step is on-policy, and the overlap resumes from the next.

The sampler must not be the module being trained: ``vllm`` and ``servers`` have their own weights; for ``hf``
the engine samples with a copy of the trainer's model (:func:`sampling_copy`), synced after each step like any
separate engine (it costs a second copy of the weights in memory).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from resrl.core.task import Task
from resrl.rollout.backends import shares_weights
from resrl.rollout.trajectory import Trajectory
from resrl.trainer import distributed

log = logging.getLogger("resrl.trainer.overlap")

DEFAULT_TIS_CAP = 2.0  # verl's rollout-correction default; TRL's vLLM correction caps at 3
STATE_KEY = "async_batch"

Key = tuple[tuple[str, ...], int, float]


def tis_default(cfg: Any) -> dict[str, float]:
    """The ``algo`` update the trainer applies: ``tis_cap`` on at :data:`DEFAULT_TIS_CAP` under
    ``train.async_steps=1`` unless the config sets it (an explicit ``algo.tis_cap=null`` keeps it off)."""
    if cfg.train.async_steps and "tis_cap" not in cfg.algo.model_fields_set:
        update = {"tis_cap": DEFAULT_TIS_CAP}
    else:
        update = {}
    return update


def sampling_copy(policy: Any, ctx: Any) -> Any:
    """``policy`` if it has its own weights; for a policy sampling with the trainer's module (``hf``), the same
    backend over a frozen copy of that module, which the engine then syncs after every step."""
    if not shares_weights(policy):
        return policy
    from resrl.rollout.hf import HFPolicy

    if not isinstance(policy, HFPolicy):
        raise ValueError(
            f"train.async_steps=1 needs a sampler with its own weights; {type(policy).__name__} shares the trainer's"
        )
    model = ctx.model
    if any(type(p).__name__ == "DTensor" for p in model.parameters()):
        raise ValueError(
            "train.async_steps=1 with rollout.backend=hf cannot copy FSDP-sharded weights; use vllm or servers"
        )
    frozen = copy.deepcopy(model)
    if hasattr(frozen, "merge_and_unload"):  # LoRA: the plain model, under the names export_weights gives
        frozen = frozen.merge_and_unload()
    frozen.requires_grad_(False).eval()
    sampler = type(policy).for_trainer(dataclasses.replace(ctx, model=frozen))
    sampler.shares_weights = False
    return sampler


class Rollouts:
    """The trainer's collections, synchronous (``async_steps=0``) or one step off (see the module docstring).

    ``engine`` is the :class:`~resrl.trainer.engine.RolloutEngine`; ``pick(step)`` the step's tasks (all ranks');
    ``saved`` the ``state.json`` of the checkpoint resumed from, if any.
    """

    def __init__(
        self,
        engine: Any,
        cfg: Any,
        pick: Callable[[int], list[Task]],
        seed_step: Callable[[int], None],
        saved: dict[str, Any] | None = None,
    ) -> None:
        self.engine = engine
        self.cfg = cfg
        self.pick = pick
        self.seed_step = seed_step
        self.enabled = bool(cfg.train.async_steps)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resrl-prefetch") if self.enabled else None
        self._future: Future | None = None
        self._key: Key | None = None  # the request of the batch in flight or ready
        self._ready: list[Trajectory] | None = None
        self._pending_sync = False
        if self.enabled and saved and saved.get(STATE_KEY):
            entry = saved[STATE_KEY]
            self._key = (tuple(entry["task_ids"]), int(entry["n"]), float(entry["temperature"]))
            self._ready = [Trajectory.model_validate(t) for t in entry["trajectories"]]
            log.info("resume: the prefetched batch of step %d comes from the checkpoint", entry["step"])
        elif self.enabled and saved is not None:
            log.info("resume: no prefetched batch in the checkpoint; the first step collects synchronously")

    # -- the loop's hooks ------------------------------------------------------------------------------------
    def collect(self, tasks: list[Task], n: int, temperature: float) -> list[Trajectory]:
        """``n`` episodes of each task: the prefetched batch when it was collected for exactly this request, else
        a collection now (after the one in flight, whose batch is kept, and with the newest weights pushed)."""
        key = _key(tasks, n, temperature)
        if self.enabled:
            self._settle()
            if self._ready is not None and self._key == key:
                batch, self._ready, self._key = self._ready, None, None
                return batch
            self._push_pending()
        return self.engine.collect(tasks, n, temperature)

    def prefetch(self, step: int) -> None:
        """Start collecting ``step``'s share of tasks in the background (after pushing the newest weights)."""
        if not self.enabled or step > self.cfg.train.steps:
            return
        self._settle()
        if self._ready is not None:
            log.warning("a prefetched batch was never trained on (its request changed); dropping it")
            self._ready, self._key = None, None
        self._push_pending()
        tasks = self.pick(step)
        start, end = distributed.shard_bounds(len(tasks))
        mine = tasks[start:end]
        if not mine:
            return
        n, temperature = self.cfg.rollout.n, self.cfg.rollout.temperature
        self._key = _key(mine, n, temperature)
        self._future = self._pool.submit(self._collect_in_background, step, mine, n, temperature)

    def after_update(self) -> None:
        """After an optimizer step: push the new weights now, or, with a collection in flight, once it is done."""
        if self.enabled:
            self._pending_sync = True
            if self._future is None:
                self._push_pending()
        else:
            self.engine.sync_weights()

    def drain(self) -> None:
        """Wait for the collection in flight (keeping its batch) and push the newest weights: before an evaluation
        or a checkpoint, which then see the engine idle and holding the trainer's weights."""
        if self.enabled:
            self._settle()
            self._push_pending()

    def state(self, step: int) -> dict[str, Any]:
        """What a checkpoint at ``step`` stores so a resumed run trains on the batch prefetched for ``step + 1``."""
        self.drain()
        if not self.enabled or self._ready is None or self._key is None or distributed.world_size() > 1:
            return {}
        task_ids, n, temperature = self._key
        return {
            STATE_KEY: {
                "step": step + 1,
                "task_ids": list(task_ids),
                "n": n,
                "temperature": temperature,
                "trajectories": [t.model_dump(mode="json") for t in self._ready],
            }
        }

    def close(self) -> None:
        """Let the collection in flight finish (a thread cannot be stopped mid-generation) and stop the worker."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    # -- internals -------------------------------------------------------------------------------------------
    def _collect_in_background(self, step: int, tasks: list[Task], n: int, temperature: float) -> list[Trajectory]:
        self.seed_step(step)  # as the synchronous path seeds before its collection
        batch = self.engine.collect(tasks, n, temperature)
        log.info("prefetch step=%d episodes=%d", step, len(batch))
        return batch

    def _settle(self) -> None:
        """Turn the collection in flight into the ready batch (re-raising what failed in it)."""
        if self._future is not None:
            future, self._future = self._future, None
            self._ready = future.result()

    def _push_pending(self) -> None:
        if self._pending_sync:
            self._pending_sync = False
            self.engine.sync_weights()


def _key(tasks: list[Task], n: int, temperature: float) -> Key:
    return tuple(t.id for t in tasks), int(n), float(temperature)
