"""The transformers API names that changed between the versions we support, in one place.

CI tests the version pinned in ``constraints.txt``; a plain ``pip install resrl`` may resolve a newer one. Each
helper uses the current name where the installed transformers has it, and the older one otherwise, so our code
never calls a deprecated API (transformers 5.23 renamed ``gradient_checkpointing_enable`` to
``activation_checkpointing_enable``; 5.24 renamed the ``past_key_values`` argument and output field to ``cache``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from torch import nn


@functools.cache
def cache_name() -> str:
    """The keyword a causal LM's forward takes its KV cache by, which is also its output's field for it."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    fields = {f.name for f in dataclasses.fields(CausalLMOutputWithPast)}
    return "cache" if "cache" in fields else "past_key_values"


def with_cache(cache: Any) -> dict[str, Any]:
    """Forward keyword arguments that pass ``cache`` and ask for the updated one back."""
    return {cache_name(): cache, "use_cache": True}


def output_cache(out: Any) -> Any:
    """The KV cache a forward returned (``out.cache``, or ``out.past_key_values`` before transformers 5.24)."""
    return getattr(out, cache_name())


def enable_activation_checkpointing(model: nn.Module, *, reentrant: bool = False) -> None:
    """Recompute each decoder layer's activations in backward instead of keeping them (a HF ``PreTrainedModel``).

    ``reentrant`` picks ``torch.utils.checkpoint``'s implementation; the non-reentrant one is the default because
    it also works when the layer inputs do not require grad.
    """
    kwargs = {"use_reentrant": reentrant}
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
