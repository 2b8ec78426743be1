"""Short real training runs on a tiny local model: outputs, resume reproducibility, ResRL weights in the loss,
infrastructure-error masking and LoRA."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from resrl.algos import group_advantages, mixed_groups, policy_loss
from resrl.trainer.batch import token_logprobs
from resrl.trainer.config import validate_config
from resrl.trainer.logs import read_records
from resrl.trainer.loop import Trainer
from tests.trainer.conftest import assert_same_records, base_config


def _run(cfg_dict: dict, *, resume: bool = False) -> dict:
    trainer = Trainer(validate_config(cfg_dict), resume=resume)
    try:
        return trainer.run()
    finally:
        trainer.close()


def test_short_run_writes_checkpoints_logs_and_plots(warm_model, tmp_path):
    out = tmp_path / "run"
    # Groups of 6 over 4 tasks: ResRL (like GRPO) learns only from groups with both outcomes, so have some.
    raw = base_config(warm_model, out, train={"steps": 2, "save_every": 1, "tasks_per_step": 4}, rollout={"n": 6})
    result = _run(raw)
    assert 0.0 <= result["avg_at_k"] <= result["pass_at_k"] <= 1.0
    ckpt = out / "checkpoints" / "step_000002"
    assert (ckpt / "model" / "model.safetensors").is_file()
    assert (ckpt / "model" / "tokenizer.json").is_file()
    assert json.loads((ckpt / "state.json").read_text())["step"] == 2
    assert torch.load(ckpt / "optimizer.pt", weights_only=False)["state"], "optimizer state was not saved"
    assert set(torch.load(ckpt / "rng.pt", weights_only=False)) == {"python", "numpy", "torch"}
    assert (out / "checkpoints" / "step_000001").is_dir()
    train = read_records(out / "metrics.jsonl", "train")
    evals = read_records(out / "metrics.jsonl", "eval")
    assert [r["step"] for r in train] == [1, 2]
    assert [r["step"] for r in evals] == [0, 1, 2]
    for key in ("reward_mean", "success_rate", "token_entropy", "distinct_2", "grad_norm", "loss/pg_loss"):
        assert key in train[0], key
    assert "algo/resrl/groups_used" in train[0] and "algo/resrl/weighted_token_share" in train[0]
    assert len(evals[-1]["pass_curve"]) == 2
    assert list((out / "tb").glob("events.out.tfevents.*")), "no TensorBoard events"
    for png in ("reward.png", "avg_at_k.png", "pass_at_k.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    # the trained weights differ from the warm start
    before = load_file(warm_model / "model.safetensors")
    after = load_file(ckpt / "model" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_resume_reproduces_the_uninterrupted_run(warm_model, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    _run(base_config(warm_model, straight, train={"steps": 4, "eval_every": 2}))
    _run(base_config(warm_model, split, train={"steps": 2, "eval_every": 2}))  # "killed" after step 2
    _run(base_config(warm_model, split, train={"steps": 4, "eval_every": 2}), resume=True)
    a, b = read_records(straight / "metrics.jsonl"), read_records(split / "metrics.jsonl")
    assert_same_records(a, b)
    wa = load_file(straight / "checkpoints" / "step_000004" / "model" / "model.safetensors")
    wb = load_file(split / "checkpoints" / "step_000004" / "model" / "model.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_resrl_weights_flow_into_the_loss(warm_model, tmp_path):
    cfg = validate_config(base_config(warm_model, tmp_path / "w", train={"tasks_per_step": 4}, rollout={"n": 6}))
    trainer = Trainer(cfg)
    step = next(s for s in range(1, 8) if trainer.train_step(s).get("algo/resrl/groups_used", 0) > 0)
    batch, adv = trainer.last_batch, trainer.last_advantages
    positive = batch.rewards >= cfg.algo.success_threshold
    mask = batch.mask
    assert step >= 1 and positive.any() and (~positive).any()
    assert torch.all(adv[~mask] == 0), "prompt/observation tokens must carry no advantage"
    # Ã = Â · pos_weight on positives, Â · w_t on negative tokens, 0 outside mixed groups (length scaling is 1 far
    # below the window's start, so Â is the plain GRPO advantage of the rewards)
    a_hat = group_advantages(batch.rewards, batch.group_ids, "grpo").unsqueeze(1).expand_as(adv)
    in_mixed = mixed_groups(positive, batch.group_ids).unsqueeze(1) & mask
    pos_tokens = positive.unsqueeze(1) & in_mixed
    assert torch.allclose(adv[pos_tokens], cfg.algo.pos_weight * a_hat[pos_tokens])
    neg_tokens = (~positive).unsqueeze(1) & in_mixed
    w = adv[neg_tokens] / a_hat[neg_tokens]
    assert torch.all(w >= cfg.algo.min_weight - 1e-5) and torch.all(w <= 1.0 + 1e-5)
    assert (w < 1.0 - 1e-4).any(), "no negative token was down-weighted"
    assert torch.all(adv[mask & ~in_mixed] == 0)
    # the gradient of the loss with respect to each token's log-prob is -advantage / tokens (ratio 1)
    logp = token_logprobs(trainer.model, batch.input_ids, batch.attention_mask)[0].detach().requires_grad_()
    n_tok = int(mask.sum())
    loss, _ = policy_loss(logp, logp.detach(), adv, mask, trainer.algo, global_token_count=n_tok)
    loss.backward()
    assert torch.allclose(logp.grad, -adv * mask / n_tok, atol=1e-7)
    assert torch.all(logp.grad[~mask] == 0)
    trainer.close()


def test_infra_errors_are_masked_not_scored(warm_model, tmp_path):
    cfg = validate_config(base_config(warm_model, tmp_path / "f", data={"envs": ["test/flaky-parity"]}))
    trainer = Trainer(cfg)
    metrics = trainer.train_step(1)
    tasks, n = cfg.train.tasks_per_step, cfg.rollout.n
    assert metrics["infra_errors"] == tasks  # the sample with seed 0 of every group crashed
    assert len(trainer.last_batch) == tasks * (n - 1)
    assert metrics["episodes"] == tasks * n
    trainer.close()


def test_lora_trains_only_the_adapter_and_resumes(warm_model, tmp_path):
    out = tmp_path / "lora"
    lora = {"path": str(warm_model), "lora": {"r": 4, "alpha": 8}}
    raw = base_config(warm_model, out, train={"steps": 1, "eval_every": 0}, algo={"scheme": "w_reinforce"})
    raw["model"] = lora
    _run(raw)
    adapter = out / "checkpoints" / "step_000001" / "model"
    weights = load_file(adapter / "adapter_model.safetensors")
    assert weights and all("lora_" in k for k in weights)
    assert any(float(v.abs().sum()) > 0 for k, v in weights.items() if "lora_B" in k), "LoRA B never trained"
    raw["train"]["steps"] = 2
    _run(raw, resume=True)
    assert (out / "checkpoints" / "step_000002" / "model" / "adapter_model.safetensors").is_file()


def test_filter_groups_trains_only_mixed_groups(warm_model, tmp_path):
    cfg = validate_config(
        base_config(warm_model, tmp_path / "g", train={"filter_groups": True, "tasks_per_step": 4}, rollout={"n": 3})
    )
    trainer = Trainer(cfg)
    for step in range(1, 6):
        metrics = trainer.train_step(step)
        assert metrics["groups_trained"] <= cfg.train.tasks_per_step
        if metrics["groups_trained"]:
            batch = trainer.last_batch
            positive = batch.rewards >= cfg.algo.success_threshold
            for g in batch.group_ids.unique():
                outcomes = positive[batch.group_ids == g]
                assert outcomes.any() and not outcomes.all()
            assert len(batch) == 3 * metrics["groups_trained"]
            break
    else:
        pytest.fail("no mixed group in five steps")
    trainer.close()


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_the_trainer_scores_the_sampling_temperature(warm_model, tmp_path, temperature):
    """Log-probs are of softmax(logits / T), the distribution the rollouts drew from: the pre-update model
    scored that way gives the recorded behaviour log-probs, and an on-policy step's importance weight is 1."""
    raw = base_config(
        warm_model, tmp_path / "run", rollout={"temperature": temperature}, algo={"tis_cap": 2.0}, train={"steps": 1}
    )
    trainer = Trainer(validate_config(raw))
    try:
        before = copy.deepcopy(trainer.model)
        metrics = trainer.train_step(1)
        batch = trainer.last_batch
    finally:
        trainer.close()
    assert metrics["loss/tis_weight_mean"] == pytest.approx(1.0, abs=1e-4)
    assert metrics["loss/tis_truncated_frac"] == 0.0

    def gap(t: float) -> float:
        with torch.no_grad():
            logp, _ = token_logprobs(before, batch.input_ids, batch.attention_mask, mask=batch.mask, temperature=t)
        return float((logp - batch.behaviour_logprobs)[batch.mask].abs().max())

    assert gap(temperature) < 1e-4
    assert gap(1.0) > 1e-2  # the untempered distribution is not what was sampled
