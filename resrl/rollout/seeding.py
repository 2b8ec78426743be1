"""Seeds for sampling: one per generation request, derived from what identifies it, not from where it sits.

The collector gives every request ``derive_seed(collect_seed, env_id, task_id, group, sample, turn)``. A
backend that honours per-request seeds then samples an episode's tokens from its own random stream, so they do
not depend on which other episodes share the batch, the order they arrive in, or how many ranks split the
groups (logits that batching changes in the last float bits can still flip a near-tie token; the ``hf``
backend's rate: ``benchmarks/seed_flips.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from resrl.rollout.policy import SamplingParams, per_prompt

SEED_BITS = 63  # fits a signed int64: torch generators, vLLM and OpenAI-style servers all take it


def derive_seed(*parts: int | str | None) -> int:
    """A stable ``SEED_BITS``-bit seed from ``parts`` (ints, strings, None), the same in every process and run.

    Python's ``hash()`` is salted per process, so it cannot be used: ranks and resumed runs must agree.
    """
    for part in parts:
        if not isinstance(part, int | str | None) or isinstance(part, bool):
            raise TypeError(f"seed parts must be int, str or None, not {type(part).__name__}: {part!r}")
    digest = hashlib.blake2b(json.dumps(list(parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - SEED_BITS)


def request_seeds(sampling: SamplingParams | Sequence[SamplingParams], n: int) -> list[int | None]:
    """Each of ``n`` prompts' seed: a per-prompt list keeps its seeds as given; one shared ``SamplingParams``
    with a seed gives prompt ``i`` the seed ``derive_seed(seed, i)``, so the prompts of one call still differ."""
    if isinstance(sampling, SamplingParams):
        return [None if sampling.seed is None else derive_seed(sampling.seed, i) for i in range(n)]
    return [p.seed for p in per_prompt(sampling, n)]
