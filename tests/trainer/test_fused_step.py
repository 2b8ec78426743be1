"""The fused on-policy step (old log-probs from the training forward itself) against the two-pass step (a no-grad
scoring pass first): same loss, same gradients, same token entropy, on a tiny model and real collected episodes."""

from __future__ import annotations

import torch

from resrl.trainer.batch import collate
from resrl.trainer.config import validate_config
from resrl.trainer.loop import Trainer
from tests.trainer.conftest import base_config


def _gradients(trainer: Trainer, batch, old_logp, advantages):
    """The loss metrics, the clipped gradients the optimizer would apply, and the returned entropy."""
    captured: list[list[torch.Tensor]] = []
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    # Record instead of stepping, so both paths see the same weights.
    trainer.optimizer.step = lambda *a, **k: captured.append([p.grad.detach().clone() for p in params])
    metrics, entropy = trainer._optimize(batch, old_logp, None, advantages, step=1)
    del trainer.optimizer.step
    assert len(captured) == 1, "one optimizer step over the whole batch"
    return metrics, captured[0], entropy


def test_fused_step_matches_the_two_pass_step(warm_model, tmp_path):
    raw = base_config(
        warm_model,
        tmp_path / "run",
        algo={"scheme": "grpo"},
        optim={"mini_batch_size": 8, "micro_batch_size": 3, "ppo_epochs": 1},  # uneven micro-batches
    )
    trainer = Trainer(validate_config(raw))
    try:
        trajectories = trainer.engine.collect(trainer.train_tasks[:2], 4, 1.0)
        batch = collate(trajectories, trainer.tokenizer.pad_token_id or 0)
        assert trainer._fused(batch)
        # Random advantages on the trainable tokens: a non-zero gradient whatever the sampled rewards were.
        advantages = torch.randn(batch.mask.shape, generator=torch.Generator().manual_seed(0)) * batch.mask
        old_logp, _, score_entropy, _ = trainer._score(batch)
        two_pass, grads_two_pass, none = _gradients(trainer, batch, old_logp, advantages)
        fused, grads_fused, fused_entropy = _gradients(trainer, batch, None, advantages)
    finally:
        trainer.close()
    assert none is None
    assert sum(float(g.norm()) for g in grads_fused) > 0
    assert abs(two_pass["loss/pg_loss"] - fused["loss/pg_loss"]) <= 1e-5
    assert abs(two_pass["grad_norm"] - fused["grad_norm"]) <= 1e-5
    for a, b in zip(grads_two_pass, grads_fused, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    assert fused["loss/ratio_mean"] == 1.0 and fused["loss/approx_kl_old"] == 0.0
    torch.testing.assert_close(fused_entropy * batch.mask, score_entropy * batch.mask, atol=1e-5, rtol=0)


def test_fused_step_only_when_on_policy_without_kl_or_hidden_states(warm_model, tmp_path):
    on_policy = {"mini_batch_size": 8, "micro_batch_size": 4, "ppo_epochs": 1}
    cases = {
        "grpo": ({"scheme": "grpo"}, on_policy, True),
        "two epochs": ({"scheme": "grpo"}, {**on_policy, "ppo_epochs": 2}, False),
        "two mini-batches": ({"scheme": "grpo"}, {**on_policy, "mini_batch_size": 4}, False),
        "kl": ({"scheme": "grpo", "kl_coef": 0.1}, on_policy, False),
        "resrl hidden states": ({"scheme": "resrl", "rank": 4}, on_policy, False),
    }
    batch = None
    for name, (algo, optim, expected) in cases.items():
        trainer = Trainer(validate_config(base_config(warm_model, tmp_path / name, algo=algo, optim=optim)))
        try:
            batch = batch or collate(trainer.engine.collect(trainer.train_tasks[:2], 4, 1.0), 0)  # 8 rows
            assert trainer._fused(batch) is expected, name
        finally:
            trainer.close()
