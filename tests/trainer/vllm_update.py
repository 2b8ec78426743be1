"""Run by test_vllm.py in a fresh process: vLLM engines must be built under ``if __name__ == "__main__"``.

Trains one step with the ``vllm`` rollout backend and prints, as JSON, whether the in-process engine's weights
equal the trainer's afterwards and whether its greedy outputs changed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[2]))  # the repository root: tests.* imports

from resrl.rollout.policy import SamplingParams
from resrl.trainer.config import validate_config
from resrl.trainer.loop import Trainer
from tests.trainer.conftest import base_config  # registers test/parity

# vLLM fuses q/k/v and gate/up into one tensor each; the trainer's names map onto those pieces.
FUSED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


def _engine_params(worker):
    return {name: p.detach().cpu().clone() for name, p in worker.model_runner.model.named_parameters()}


def _compare(engine: dict[str, torch.Tensor], trainer: dict[str, torch.Tensor]) -> tuple[int, float]:
    """How many engine tensors were checked, and the largest difference to the trainer's weights."""
    worst, checked = 0.0, 0
    for name, value in engine.items():
        parts = [name]
        for fused, pieces in FUSED.items():
            if f".{fused}." in name:
                parts = [name.replace(fused, p) for p in pieces]
        if value.numel() == 0 or not all(p in trainer for p in parts):
            continue  # vLLM's CPU backend repacks linear weights out of the parameter (seen as empty)
        expected = torch.cat([trainer[p] for p in parts], dim=0)
        value = value[: expected.shape[0]]  # vLLM pads the vocabulary rows of embeddings to a multiple of 64
        if value.shape != expected.shape:
            raise AssertionError(f"{name}: engine shape {tuple(value.shape)} vs trainer {tuple(expected.shape)}")
        worst = max(worst, float((expected - value).abs().max()))
        checked += 1
    return checked, worst


def _logprob_gap(trainer: Trainer, generation) -> float:
    """Largest gap between the engine's log-probs of a greedy generation and the trainer's forward pass."""
    prompt, ids = generation
    seq = torch.tensor([prompt + ids.token_ids])
    with torch.no_grad():
        logits = trainer.model(input_ids=seq).logits[0, len(prompt) - 1 : -1].float()
    mine = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids.token_ids)[:, None]).squeeze(-1)
    return float((mine - torch.tensor(ids.logprobs)).abs().max())


def main(model: str, out: str) -> None:
    raw = base_config(
        Path(model),
        Path(out),
        rollout={"backend": "vllm", "engine_kwargs": {"max_model_len": 512, "enforce_eager": True, "dtype": "float32"}},
        optim={"lr": 5e-2},
        # NSR scores every failed rollout, so the step moves the weights even when no group has mixed outcomes
        # (ResRL and GRPO give such groups no signal); this test is about the weight sync, not the scheme.
        algo={"scheme": "nsr"},
    )
    trainer = Trainer(validate_config(raw))
    policy = trainer.engine.policy
    prompt = [trainer.tokenizer.encode("Say something.")]
    greedy = SamplingParams(temperature=0.0, max_new_tokens=12)
    before_gen = policy.generate(prompt, greedy)[0]
    gap_before = _logprob_gap(trainer, (prompt[0], before_gen))
    before = policy.llm.collective_rpc(_engine_params)[0]
    _, diff_before = _compare(before, dict(trainer.model.state_dict()))
    trainer.train_step(1)
    after = policy.llm.collective_rpc(_engine_params)[0]
    checked, diff_after = _compare(after, dict(trainer.model.state_dict()))
    after_gen = policy.generate(prompt, greedy)[0]
    gap_after = _logprob_gap(trainer, (prompt[0], after_gen))
    moved = max(float((after[k] - before[k]).abs().max()) for k in after if after[k].numel())
    print(
        "RESULT "
        + json.dumps(
            {
                "checked": checked,
                "diff_before": diff_before,
                "diff_after": diff_after,
                "engine_moved": moved,
                "logprob_gap_before": gap_before,
                "logprob_gap_after": gap_after,
                "outputs_changed": before_gen.token_ids != after_gen.token_ids
                or before_gen.logprobs != after_gen.logprobs,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
