"""The policy interface every backend implements, and ``load_policy("NAME:TARGET")`` over the backend registry
(:mod:`resrl.rollout.backends`: ``hf:PATH``, ``vllm:PATH``, ``openai:URL``, ``gold:PATH``, ...).

A policy takes token ids and returns token ids: prompts are never re-tokenized, and the generated ids come
back exactly as sampled, with the log-probability of each under the sampling temperature and no other logits
processors (so at temperature 1 they equal a fresh forward pass; at temperature 0 — greedy — they are the
temperature-1 log-probs of the chosen tokens).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from pydantic import BaseModel, Field

FinishReason = Literal["stop", "length"]


class SamplingParams(BaseModel):
    """How to sample one generation. ``stop_ids`` end a turn (the stop token is kept in the output)."""

    temperature: float = Field(1.0, ge=0.0)
    max_new_tokens: int = Field(256, ge=1)
    stop_ids: list[int] = Field(default_factory=list)
    seed: int | None = None
    ignore_stop: bool = False  # for benchmarks: generate exactly max_new_tokens


class Generation(BaseModel):
    """One sampled continuation: ids exactly as sampled, their log-probs, and why it ended."""

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: FinishReason


@runtime_checkable
class Policy(Protocol):
    """What the collector needs from a model."""

    tokenizer: Any

    def generate(
        self, prompts: list[list[int]], sampling: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]:
        """One generation per prompt; ``sampling`` is shared or given per prompt."""
        ...

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load new weights (names as in the HF model's ``state_dict``)."""
        ...


class GenerationStream(Protocol):
    """Continuous batching: requests join a running batch and leave it when they finish. A policy offering it has
    ``open_stream(seed) -> GenerationStream | None``; the collector then runs every episode at its own pace."""

    def add(self, key: int, prompt: list[int], sampling: SamplingParams) -> None:
        """Queue a request; its generation comes back from a later ``step`` under ``key``."""
        ...

    def step(self) -> list[tuple[int, Generation]]:
        """Advance the batch by one engine step; the requests that finished."""
        ...

    def busy(self) -> bool:
        """Whether any request is queued or running."""
        ...

    def abort(self, key: int) -> None:
        """Drop a request (its generation never comes back)."""
        ...

    def release(self, key: int) -> None:
        """The caller is done with ``key`` (its episode ended): state kept for its next request may go."""
        ...


def per_prompt(sampling: SamplingParams | Sequence[SamplingParams], n: int) -> list[SamplingParams]:
    """``sampling`` as one object per prompt."""
    if isinstance(sampling, SamplingParams):
        return [sampling] * n
    items = list(sampling)
    if len(items) != n:
        raise ValueError(f"got {len(items)} sampling params for {n} prompts")
    return items


def load_policy(spec: str, **kwargs: Any) -> Policy:
    """A policy from ``NAME:TARGET``: ``hf:PATH``, ``vllm:PATH``, ``openai:URL`` (the server's ``/v1`` base),
    ``gold:PATH`` (gold solutions played with the tokenizer at ``PATH``), or any backend in
    :mod:`resrl.rollout.backends`."""
    from resrl.rollout.backends import backend_class, backend_names

    kind, sep, target = spec.partition(":")
    if not sep or not target:
        raise ValueError(
            f"policy spec {spec!r} must look like NAME:TARGET, e.g. hf:PATH, vllm:PATH, openai:URL or gold:PATH "
            f"(backends: {', '.join(backend_names())})"
        )
    return backend_class(kind).from_spec(target, **kwargs)
