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
    policy = VLLMPolicy(model_dir, dtype="float32", max_model_len=1024, seed=0)
    tasks = LookupEnv.generate_tasks("test", 4, 3)
    collector = Collector(
        policy, ENV_ID, max_turns=4, max_tokens=400, max_new_tokens_per_turn=64, temperature=1.0, seed=7, progress=False
    )
    trajectories = collector.collect(tasks, n=4)
    prompt = trajectories[0].prompt_ids
    probe = SamplingParams(temperature=1.0, max_new_tokens=16, seed=1, ignore_stop=True)
    before = policy.generate([prompt], probe)[0]

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(out / "perturbed")
    policy.update_weights(model.state_dict().items())
    after = policy.generate([prompt], probe)[0]
    (out / "result.json").write_text(
        json.dumps(
            {
                "trajectories": [t.model_dump() for t in trajectories],
                "probe_prompt": prompt,
                "before": before.model_dump(),
                "after": after.model_dump(),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
