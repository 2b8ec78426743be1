"""A policy that writes given text: replays gold demonstrations through the collector, and drives the
template golden tests with known turns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from resrl.rollout.policy import Generation, SamplingParams, per_prompt


class ScriptedPolicy:
    """``respond(prompt_text) -> turn_text`` decides each turn; the turn is tokenized as the tokenizer
    would (plus the stop token), and every token's log-prob is 0.0 (it is certain)."""

    def __init__(self, tokenizer: Any, respond: Callable[[str], str]) -> None:
        self.tokenizer = tokenizer
        self.respond = respond
        self.prompts_seen: list[list[int]] = []

    def generate(
        self, prompts: list[list[int]], sampling: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]:
        """One scripted turn per prompt, cut at ``max_new_tokens`` like a sampled one."""
        out = []
        for prompt, params in zip(prompts, per_prompt(sampling, len(prompts)), strict=True):
            self.prompts_seen.append(list(prompt))
            text = self.respond(self.tokenizer.decode(prompt, skip_special_tokens=False))
            ids = list(self.tokenizer.encode(text, add_special_tokens=False))
            stop = params.stop_ids[0] if params.stop_ids else self.tokenizer.eos_token_id
            ids.append(int(stop))
            reason = "stop" if len(ids) <= params.max_new_tokens else "length"
            ids = ids[: params.max_new_tokens]
            out.append(Generation(token_ids=ids, logprobs=[0.0] * len(ids), finish_reason=reason))
        return out

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """A script has no weights: nothing to load."""
        del named_tensors
