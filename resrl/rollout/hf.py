"""The ``hf`` backend: batched sampling with a transformers causal LM (CPU or GPU), with its own decode loop.

We sample in our own loop rather than ``model.generate`` so that no logits processor from a checkpoint's
``generation_config`` (top-k, repetition penalty, ...) can change the distribution the recorded log-probs
describe: logits / temperature → log-softmax → sample.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from resrl.models.hf_api import output_cache, with_cache
from resrl.rollout.kvstore import PrefixKVStore, assemble, extract, supports_prefix_store
from resrl.rollout.policy import Generation, SamplingParams, per_prompt
from resrl.rollout.seeding import request_seeds

log = logging.getLogger("resrl.rollout")

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters (glibc's malloc.h)


def retain_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory in the process heap instead of giving it back to the system.

    glibc serves large blocks (a batch's KV cache, regrown every decode step) with ``mmap`` and unmaps them on
    free, so every step faults in fresh zeroed pages: on a 2-core CPU more than half of ``hf`` generation's
    time went to the kernel, and generation ran twice as fast with this. The cost: the process's memory stays
    near its peak. Whether it took effect; nothing happens without glibc, or where ``MALLOC_MMAP_MAX_`` or
    ``MALLOC_TRIM_THRESHOLD_`` is set (the user chose).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if "MALLOC_MMAP_MAX_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    libc = ctypes.CDLL(None)
    done = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
    if done:
        log.debug("glibc malloc keeps freed memory (no mmap for large blocks; trim above 1 GiB)")
    return done


class HFPolicy:
    """A transformers model as a policy.

    ``model_or_path`` is a local checkpoint directory or an already built ``PreTrainedModel``. When the trainer
    passes its own module, :meth:`update_weights` has nothing to do (the weights are shared by design).
    ``prefix_cache_bytes`` bounds the KV kept between an episode's turns (0 disables it; later turns then prefill
    the whole conversation again). On CPU the process keeps the memory it frees (:func:`retain_freed_memory`).
    """

    def __init__(
        self,
        model_or_path: Any,
        tokenizer: Any = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        batch_size: int = 64,
        prefix_cache_bytes: int = 4 << 30,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if isinstance(model_or_path, str | Path):
            self.model = AutoModelForCausalLM.from_pretrained(str(model_or_path), dtype=dtype or torch.float32)
            self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(model_or_path))
        else:
            if tokenizer is None:
                raise ValueError("pass the tokenizer along with a model object")
            self.model, self.tokenizer = model_or_path, tokenizer
        self.device = torch.device(device) if device else next(self.model.parameters()).device
        self.model.to(self.device)
        if self.device.type == "cpu":
            retain_freed_memory()
        self.batch_size = batch_size
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.tokenizer.eos_token_id)
        self.store = PrefixKVStore(self.model, prefix_cache_bytes) if prefix_cache_bytes > 0 else None
        self._streamable: bool | None = None
        # True when built on the trainer's module (for_trainer): an optimizer step reaches it with no sync.
        self.shares_weights = False

    @classmethod
    def from_spec(cls, target: str, **kwargs: Any) -> HFPolicy:
        """``hf:PATH``: the checkpoint folder at ``PATH``."""
        return cls(target, **kwargs)

    @classmethod
    def for_trainer(cls, ctx: Any) -> HFPolicy:
        """The trainer's own module: after an optimizer step the sampler already has the new weights."""
        # A single-turn run has no later turn to reuse a finished row's KV for, so keeping it only costs copies.
        store = {"prefix_cache_bytes": 0} if ctx.rollout.max_turns == 1 else {}
        policy = cls(ctx.model, ctx.tokenizer, **store)
        policy.shares_weights = True
        return policy

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy tensors into the model by name (a no-op in effect when they already are its parameters)."""
        params = self.model.state_dict(keep_vars=True)  # state_dict names: tied weights (lm_head) included
        with torch.no_grad():
            for name, tensor in named_tensors:
                if name not in params:
                    raise KeyError(f"the policy model has no parameter {name!r}")
                if params[name].data_ptr() != tensor.data_ptr():
                    params[name].copy_(tensor.to(params[name].device, params[name].dtype))

    def reset_prefix_cache(self) -> None:
        """Drop the KV kept for later turns (for cold-start measurements)."""
        if self.store is not None:
            self.store.clear()

    def generate(
        self, prompts: list[list[int]], sampling: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]:
        """Sample one continuation per prompt, in batches of ``batch_size``.

        A prompt with a seed samples from its own random stream (:func:`draws`), so its tokens do not depend on
        the other prompts (up to float noise in batched logits); one shared ``SamplingParams`` seeds prompt ``i``
        with ``derive_seed(seed, i)``. Unseeded prompts draw from torch's global RNG.
        """
        params = per_prompt(sampling, len(prompts))
        seeds = request_seeds(sampling, len(prompts))
        out: list[Generation] = []
        for start in range(0, len(prompts), self.batch_size):
            end = start + self.batch_size
            out += self._generate_batch(prompts[start:end], params[start:end], seeds[start:end])
        return out

    def open_stream(self, seed: int | None = None):
        """A continuous-batching stream over this model (see :class:`resrl.rollout.hf_stream.HFStream`), or None
        where the model's cache cannot be split per row (the collector then falls back to lock-step rounds)."""
        from resrl.rollout.hf_stream import HFStream

        if self._streamable is None:  # sliding-window or quantized caches cannot be sliced per row
            with torch.no_grad():
                probe = self.model(input_ids=torch.tensor([[self.pad_id]], device=self.device), use_cache=True)
            self._streamable = supports_prefix_store(output_cache(probe))
        return HFStream(self, seed) if self._streamable else None

    @torch.no_grad()
    def prefill(self, prompts: list[list[int]]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """Run ``prompts`` through the model, reusing stored prefix KV: ``(cache, attention_mask, last_logits)``.

        Each row is laid out ``[pad][cached prefix KV][pad][new tokens]``; only the new tokens are computed, and
        only the last position's logits (the lm head over every position would dominate a tiny model's prefill).
        """
        if any(not p for p in prompts):
            raise ValueError("every prompt needs at least one token")
        n, dev = len(prompts), self.device
        hits = [self.store.longest_prefix(tuple(p)) if self.store else (0, None) for p in prompts]
        cached = [c for c, _ in hits]
        for p, c in zip(prompts, cached, strict=True):  # consumed: the rows' next puts store the longer KV
            if c:
                self.store.discard(tuple(p[:c]))
        fresh = [len(p) - c for p, c in zip(prompts, cached, strict=True)]
        past, width = max(cached), max(fresh)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        pos = torch.zeros((n, width), dtype=torch.long)
        attn = torch.zeros((n, past + width), dtype=torch.long)
        for i, (p, c, f) in enumerate(zip(prompts, cached, fresh, strict=True)):
            ids[i, width - f :] = torch.tensor(p[c:])
            pos[i, width - f :] = torch.arange(c, len(p))
            attn[i, past - c : past] = 1
            attn[i, past + width - f :] = 1
        ids, pos, attn = ids.to(dev), pos.to(dev), attn.to(dev)
        like = next((kv for _, kv in hits if kv is not None), None)
        cache = assemble([kv for _, kv in hits], cached, past, like, dev) if like is not None else None
        out = self.model(
            input_ids=ids,
            attention_mask=attn,
            position_ids=pos,
            **with_cache(cache),
            logits_to_keep=1,
        )
        return output_cache(out), attn, out.logits[:, -1, :]

    def generator(self, seed: int | None) -> torch.Generator:
        """A CPU generator for unseeded requests' :func:`draws`: seeded, or drawn from torch's global RNG (so
        ``torch.manual_seed`` governs it)."""
        gen = torch.Generator()
        gen.manual_seed(seed if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item()))
        return gen

    @torch.no_grad()
    def _generate_batch(
        self, prompts: list[list[int]], params: list[SamplingParams], seeds: list[int | None]
    ) -> list[Generation]:
        n, dev = len(prompts), self.device
        cache, attn, logits = self.prefill(prompts)
        pos = attn.sum(1, keepdim=True) - 1
        temps = torch.tensor([p.temperature for p in params], dtype=torch.float32, device=dev)
        limits = torch.tensor([p.max_new_tokens for p in params], device=dev)
        stops = [set() if p.ignore_stop else set(p.stop_ids) for p in params]
        noise = torch.ones((n, int(limits.max())), dtype=torch.float64)  # row i's uniform for its t-th token
        for i, (p, seed) in enumerate(zip(params, seeds, strict=True)):
            if p.temperature > 0:  # greedy rows draw nothing
                noise[i, : p.max_new_tokens] = draws(p.max_new_tokens, seed)
        noise = noise.to(dev)
        keep_kv = self.store is not None and supports_prefix_store(cache)
        tokens: list[list[int]] = [[] for _ in range(n)]
        logps: list[list[float]] = [[] for _ in range(n)]
        reasons: list[str | None] = [None] * n
        rows = list(range(n))  # batch row -> prompt index; finished rows are dropped from the batch
        for step in range(int(limits.max())):
            chosen, chosen_lp = sample(logits, temps, noise[:, step])
            keep = []
            for b, (tok, lp) in enumerate(zip(chosen.tolist(), chosen_lp.tolist(), strict=True)):
                i = rows[b]
                tokens[i].append(tok)
                logps[i].append(lp)
                if tok in stops[i]:
                    reasons[i] = "stop"
                elif step + 1 >= int(limits[b]):
                    reasons[i] = "length"
                else:
                    keep.append(b)
                    continue
                if keep_kv:  # the KV covers the prompt and every generated token but this last one
                    self.store.put(tuple(prompts[i]) + tuple(tokens[i][:-1]), extract(cache, b, attn[b]))
            if not keep:
                break
            if len(keep) < len(rows):
                index = torch.tensor(keep, device=dev)
                cache.batch_select_indices(index)
                chosen, attn, pos = chosen[index], attn[index], pos[index]
                temps, limits, noise = temps[index], limits[index], noise[index]
                rows = [rows[b] for b in keep]
            attn = torch.cat([attn, torch.ones((len(rows), 1), dtype=attn.dtype, device=dev)], dim=1)
            pos = pos + 1
            out = self.model(
                input_ids=chosen[:, None],
                attention_mask=attn,
                position_ids=pos,
                **with_cache(cache),
                logits_to_keep=1,
            )
            cache, logits = output_cache(out), out.logits[:, -1, :]
        return [
            Generation(token_ids=t, logprobs=lp, finish_reason=r or "length")
            for t, lp, r in zip(tokens, logps, reasons, strict=True)
        ]


