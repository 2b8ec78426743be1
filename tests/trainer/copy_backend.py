"""A policy backend added the way the registry says (its own file plus one ``BACKENDS`` line): ``hf`` sampling
with its own copy of the trainer's model, so each optimizer step must be pushed to it."""

from __future__ import annotations

import copy
from typing import Any

from resrl.rollout.hf import HFPolicy


class CopyPolicy(HFPolicy):
    """An ``HFPolicy`` over a deep copy of the trainer's module; ``pushes`` counts the weight updates it got."""

    pushes = 0

    @classmethod
    def for_trainer(cls, ctx: Any) -> CopyPolicy:
        return cls(copy.deepcopy(ctx.model), ctx.tokenizer, prefix_cache_bytes=0)

    def update_weights(self, named_tensors):
        type(self).pushes += 1
        super().update_weights(named_tensors)
