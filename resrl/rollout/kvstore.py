"""A prefix KV store for the ``hf`` backend: the next turn of an episode extends the sequence the previous
turn generated, so it only needs to prefill its new tokens (turn suffix + observation + generation prompt).

Entries are invalidated when the model's weights change: the store fingerprints the parameters' in-place
version counters, which every optimizer step bumps, so a trainer sharing the module never reads stale KV.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]
"""Per layer: keys and values of one sequence, ``[kv_heads, length, head_dim]`` each."""


class PrefixKVStore:
    """Least-recently-used KV of finished generations, keyed by the token ids they cover."""

    def __init__(self, model: torch.nn.Module, max_tokens: int) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.entries: OrderedDict[tuple[int, ...], KV] = OrderedDict()
        self.tokens = 0
        self._version = self._fingerprint()

    def _fingerprint(self) -> tuple[int, ...]:
        return tuple(p._version for p in self.model.parameters())

    def _check_weights(self) -> None:
        version = self._fingerprint()
        if version != self._version:
            self.clear()
            self._version = version

    def clear(self) -> None:
        """Forget every entry."""
        self.entries.clear()
        self.tokens = 0

    def longest_prefix(self, ids: tuple[int, ...]) -> tuple[int, KV | None]:
        """The longest stored sequence that is a proper prefix of ``ids`` (at least one token stays new)."""
        self._check_weights()
        best: tuple[int, ...] | None = None
        for key in self.entries:
            if len(key) < len(ids) and (best is None or len(key) > len(best)) and ids[: len(key)] == key:
                best = key
        if best is None:
            return 0, None
        self.entries.move_to_end(best)
        return len(best), self.entries[best]

    def put(self, key: tuple[int, ...], kv: KV) -> None:
        """Store ``kv`` for ``key``; entries it extends are dropped (that turn is over)."""
        if not key or len(key) > self.max_tokens:
            return
        for old in [k for k in self.entries if len(k) <= len(key) and key[: len(k)] == k]:
            self.tokens -= len(old)
            del self.entries[old]
        self.entries[key] = kv
        self.tokens += len(key)
        while self.tokens > self.max_tokens:
            old, _ = self.entries.popitem(last=False)
            self.tokens -= len(old)


def supports_prefix_store(cache: Any) -> bool:
    """Only plain full-attention dynamic caches can be sliced and re-assembled per row."""
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer).__name__ == "DynamicLayer" for layer in layers)


def assemble(kvs: list[KV | None], lengths: list[int], width: int, like: KV, device: torch.device):
    """A ``DynamicCache`` of ``width`` positions with each row's KV right-aligned (zeros elsewhere, masked)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for layer, (k0, v0) in enumerate(like):
        keys = torch.zeros((len(kvs), k0.shape[0], width, k0.shape[2]), dtype=k0.dtype, device=device)
        values = torch.zeros((len(kvs), v0.shape[0], width, v0.shape[2]), dtype=v0.dtype, device=device)
        for i, (kv, n) in enumerate(zip(kvs, lengths, strict=True)):
            if kv is not None and n:
                keys[i, :, width - n :] = kv[layer][0][:, :n]
                values[i, :, width - n :] = kv[layer][1][:, :n]
        cache.update(keys, values, layer)
    return cache


def extract(cache: Any, row: int, mask: torch.Tensor) -> KV:
    """Row ``row``'s KV at the positions ``mask`` marks (copies)."""
    keep = mask.bool()
    return [(layer.keys[row][:, keep].clone(), layer.values[row][:, keep].clone()) for layer in cache.layers]