def draws(n: int, seed: int | None, fallback: torch.Generator | None = None) -> torch.Tensor:
    """The ``n`` uniforms in (0, 1] a request samples its ``n`` tokens with (:func:`sample`), in order.

    Seeded, they come from the request's own CPU generator: the same numbers on every device, whatever else is
    in the batch. Unseeded, from ``fallback`` (torch's global RNG when None, so ``torch.manual_seed`` governs).
    """
    gen = torch.Generator().manual_seed(seed) if seed is not None else fallback
    return 1.0 - torch.rand(n, generator=gen, dtype=torch.float64)


def sample(logits: torch.Tensor, temps: torch.Tensor, uniforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row from ``log_softmax(logits / T)`` (argmax where ``T == 0``), with its log-prob.

    Row ``b`` takes the token at which the cumulative distribution reaches ``uniforms[b]`` (in (0, 1]; inverse
    CDF): one number per token and row, so a row's choice depends on its own logits and number only.
    """
    logits = logits.float()
    greedy = temps == 0
    logp = torch.log_softmax(logits / torch.where(greedy, torch.ones_like(temps), temps)[:, None], dim=-1)
    cdf = logp.double().exp().cumsum(-1)  # float64: in float32 the top of a large vocab's sum swallows rare tokens
    at = uniforms.to(cdf.device, cdf.dtype)[:, None] * cdf[:, -1:]
    sampled = torch.searchsorted(cdf, at).squeeze(1).clamp_max(cdf.shape[-1] - 1)  # first index with cdf >= at
    chosen = torch.where(greedy, logp.argmax(-1), sampled)
    return chosen, logp.gather(1, chosen[:, None]).squeeze(1)


@torch.no_grad()
def score_logprobs(
    model: Any,
    prompt_ids: list[int],
    response_ids: list[int],
    temperature: float = 1.0,
    device: str | torch.device | None = None,
) -> list[float]:
    """Log-probs of ``response_ids`` given ``prompt_ids`` under ``model`` (one forward pass) — for checking
    recorded log-probs and for the trainer's reference."""
    dev = torch.device(device) if device else next(model.parameters()).device
    ids = torch.tensor([prompt_ids + response_ids], device=dev)
    logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float() / max(temperature, 1e-8)
    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(1, ids[0, len(prompt_ids) :, None]).squeeze(1).tolist()
