"""Rollouts: policy backends (hf, vllm, openai), the multi-turn collector, and token-exact chat encoding."""

from resrl.rollout.chat import ChatCodec, TemplateError, encode_episode, resolve_tool_format
from resrl.rollout.collector import Collector
from resrl.rollout.policy import Generation, Policy, SamplingParams, load_policy
from resrl.rollout.trajectory import Trajectory


def __getattr__(name: str):
    # Backends import heavy libraries (transformers, vllm, httpx); load them on first use only.
    if name in ("HFPolicy", "score_logprobs"):
        from resrl.rollout import hf

        return getattr(hf, name)
    if name == "VLLMPolicy":
        from resrl.rollout.vllm import VLLMPolicy

        return VLLMPolicy
    if name == "OpenAIPolicy":
        from resrl.rollout.openai_server import OpenAIPolicy

        return OpenAIPolicy
    if name in ("ScriptedPolicy", "GoldPolicy"):
        from resrl.rollout import scripted

        return getattr(scripted, name)
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
