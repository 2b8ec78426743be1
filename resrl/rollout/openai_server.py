"""The ``openai`` backend: any OpenAI-compatible server, token-in-token-out where the server allows it.

Each prompt goes to ``POST {base_url}/completions`` as a list of token ids, with ``logprobs`` and vLLM's
``return_token_ids`` / ``stop_token_ids`` / ``top_k`` extensions. With ``vllm serve`` (started as
``python -m vllm.entrypoints.openai.api_server --model DIR --logprobs-mode processed_logprobs``) the result is
exact: the sampled ids come back as ``token_ids`` and their log-probs under the sampling temperature.

Caveats, by server:
* without ``--logprobs-mode processed_logprobs`` vLLM reports log-probs of the raw logits (temperature 1):
  right at temperature 1 only;
* a server that ignores ``return_token_ids`` (not vLLM) returns text only: the ids are then the local
  tokenizer's encoding of that text, which may differ from what was sampled (a warning is logged once);
* a server that does not accept token-id prompts cannot be used token-exactly at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import torch

from resrl.rollout.policy import Generation, SamplingParams, per_prompt
from resrl.rollout.seeding import request_seeds

log = logging.getLogger("resrl.rollout.openai")


class OpenAIPolicy:
    """A policy served over the OpenAI completions API at ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``).

    ``model`` defaults to the first model the server lists; ``tokenizer`` defaults to loading ``model`` as a
    local path (vLLM names a model by the directory it was started with).
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        tokenizer: Any = None,
        *,
        api_key: str = "EMPTY",
        timeout: float = 300.0,
        max_concurrency: int = 32,
        retries: int = 3,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = httpx.Client(
            timeout=timeout,
            headers={"Authorization": f"Bearer {api_key}"},
            limits=httpx.Limits(max_connections=max_concurrency),
        )
        self.retries = retries
        self.max_concurrency = max_concurrency
        self.model = model or self._first_model()
        if tokenizer is None:
            if not Path(self.model).is_dir():
                raise ValueError(
                    f"model {self.model!r} is not a local directory: pass tokenizer= (the server's tokenizer)"
                )
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.model)
        self.tokenizer = tokenizer
        self._warned_text_only = False

    shares_weights = False

    @classmethod
    def from_spec(cls, target: str, **kwargs: Any) -> OpenAIPolicy:
        """``openai:URL``: the server whose ``/v1`` base is ``URL``."""
        return cls(target, **kwargs)

    def _first_model(self) -> str:
        data = self._request("GET", "/models")["data"]
        if not data:
            raise ValueError(f"the server at {self.base_url} serves no model")
        return data[0]["id"]

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        """One API call, retried with backoff on connection errors and 5xx/429 answers."""
        for attempt in range(self.retries + 1):
            try:
                resp = self.client.request(method, self.base_url + path, json=body)
                if resp.status_code < 500 and resp.status_code != 429:
                    if resp.status_code >= 400:
                        raise ValueError(f"{method} {path} → {resp.status_code}: {resp.text[:500]}")
                    return resp.json()
                problem = f"HTTP {resp.status_code}: {resp.text[:200]}"
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                log.warning("%s %s failed (%s); retrying", method, path, problem)
                time.sleep(0.5 * 2**attempt)
        raise ConnectionError(f"{method} {self.base_url}{path} failed after {self.retries + 1} attempts: {problem}")

    def generate(
        self, prompts: list[list[int]], sampling: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]:
        """One completion request per prompt, ``max_concurrency`` at a time."""
        params = per_prompt(sampling, len(prompts))
        seeds = request_seeds(sampling, len(prompts))  # per-request seeds as given; a shared one spread per prompt
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(self._one, prompts, params, seeds))

    def complete(self, prompt: list[int], sampling: SamplingParams) -> Generation:
        """One completion request, seeded with ``sampling.seed`` as given."""
        return self._one(prompt, sampling, sampling.seed)

    def _one(self, prompt: list[int], p: SamplingParams, seed: int | None) -> Generation:
        body = {
            "model": self.model,
            "prompt": list(prompt),
            "max_tokens": p.max_new_tokens,
            "temperature": p.temperature,
            "top_p": 1.0,
            "top_k": 0,
            "logprobs": 0,
            "return_token_ids": True,
            "skip_special_tokens": False,
            "stop_token_ids": [] if p.ignore_stop else list(p.stop_ids),
            "ignore_eos": p.ignore_stop or bool(p.stop_ids),
        }
        if seed is not None:
            body["seed"] = seed
        choice = self._request("POST", "/completions", body)["choices"][0]
        token_logprobs = [float(x) for x in (choice.get("logprobs") or {}).get("token_logprobs") or []]
        ids = choice.get("token_ids")
        if ids is None:
            if not self._warned_text_only:
                log.warning("the server returned no token_ids; re-tokenizing its text (not token-exact)")
                self._warned_text_only = True
            ids = list(self.tokenizer.encode(choice.get("text") or "", add_special_tokens=False))
            if choice.get("finish_reason") == "stop" and p.stop_ids:
                ids.append(p.stop_ids[0])
        ids = list(ids)
        if len(token_logprobs) != len(ids):
            token_logprobs = (token_logprobs + [0.0] * len(ids))[: len(ids)]
        reason = "stop" if choice.get("finish_reason") == "stop" else "length"
        return Generation(token_ids=ids, logprobs=token_logprobs, finish_reason=reason)

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """A remote server's weights cannot be set from here: restart it on a new checkpoint instead."""
        raise NotImplementedError(
            "OpenAIPolicy cannot update a remote server's weights; save a checkpoint and restart the server"
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.client.close()
