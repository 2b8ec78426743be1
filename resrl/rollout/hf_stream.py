"""Continuous batching for the ``hf`` backend: requests join and leave one running decode batch.

A multi-turn episode ends a turn, waits for its env step, and comes back with a longer prompt. In lock-step
rounds every episode waits for the slowest turn of the round; here the batch keeps decoding while episodes
leave it, and a returning episode is prefilled on its own (only its new tokens: the KV of everything it had
generated is taken from the prefix store) and then stacked onto the running batch. The sampling, the recorded
log-probs and the token layout are the same as :meth:`HFPolicy.generate`: a request with a seed samples from its
own random stream, whenever it joins and whatever runs beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from resrl.models.hf_api import output_cache, with_cache
from resrl.rollout.hf import draws, sample
from resrl.rollout.kvstore import extract, select_rows, stack_rows, supports_prefix_store
from resrl.rollout.policy import Generation, SamplingParams

if TYPE_CHECKING:
    from resrl.rollout.hf import HFPolicy


@dataclass
class _Row:
    """One request in the running batch."""

    key: int
    prompt: list[int]
    limit: int
    stops: set[int]
    noise: list[float]  # the uniform each of its tokens is sampled with (see hf.draws)
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


class HFStream:
    """Requests in, finished generations out: ``add`` queues, ``step`` admits queued requests and decodes one
    token for every running one, returning those that finished. A request's ``SamplingParams.seed`` seeds its
    tokens; requests without one draw from a generator seeded with ``seed`` (or from torch's global RNG).

    Admission waits until ``admit_fraction`` of the running batch is queued (or the batch is empty, or the
    oldest request has waited ``admit_after`` steps): each admission costs a prefill forward, so admitting
    every returning episode alone would spend as many forwards on prefills as on decoding. Finished rows stay
    in the batch, ignored, until the next admission or until a quarter of it is finished: dropping a row copies
    the whole cache, which costs more than decoding a few idle rows.
    """

    def __init__(
        self, policy: HFPolicy, seed: int | None = None, admit_fraction: float = 0.125, admit_after: int = 8
    ) -> None:
        self.policy = policy
        self.gen = policy.generator(seed)
        self.admit_fraction = admit_fraction
        self.admit_after = admit_after
        self.queue: list[tuple[int, list[int], SamplingParams]] = []
        self.waited = 0  # steps since the oldest queued request arrived
        self.rows: list[_Row | None] = []  # None: finished, not yet dropped from the batch
        self.cache: Any = None
        self.attn = torch.zeros((0, 0), dtype=torch.long)
        self.pos = torch.zeros(0, dtype=torch.long)  # the position of each row's next input token
        self.next = torch.zeros(0, dtype=torch.long)  # each row's last sampled token, not yet in the cache
        self.temps = torch.zeros(0)
        self.stored: dict[int, tuple[int, ...]] = {}  # key -> the prefix-store entry its next turn continues from

    def add(self, key: int, prompt: list[int], sampling: SamplingParams) -> None:
        """Queue a request; its generation comes back from a later :meth:`step` under ``key``."""
        if not prompt:
            raise ValueError("every prompt needs at least one token")
        self.queue.append((key, list(prompt), sampling))

    def busy(self) -> bool:
        """Whether any request is queued or running."""
        return bool(self.queue or self._live())

    def abort(self, key: int) -> None:
        """Drop a request, queued or running (its generation never comes back)."""
        self.queue = [q for q in self.queue if q[0] != key]
        keep = [b for b, row in enumerate(self.rows) if row is not None and row.key != key]
        if len(keep) < len(self.rows):
            self._keep(keep)

    def release(self, key: int) -> None:
        """Drop the KV stored for ``key``'s next turn: its episode has ended, so no turn will continue from it."""
        stored = self.stored.pop(key, None)
        if stored is not None and self.policy.store is not None:
            self.policy.store.discard(stored)

    @torch.no_grad()
    def step(self) -> list[tuple[int, Generation]]:
        """Admit queued requests if it is time, decode one token for every running request; the finished ones."""
        done: list[tuple[int, Generation]] = []
        if self.queue:
            self.waited += 1
            live = self._live()
            room = self.policy.batch_size - len(live)
            due = len(self.queue) >= max(1, self.admit_fraction * len(live)) or self.waited > self.admit_after
            if room > 0 and (due or not live):
                done += self._admit(room)
        if self._live():
            done += self._decode()
        return done

    def _live(self) -> list[int]:
        return [b for b, row in enumerate(self.rows) if row is not None]

    # -- internals ------------------------------------------------------------------------------------------
    def _admit(self, room: int) -> list[tuple[int, Generation]]:
        batch, self.queue = self.queue[:room], self.queue[room:]
        self.waited = 0
        cache, attn, logits = self.policy.prefill([p for _, p, _ in batch])
        if not supports_prefix_store(cache):
            raise TypeError("continuous batching needs a plain full-attention DynamicCache; use generate() instead")
        dev = self.policy.device
        temps = torch.tensor([s.temperature for _, _, s in batch], dtype=torch.float32, device=dev)
        rows = [
            _Row(key, prompt, s.max_new_tokens, set() if s.ignore_stop else set(s.stop_ids), self._noise(s))
            for key, prompt, s in batch
        ]
        chosen, chosen_lp = sample(logits, temps, self._uniforms(rows))
        done, keep = self._advance(rows, chosen, chosen_lp, cache, attn)
        if not keep:
            return done
        index = torch.tensor(keep, device=dev)
        if len(keep) < len(rows):
            cache.batch_select_indices(index)
        attn = attn[index]
        pos = torch.tensor([len(rows[b].prompt) for b in keep], device=dev)
        if len(self._live()) < len(self.rows):
            self._keep(self._live())
        if self.rows:
            cache, attn = stack_rows(self.cache, self.attn, cache, attn)
        self.cache, self.attn = cache, attn
        self.rows += [rows[b] for b in keep]
        self.pos = torch.cat([self.pos.to(dev), pos])
        self.next = torch.cat([self.next.to(dev), chosen[index]])
        self.temps = torch.cat([self.temps.to(dev), temps[index]])
        return done

    def _decode(self) -> list[tuple[int, Generation]]:
        n = len(self.rows)
        self.attn = torch.cat([self.attn, torch.ones((n, 1), dtype=self.attn.dtype, device=self.attn.device)], 1)
        out = self.policy.model(
            input_ids=self.next[:, None],
            attention_mask=self.attn,
            position_ids=self.pos[:, None],
            **with_cache(self.cache),
            logits_to_keep=1,
        )
        self.cache = output_cache(out)
        self.pos = self.pos + 1
        chosen, chosen_lp = sample(out.logits[:, -1, :], self.temps, self._uniforms(self.rows))
        done, keep = self._advance(self.rows, chosen, chosen_lp, self.cache, self.attn)
        self.next = chosen
        kept = set(keep)
        self.rows = [row if b in kept else None for b, row in enumerate(self.rows)]
        if not keep or 4 * (n - len(keep)) >= n:
            self._keep(keep)
        return done

    def _noise(self, sampling: SamplingParams) -> list[float]:
        if sampling.temperature == 0:  # greedy: nothing to draw
            return [1.0] * sampling.max_new_tokens
        return draws(sampling.max_new_tokens, sampling.seed, self.gen).tolist()

    def _uniforms(self, rows: list[_Row | None]) -> torch.Tensor:
        """Each row's uniform for its next token (finished rows, still in the batch, get an unused 1)."""
        values = [1.0 if row is None else row.noise[len(row.tokens)] for row in rows]
        return torch.tensor(values, dtype=torch.float64)

    def _advance(
        self, rows: list[_Row | None], chosen: torch.Tensor, chosen_lp: torch.Tensor, cache: Any, attn: torch.Tensor
    ) -> tuple[list[tuple[int, Generation]], list[int]]:
        """Append each live row's sampled token; the finished generations and the batch indices still running."""
        store = self.policy.store
        done, keep = [], []
        for b, (row, tok, lp) in enumerate(zip(rows, chosen.tolist(), chosen_lp.tolist(), strict=True)):
            if row is None:
                continue
            row.tokens.append(tok)
            row.logprobs.append(lp)
            if tok in row.stops:
                reason = "stop"
            elif len(row.tokens) >= row.limit:
                reason = "length"
            else:
                keep.append(b)
                continue
            if store is not None:  # the next turn of this episode starts from this KV (all but the last token)
                self.stored[row.key] = tuple(row.prompt) + tuple(row.tokens[:-1])
                store.put(self.stored[row.key], extract(cache, b, attn[b]))
            done.append((row.key, Generation(token_ids=row.tokens, logprobs=row.logprobs, finish_reason=reason)))
        return done, keep

    def _keep(self, keep: list[int]) -> None:
        self.rows = [self.rows[b] for b in keep]
        if not keep:
            self.cache, self.attn = None, self.attn[:0, :0]
            self.pos, self.next, self.temps = self.pos[:0], self.next[:0], self.temps[:0]
            return
        index = torch.tensor(keep, device=self.attn.device)
        self.attn = select_rows(self.cache, self.attn, index)
        self.pos, self.next, self.temps = self.pos[index], self.next[index], self.temps[index]
