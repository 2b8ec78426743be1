"""Rollouts: policy backends (hf, vllm, openai), the multi-turn collector, and token-exact chat encoding."""

from resrl.rollout.chat import ChatCodec, TemplateError, encode_episode, resolve_tool_format
from resrl.rollout.collector import Collector
from resrl.rollout.policy import Generation, Policy, SamplingParams, load_policy
from resrl.rollout.trajectory import Trajectory

_LAZY = {  # heavy libraries (transformers, vllm, httpx) load on first use only
    "HFPolicy": "resrl.rollout.hf",
    "score_logprobs": "resrl.rollout.hf",
    "VLLMPolicy": "resrl.rollout.vllm",
    "OpenAIPolicy": "resrl.rollout.openai_server",
    "ScriptedPolicy": "resrl.rollout.scripted",
    "GoldPolicy": "resrl.rollout.scripted",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'resrl.rollout' has no attribute {name!r}")


__all__ = [
    "ChatCodec",
    "Collector",
    "Generation",
    "GoldPolicy",
    "HFPolicy",
    "OpenAIPolicy",
    "Policy",
    "SamplingParams",
    "ScriptedPolicy",
    "TemplateError",
    "Trajectory",
    "VLLMPolicy",
    "encode_episode",
    "load_policy",
    "resolve_tool_format",
    "score_logprobs",
]
