"""The RL loop: collect → rewards and advantages → old log-probs and hidden states → weights over whole groups →
PPO epochs over mini-batches (gradient accumulation over micro-batches) → optimizer step → weights into the
rollout engine → evaluation → checkpoints.

Every step re-seeds from ``(train.seed, step)``, so which tasks are drawn and what is sampled depend only on the
step number and the weights: a run resumed from a checkpoint reproduces the uninterrupted run.
"""

from __future__ import annotations

import contextlib
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from resrl.algos import HiddenCapture, policy_loss, token_advantages
from resrl.core.task import Task
from resrl.metrics import distinct_n, mean_entropy, outcomes, score
from resrl.rollout.trajectory import Trajectory
from resrl.trainer import distributed
from resrl.trainer.batch import TokenBatch, collate, token_logprobs
from resrl.trainer.checkpoint import latest_checkpoint, load_training_state, rng_state, save_checkpoint, set_rng_state
from resrl.trainer.config import Config
from resrl.trainer.engine import RolloutEngine
from resrl.trainer.logs import RunLogger
from resrl.trainer.modeling import load_model, trainable_parameters
from resrl.trainer.overlap import Rollouts, tis_default

log = logging.getLogger("resrl.trainer")


def seed_everything(seed: int, step: int) -> None:
    """Seed Python, NumPy and torch from the run seed and the step (what makes resume reproducible)."""
    mixed = (seed * 1_000_003 + step * 7919) % (2**31)
    random.seed(mixed)
    np.random.seed(mixed)
    torch.manual_seed(mixed)


def make_tasks(env_ids: list[str], split: str, n: int, seed: int) -> list[Task]:
    """``n`` tasks of ``split`` from each environment's seeded generator."""
    import resrl

    tasks: list[Task] = []
    for env_id in env_ids:
        cls = resrl.spec(env_id).env_class()
        made = cls.generate_tasks(split, n, seed)
        tasks.extend(t if t.env_id == env_id else t.model_copy(update={"env_id": env_id}) for t in made)
    return tasks


