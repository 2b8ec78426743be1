"""Run in a subprocess by test_vllm.py: collect with an in-process vLLM engine, then update its weights.

Writes ``result.json`` under the output directory: the trajectories, and greedy generations before and
after loading the weights of ``perturbed/`` (which this script also saves for re-scoring).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def main(model_dir: str, out_dir: str) -> None:
    import lookup_env
    from lookup_env import ENV_ID, LookupEnv

    from resrl.rollout import Collector, SamplingParams, VLLMPolicy

    lookup_env.register()
    out = Path(out_dir)
    gemm_caches = _record_cpu_gemm_caches()
    policy = VLLMPolicy(model_dir, dtype="float32", max_model_len=1024, seed=0)
    caches_at_load = list(gemm_caches)
    tasks = LookupEnv.generate_tasks("test", 4, 3)
    collector = Collector(
        policy, ENV_ID, max_turns=4, max_tokens=400, max_new_tokens_per_turn=64, temperature=1.0, seed=7, progress=False
    )
    trajectories = collector.collect(tasks, n=4)
    engine = policy.llm.llm_engine
    sessions_used = policy.open_stream().sessions is not None
    left_running = engine.has_unfinished_requests()
    policy.sessions = False  # the same collection with a fresh request per turn (vLLMs without sessions)
    fresh_per_turn = collector.collect(tasks, n=2)
    policy.sessions = None
    prompt = trajectories[0].prompt_ids
    stream_turns = _stream_turns(policy, prompt)
    probe = SamplingParams(temperature=1.0, max_new_tokens=16, seed=1, ignore_stop=True)
    before = policy.generate([prompt], probe)[0]
    templates = _real_template_collections(policy, model_dir, tasks)

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(out / "perturbed")
    gemm_caches.clear()
    policy.update_weights(model.state_dict().items())
    after = policy.generate([prompt], probe)[0]
    (out / "result.json").write_text(
        json.dumps(
            {
                "trajectories": [t.model_dump() for t in trajectories],
                "fresh_per_turn": [t.model_dump() for t in fresh_per_turn],
                "sessions_used": sessions_used,
                "left_running": left_running,
                "stream_turns": stream_turns,
                "probe_prompt": prompt,
                "before": before.model_dump(),
                "after": after.model_dump(),
                "cpu_gemm_caches": {"load": caches_at_load, "update": gemm_caches},
                "templates": templates,
            }
        )
    )


def _real_template_collections(policy, model_dir: str, tasks) -> dict:
    """The same engine with the tokenizer carrying real templates (Qwen3 without thinking, Llama 3.1): the model
    was trained on Hermes calls, so the Llama run keeps tool_format=hermes; the template renders everything else.
    Empty when the real templates are absent (the test then skips, or fails under CI)."""
    from lookup_env import ENV_ID
    from real_templates import FAMILIES, family_tokenizer, template_problem
    from transformers import AutoTokenizer

    from resrl.rollout import Collector

    if template_problem():
        return {}
    own = policy.tokenizer
    out = {}
    for name, fmt in (("qwen3-no-thinking", "auto"), ("llama3.1-json", "hermes")):
        family = next(f for f in FAMILIES if f.name == name)
        policy.tokenizer = family_tokenizer(AutoTokenizer.from_pretrained(model_dir), family)
        collector = Collector(
            policy,
            ENV_ID,
            tool_format=fmt,
            chat_template_kwargs=family.kwargs,
            max_turns=4,
            max_tokens=400,
            max_new_tokens_per_turn=64,
            seed=7,
            progress=False,
        )
        trajs = collector.collect(tasks, n=2)
        out[name] = {"tool_format": collector.tool_format, "trajectories": [t.model_dump() for t in trajs]}
    policy.tokenizer = own
    return out


def _record_cpu_gemm_caches() -> list[int]:
    """The cache sizes vLLM asks for when it prepares a CPU linear layer (none on other platforms)."""
    import vllm._custom_ops as ops

    sizes: list[int] = []
    create = getattr(ops, "create_onednn_mm", None)
    if create is not None:

        def recorded(weight, primitive_cache_size=128, *args, **kwargs):
            sizes.append(primitive_cache_size)
            return create(weight, primitive_cache_size, *args, **kwargs)

        ops.create_onednn_mm = recorded
    return sizes


def _stream_turns(policy, prompt: list[int]) -> list[dict]:
    """Drive one stream key by hand: a first turn, a turn that extends it (the session goes on), a prompt that
    does not (a new session); each as its full context, the sampled ids and their log-probs."""
    from resrl.rollout import SamplingParams

    stream = policy.open_stream()
    sampling = SamplingParams(temperature=1.0, max_new_tokens=6, ignore_stop=True)
    turns, context = [], list(prompt)
    for follow_up in ([], [11, 12, 13], None):
        context = list(reversed(prompt)) if follow_up is None else context + follow_up
        stream.add(0, context, sampling)
        try:
            stream.add(0, context, sampling)
        except ValueError:
            pass
        else:
            raise AssertionError("a second request under a running key was accepted")
        done = []
        while stream.busy():
            done += stream.step()
        [(key, generation)] = done
        turns.append({"key": key, "context": context, "generation": generation.model_dump()})
        context = context + generation.token_ids
    stream.release(0)
    turns.append({"left_running": policy.llm.llm_engine.has_unfinished_requests()})
    return turns


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
