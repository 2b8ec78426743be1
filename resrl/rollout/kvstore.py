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
    """Least-recently-used KV of finished generations, keyed by the token ids they cover, within ``max_bytes``
    (a budget in bytes, not tokens: a token's KV is a few hundred bytes on a tiny model and hundreds of KiB on a
    large one)."""

    def __init__(self, model: torch.nn.Module, max_bytes: int) -> None:
        self.model = model
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple[int, ...], KV] = OrderedDict()
        self.bytes = 0
        self._version = self._fingerprint()

    def _fingerprint(self) -> tuple[int, ...]:
        return tuple(p._version for p in self.model.parameters())

    def _check_weights(self) -> None:
        version = self._fingerprint()
        if version != self._version:
            self.clear()
            self._version = version

    def discard(self, key: tuple[int, ...]) -> None:
        """Forget ``key``'s entry, if any (once a turn continues from it, the next turn stores a longer one)."""
        kv = self.entries.pop(key, None)
        if kv is not None:
            self.bytes -= _nbytes(kv)

    def clear(self) -> None:
        """Forget every entry."""
        self.entries.clear()
        self.bytes = 0

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
        """Store ``kv`` for ``key``. Entries it extends stay: samples of one task share their prompt, and one
        sample's one-token turn must not evict the KV its siblings will continue from."""
        size = _nbytes(kv)
        if not key or size > self.max_bytes:
            return
        self.discard(key)
        self.entries[key] = kv
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self.entries.popitem(last=False)
            self.bytes -= _nbytes(old)


def _nbytes(kv: KV) -> int:
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)


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


def stack_rows(cache_a: Any, attn_a: torch.Tensor, cache_b: Any, attn_b: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """One batch of ``a``'s rows then ``b``'s, the narrower cache left-padded (masked) to the wider one's width."""
    from transformers import DynamicCache

    width = max(attn_a.shape[1], attn_b.shape[1])

    def pad(t: torch.Tensor) -> torch.Tensor:  # [batch, heads, length, dim] or [batch, length]: pad length on the left
        grow = width - t.shape[-2 if t.dim() == 4 else -1]
        return torch.nn.functional.pad(t, (0, 0, grow, 0) if t.dim() == 4 else (grow, 0)) if grow else t

    cache = DynamicCache()
    for i, (la, lb) in enumerate(zip(cache_a.layers, cache_b.layers, strict=True)):
        cache.update(torch.cat([pad(la.keys), pad(lb.keys)]), torch.cat([pad(la.values), pad(lb.values)]), i)
    return cache, torch.cat([pad(attn_a), pad(attn_b)])


def select_rows(cache: Any, attn: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Keep the rows ``index`` of the batch and, once an eighth of the positions is padding no kept row attends
    to, drop those positions too (a second copy of the cache, worth it only when it shrinks attention); the new
    mask."""
    attn = attn[index]
    used = attn.any(0)
    columns = None if int(used.sum()) > 0.875 * used.numel() else used.nonzero().squeeze(1)
    for layer in cache.layers:
        keys, values = layer.keys[index], layer.values[index]
        if columns is not None:
            keys, values = keys[:, :, columns], values[:, :, columns]
        layer.keys, layer.values = keys, values
    return attn if columns is None else attn[:, columns]