class Trainer:
    """One training run of :class:`Config`; ``resume=True`` continues from the newest checkpoint."""

    def __init__(self, cfg: Config, *, resume: bool = False) -> None:
        self.cfg = cfg
        self.out_dir = Path(cfg.train.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        ckpt = latest_checkpoint(self.out_dir) if resume else None
        if resume and ckpt is None:
            log.warning("resume asked but no checkpoint in %s; starting fresh", self.out_dir)
        seed_everything(cfg.train.seed, 0)
        distributed.init_process_group()
        self.parallel = distributed.resolve_parallel(cfg.train.parallel)
        self.device = distributed.device(cfg.model.device)
        self.model, self.tokenizer = load_model(cfg.model, adapter_dir=ckpt / "model" if ckpt else None)
        self.model.to(self.device)  # before sharding and the optimizer: both take the parameters where they are
        distributed.shard(self.model, self.parallel)  # FSDP2 shards in place, before the optimizer sees the params
        self.optimizer = torch.optim.AdamW(
            trainable_parameters(self.model), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
        )
        self.start_step = 0
        self.history: list[dict[str, Any]] = []
        if ckpt is not None:
            state = load_training_state(ckpt, self.optimizer, self.model)
            self.start_step = int(state["step"])
            self.history = list(state.get("history", []))
            log.info("resumed from %s at step %d", ckpt, self.start_step)
        self.train_tasks = make_tasks(cfg.data.envs, "train", cfg.data.train_tasks, cfg.data.seed)
        self.test_tasks = make_tasks(cfg.data.envs, "test", cfg.data.test_tasks, cfg.data.seed)
        self.sft_losses: list[float] = []
        if cfg.sft.enabled and ckpt is None:
            self.sft_losses = self._warm_up()
        # DDP trains through its wrapper (which starts every rank from rank 0's weights); sampling, scoring and
        # export use the plain module.
        self.train_model = distributed.replicate(self.model, self.parallel)
        self.layout = distributed.RowLayout.gather([])
        self.engine = RolloutEngine(cfg, self.model, self.tokenizer)
        # A sampler with weights of its own (vllm, servers) starts from what SFT or the checkpoint left.
        if ckpt is not None or self.sft_losses:
            self.engine.sync_weights()
        self.rollouts = Rollouts(
            self.engine, cfg, self._pick_tasks, lambda s: seed_everything(cfg.train.seed, s), state if ckpt else None
        )
        # Only rank 0 writes the run's logs (every rank computes the same reduced metrics).
        self.logger = (
            RunLogger(self.out_dir, tensorboard=cfg.train.tensorboard, resume_step=self.start_step if ckpt else None)
            if distributed.is_main()
            else None
        )
        # The paper's 3500/4096 length window, rescaled to this run's token budget unless set explicitly.
        window = {} if cfg.algo.length_max else {"length_max": cfg.rollout.max_tokens}
        self.algo = cfg.algo.model_copy(update={**window, **tis_default(cfg)})
        self.last_batch: TokenBatch | None = None
        self.last_advantages: torch.Tensor | None = None
        self.last_eval_trajectories: list[Trajectory] = []
        self.ref_model = None
        if cfg.algo.kl_coef > 0 and cfg.model.lora is None:
            self.ref_model, _ = load_model(cfg.model.model_copy(update={"lora": None}))
            self.ref_model.requires_grad_(False)
            self.ref_model.to(self.device)

    def _warm_up(self) -> list[float]:
        from resrl.trainer.sft import sft_warmup

        s = self.cfg.sft
        tasks = make_tasks(s.envs or self.cfg.data.envs, "train", s.tasks, self.cfg.data.seed + 1)
        return sft_warmup(
            self.model,
            self.tokenizer,
            tasks,
            epochs=s.epochs,
            batch_size=s.batch_size,
            lr=s.lr,
            seed=self.cfg.train.seed,
            tool_format=self.cfg.rollout.tool_format,
        )

    # -- the run ----------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train to ``train.steps``; returns the last evaluation's metrics."""
        cfg = self.cfg.train
        last_eval: dict[str, Any] = {}
        if self.start_step == 0 and cfg.eval_at_start:
            last_eval = self.evaluate(0)
        with Progress(transient=True, disable=not distributed.is_main()) as bar:  # one bar, not one per rank
            job = bar.add_task("training", total=cfg.steps, completed=self.start_step)
            for step in range(self.start_step + 1, cfg.steps + 1):
                self.train_step(step)
                if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps:
                    last_eval = self.evaluate(step)
                if (cfg.save_every and step % cfg.save_every == 0) or step == cfg.steps:
                    save_checkpoint(
                        self.out_dir,
                        step,
                        self.model,
                        self.tokenizer,
                        self.optimizer,
                        {"history": self.history, **self.rollouts.state(step)},
                    )
                bar.advance(job)
        if self.logger is not None:
            if cfg.plots:
                from resrl.trainer.plots import write_plots

                for path in write_plots(self.out_dir):
                    log.info("plot %s", path)
            self.logger.close()
        return last_eval

    def close(self) -> None:
        """Release the rollout engine."""
        self.rollouts.close()
        self.engine.close()

    # -- one step ---------------------------------------------------------------------------------------------
    def _pick_tasks(self, step: int) -> list[Task]:
        rng = random.Random(self.cfg.train.seed * 1_000_003 + step)
        k = min(self.cfg.train.tasks_per_step, len(self.train_tasks))
        return rng.sample(self.train_tasks, k)

    def _collect(self, tasks: list[Task], n: int, temperature: float) -> tuple[list[Trajectory], list[Trajectory]]:
        """This rank's episodes of its contiguous share of ``tasks`` (whole groups), and every rank's, in task
        order (the single-process order). Per-request seeds make neither depend on the number of ranks."""
        start, end = distributed.shard_bounds(len(tasks))
        mine: list[Trajectory] = []
        if end > start:
            with distributed.gathered(self.model):  # FSDP: full parameters while ranks decode at their own pace
                mine = self.rollouts.collect(tasks[start:end], n, temperature)
        return mine, [t for part in distributed.all_gather_objects(mine) for t in part]

    def train_step(self, step: int) -> dict[str, Any]:
        """Collect one batch of groups and apply the PPO epochs; returns the step's metrics."""
        cfg, algo = self.cfg, self.algo
        seed_everything(cfg.train.seed, step)
        mine, trajectories = self._collect(self._pick_tasks(step), cfg.rollout.n, cfg.rollout.temperature)
        self.rollouts.prefetch(step + 1)  # async_steps=1: the next batch samples while this one trains
        kept = [t for t in mine if t.infra_error is None]
        # None (no usable trajectory) is left out, so the step's record holds numbers only.
        counts = outcomes(trajectories, algo.success_threshold)
        metrics: dict[str, Any] = {k: v for k, v in counts.items() if v is not None}
        metrics.update(_rollout_metrics([t for t in trajectories if t.infra_error is None], self.tokenizer))
        if cfg.train.filter_groups:
            kept = _mixed_groups(kept, algo.success_threshold)  # groups are whole on each rank
            metrics["groups_trained"] = distributed.all_reduce_sum(len({t.group_id for t in kept}))
        batch = collate(kept, self.tokenizer.pad_token_id or 0).to(self.device) if kept else None
        self.layout = distributed.RowLayout.gather(batch.mask.sum(1).tolist() if batch is not None else [])
        if not self.layout.total:
            log.warning("step %d: no trajectory to train on (infrastructure errors or no mixed group)", step)
            self._record(step, metrics, {})
            return metrics
        fused = self._fused(batch)
        old_logp, ref_logp, entropy, hidden = (None, None, None, None) if fused else self._score(batch)
        # Per whole group, on the rank that holds it; length scaling of positives counts masked tokens only.
        stats: dict[str, Any] = {}
        advantages = None
        if batch is not None:
            advantages, stats = token_advantages(algo, batch.rewards, batch.group_ids, batch.mask, hidden)
        self.last_batch, self.last_advantages = batch, advantages
        tokens = int(batch.mask.sum()) if batch is not None else 0
        # On the CPU before pickling: a CUDA tensor unpickles onto its rank's device, and ranks' would not concatenate.
        stats = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in stats.items()}
        stats = _merge_rank_stats(distributed.all_gather_objects((len(kept), tokens, stats)))
        histograms = {}
        if "resrl/negative_weights" in stats:  # the weights themselves, not the advantages they scale
            histograms["resrl_weight"] = stats.pop("resrl/negative_weights").numpy()
        metrics.update({f"algo/{k}": _scalar(v) for k, v in stats.items() if _scalar(v) is not None})
        if "resrl/weight_hist" in stats:
            metrics["algo/resrl/weight_hist"] = stats["resrl/weight_hist"]
        optimized, trained_entropy = self._optimize(batch, old_logp, ref_logp, advantages, step)
        ent_sum = 0.0
        if batch is not None:
            ent = entropy if entropy is not None else trained_entropy
            ent_sum = mean_entropy(ent, batch.mask) * float(batch.mask.sum())
        metrics["token_entropy"] = distributed.all_reduce_sum(ent_sum) / max(sum(self.layout.tokens), 1)
        metrics.update(optimized)
        self.rollouts.after_update()
        self._record(step, metrics, histograms)
        return metrics

    def _rows(self, batch: TokenBatch | None) -> distributed.RowLayout:
        """The step's rows over all ranks; in one process simply ``batch``'s (also when called on its own)."""
        if distributed.active() or batch is None:
            return self.layout
        return distributed.RowLayout.gather(batch.mask.sum(1).tolist())

    def _fused(self, batch: TokenBatch | None) -> bool:
        """Whether the scoring pass can be folded into the training forward.

        With one optimizer step over the whole batch at the weights that sampled it, no KL term and no hidden
        states, the old log-probs equal the training forward's own (detached): the ratio is exactly 1 and the
        gradient is the two-pass one, so the separate no-grad pass would only repeat the forward.
        """
        o = self.cfg.optim
        return (
            o.ppo_epochs == 1
            and o.mini_batch_size >= self._rows(batch).total
            and self.cfg.algo.kl_coef <= 0
            and not self.algo.spec.needs_hidden
        )

    @torch.no_grad()
    def _score(self, batch: TokenBatch | None):
        """Old log-probs, reference log-probs (KL only), entropy, and the packed (N, H) hidden states of the
        trainable tokens (schemes whose ``spec.needs_hidden``). Micro-batches are consecutive rows, so the concatenated
        packed rows stay in row-major order over the whole batch. A rank with fewer micro-batches than the busiest
        runs empty ones (FSDP forwards are collectives); a rank with no rows gets Nones."""
        self.model.eval()
        mb = self.cfg.optim.micro_batch_size
        need_hidden = self.algo.spec.needs_hidden
        old, ref, ent, hid = [], [], [], []
        chunks = list(torch.arange(len(batch)).split(mb)) if batch is not None else []
        for _ in range(self._rows(batch).micro_count(None, mb) - len(chunks)):
            idle = _idle_part(self.tokenizer.pad_token_id or 0, self.device)
            self._logprobs(self.model, idle)
            if self.cfg.algo.kl_coef > 0 and self.ref_model is None:
                self._ref_logprobs(idle)
        if batch is None:
            return None, None, None, None
        length = batch.mask.shape[1]
        for idx in chunks:
            part = batch.select(idx)
            capture: Any = contextlib.nullcontext()
            if need_hidden:
                # The state at input position t produced token t + 1: capture where that token is trainable.
                at_inputs = torch.cat([part.mask, part.mask.new_zeros((len(part), 1))], dim=1)
                capture = HiddenCapture(self.model, layer=self.cfg.model.hidden_layer, mask=at_inputs)
            with capture as cap:
                logp, e = self._logprobs(self.model, part, entropy=True)
            if need_hidden:
                hid.append(cap.packed())  # (N, H), row-major over the trainable tokens of these rows
            old.append(_pad(logp, length))
            ent.append(_pad(e, length))
            if self.cfg.algo.kl_coef > 0:
                ref.append(_pad(self._ref_logprobs(part), length))
        return (
            torch.cat(old),
            torch.cat(ref) if ref else None,
            torch.cat(ent),
            torch.cat(hid) if hid else None,
        )

    def _ref_logprobs(self, part: TokenBatch) -> torch.Tensor:
        if self.ref_model is not None:
            return self._logprobs(self.ref_model, part)[0]
        with self.model.disable_adapter():  # LoRA: the base model is the reference, no second copy
            return self._logprobs(self.model, part)[0]

    def _logprobs(self, model: Any, part: TokenBatch, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:func:`token_logprobs` of ``part`` under ``model`` at the rollout temperature: the trainer scores and
        trains the distribution the rollouts sample (logits / T, as verl does)."""
        t = self.cfg.rollout.temperature
        return token_logprobs(model, part.input_ids, part.attention_mask, mask=part.mask, temperature=t, **kwargs)

    def _optimize(
        self, batch, old_logp, ref_logp, advantages, step: int
    ) -> tuple[dict[str, float], torch.Tensor | None]:
        """PPO epochs over shuffled mini-batches; gradients accumulate over micro-batches.

        ``old_logp=None`` is the fused step (:meth:`_fused`): each micro-batch's detached log-probs are its old
        ones, and the token entropy (B, L-1) of the training forward is returned with the loss metrics.

        Mini-batches are drawn over the global rows of every rank (:class:`~resrl.trainer.distributed.RowLayout`),
        so they hold the rows one process would put in them; each rank trains its own of those rows, normalised by
        the mini-batch's all-ranks token and sequence counts. The local loss is scaled by the world size because
        DDP and FSDP average gradients over ranks: the sum over ranks is then the single-process gradient.
        """
        ocfg, algo = self.cfg.optim, self.algo
        fused = old_logp is None
        entropy = torch.zeros(batch.mask.shape, device=batch.mask.device) if fused and batch is not None else None
        layout, scale = self._rows(batch), float(distributed.world_size())
        self.model.train()
        gen = torch.Generator().manual_seed(self.cfg.train.seed * 31 + step)
        sums: dict[str, float] = {}
        count = 0
        grad_norms = []
        for _ in range(ocfg.ppo_epochs):
            order = torch.randperm(layout.total, generator=gen)
            for mini in order.split(ocfg.mini_batch_size):
                self.optimizer.zero_grad(set_to_none=True)
                global_tokens = layout.token_count(mini)
                micros = list(layout.local(mini).split(ocfg.micro_batch_size))
                n_micro = layout.micro_count(mini, ocfg.micro_batch_size)
                for i in range(n_micro):
                    # Past its own rows a rank runs empty micro-batches: DDP's gradient all-reduce and FSDP's
                    # gathers need every rank in every pass. They add exactly zero to the gradient.
                    micro = micros[i] if i < len(micros) else None
                    pad_id = self.tokenizer.pad_token_id or 0
                    part = batch.select(micro) if micro is not None else _idle_part(pad_id, self.device)
                    width = part.mask.shape[1]
                    with distributed.accumulate(self.train_model, sync=i == n_micro - 1):
                        logp, ent = self._logprobs(
                            self.train_model,
                            part,
                            entropy=fused or algo.entropy_coef > 0,
                            entropy_grad=algo.entropy_coef > 0,
                        )
                        idle = micro is None
                        loss, m = policy_loss(
                            logp,
                            logp.detach() if fused or idle else old_logp[micro, :width],
                            torch.zeros_like(logp) if idle else advantages[micro, :width],
                            part.mask,
                            algo,
                            ref_logprobs=_ref_slice(ref_logp, micro, width, logp),
                            entropy=ent,
                            behaviour_logprobs=logp.detach() if idle else part.behaviour_logprobs,
                            global_token_count=global_tokens,
                            global_seq_count=len(mini),
                        )
                        (loss * scale).backward()
                    if idle:
                        continue
                    if entropy is not None:
                        entropy[micro, :width] = ent.detach()
                    for key, value in m.items():
                        v = _scalar(value)
                        if v is not None:
                            sums[key] = sums.get(key, 0.0) + v
                    count += 1
                params = [p for p in self.model.parameters() if p.requires_grad]
                norm = torch.nn.utils.clip_grad_norm_(params, ocfg.grad_clip or float("inf"))
                grad_norms.append(float(distributed.full_tensor(norm)))
                self.optimizer.step()
        self.model.eval()
        if distributed.active():
            sums = {k: distributed.all_reduce_sum(sums.get(k, 0.0)) for k in sorted(sums)}
            count = distributed.all_reduce_sum(count)
        out = {f"loss/{k}": v / max(count, 1) for k, v in sums.items()}
        out["grad_norm"] = sum(grad_norms) / max(len(grad_norms), 1)
        return out, entropy

    def _record(self, step: int, metrics: dict[str, Any], histograms: dict[str, Any]) -> None:
        self.history.append({"step": step, **{k: v for k, v in metrics.items() if isinstance(v, int | float)}})
        if self.logger is not None:
            self.logger.write("train", step, metrics, histograms)

    # -- evaluation -------------------------------------------------------------------------------------------
    def evaluate(self, step: int) -> dict[str, Any]:
        """Avg@k and unbiased Pass@k on the test split (seeded, so comparable across steps and runs)."""
        cfg = self.cfg
        self.rollouts.drain()  # the engine idle and holding this step's weights
        state = rng_state()
        seed_everything(cfg.train.seed + 12345, 0)  # the same sampling noise at every evaluation
        # Each rank samples its share of the test tasks (per-request seeds: the same episodes as one process).
        _, trajectories = self._collect(self.test_tasks, cfg.train.eval_k, cfg.train.eval_temperature)
        set_rng_state(state)
        self.last_eval_trajectories = trajectories
        result = score(trajectories, cfg.train.eval_k, cfg.algo.success_threshold)
        if self.logger is not None:
            self.logger.write("eval", step, result)
        return result


def _rollout_metrics(kept: list[Trajectory], tokenizer) -> dict:
    """Length, turns and distinct-2 of the usable trajectories (their outcomes come from resrl.metrics)."""
    if not kept:
        return {}
    texts = [tokenizer.decode([tok for tok, m in zip(t.response_ids, t.loss_mask, strict=True) if m]) for t in kept]
    return {
        "policy_tokens_mean": sum(t.n_policy_tokens for t in kept) / len(kept),
        "turns_mean": sum(t.turns for t in kept) / len(kept),
        "distinct_2": distinct_n(texts, 2),
    }


def _mixed_groups(trajectories: list[Trajectory], threshold: float) -> list[Trajectory]:
    """The trajectories of groups holding both a success and a failure."""
    outcomes: dict[str, set[bool]] = {}
    for t in trajectories:
        outcomes.setdefault(t.group_id, set()).add(t.reward >= threshold)
    return [t for t in trajectories if len(outcomes[t.group_id]) == 2]


def _idle_part(pad_id: int, device: torch.device) -> TokenBatch:
    """A two-token row with nothing to train: what a rank out of rows runs to keep in step with the others."""
    return TokenBatch(
        input_ids=torch.full((1, 2), pad_id, dtype=torch.long, device=device),
        attention_mask=torch.ones((1, 2), dtype=torch.long, device=device),
        mask=torch.zeros((1, 1), dtype=torch.bool, device=device),
        rewards=torch.zeros(1, device=device),
        group_ids=torch.zeros(1, dtype=torch.long, device=device),
        n_policy_tokens=torch.zeros(1, dtype=torch.long, device=device),
    )


def _ref_slice(ref_logp: torch.Tensor | None, micro: torch.Tensor | None, width: int, like: torch.Tensor):
    if ref_logp is None:
        return None
    return torch.zeros_like(like).detach() if micro is None else ref_logp[micro, :width]


def _merge_rank_stats(parts: list[tuple[int, int, dict[str, Any]]]) -> dict[str, Any]:
    """One statistics dict of ``token_advantages`` from each rank's ``(rows, tokens, stats)`` of its own groups.

    Counts add, histograms add per bin, tensors concatenate, edges are shared, and means are weighted by what
    they average over: trainable tokens for the weighted-token share, weighted tokens for the weight mean,
    rows otherwise. A rank with no rows (``{}``) contributes nothing.
    """
    parts = [p for p in parts if p[2]]
    if len(parts) <= 1:
        return parts[0][2] if parts else {}
    over = {"resrl/weighted_token_share": lambda p: p[1], "resrl/weight_mean": lambda p: p[2]["resrl/weighted_tokens"]}
    out: dict[str, Any] = {}
    for key, first in parts[0][2].items():
        values = [p[2][key] for p in parts]
        if isinstance(first, torch.Tensor) and first.numel() != 1:
            out[key] = torch.cat([v.reshape(-1) for v in values])
        elif key.endswith("_edges"):
            out[key] = first
        elif isinstance(first, list):
            out[key] = [sum(col) for col in zip(*values, strict=True)]
        elif isinstance(first, int) and not isinstance(first, bool):
            out[key] = sum(values)
        else:
            weights = [over.get(key, lambda p: p[0])(p) for p in parts]
            total = sum(weights)
            out[key] = sum(float(v) * w for v, w in zip(values, weights, strict=True)) / total if total else first
    return out


def _pad(x: torch.Tensor, length: int) -> torch.Tensor:
    """Right-pad the token dimension (dim 1) of ``x`` with zeros to ``length``."""
    if x.shape[1] == length:
        return x
    pad = x.new_zeros((x.shape[0], length - x.shape[1], *x.shape[2:]))
    return torch.cat([x, pad], dim=1)


def _scalar(value: Any) -> float | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
