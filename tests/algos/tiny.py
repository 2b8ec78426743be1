"""A tiny Qwen2 policy and the full ResRL step pipeline shared by the micro-batch and distributed tests."""

from __future__ import annotations

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from resrl.algos import AlgoConfig, HiddenCapture, policy_loss, token_advantages

VOCAB = 64


def tiny_model(seed: int = 0, layers: int = 3) -> Qwen2ForCausalLM:
    """A ~50k-parameter Qwen2 causal LM built from a config (no download)."""
    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return Qwen2ForCausalLM(cfg).float()


def tiny_batch(seed: int = 1) -> dict[str, torch.Tensor]:
    """3 groups x 4 rollouts, 14 tokens; the loss mask has prompt and 'tool' spans switched off."""
    gen = torch.Generator().manual_seed(seed)
    batch, length = 12, 14
    ids = torch.randint(0, VOCAB, (batch, length), generator=gen)
    mask = torch.rand(batch, length - 1, generator=gen) < 0.75
    mask[:, :2] = False  # prompt
    mask[:, 6:8] = False  # a tool response inside the episode
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.2, 0.0, 0.0, 0.0, 0.5, 0.0])
    group_ids = torch.arange(batch) // 4
    return {"ids": ids, "mask": mask, "rewards": rewards, "group_ids": group_ids}


def token_logprobs(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """log p(ids[:, t+1] | ids[:, :t+1]) for t = 0..T-2."""
    logits = model(input_ids=ids).logits[:, :-1].float()
    return torch.log_softmax(logits, -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def capture_mask(mask: torch.Tensor) -> torch.Tensor:
    """Positions whose hidden state produces a trainable token: the position just before it."""
    return torch.cat([mask, torch.zeros_like(mask[:, :1])], dim=1)


def old_pass(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Old logprobs and the packed hidden states of the trainable tokens (one no-grad forward)."""
    with torch.no_grad(), HiddenCapture(model, mask=capture_mask(mask)) as cap:
        old = token_logprobs(model, ids)
    return old, cap.packed()


def cfg_resrl(**kw: object) -> AlgoConfig:
    base = {"scheme": "resrl", "success_threshold": 0.5, "rank": 4, "pca": "exact", "max_pos_tokens": 16}
    return AlgoConfig(**(base | kw))


def advantages(model: torch.nn.Module, batch: dict[str, torch.Tensor], cfg: AlgoConfig) -> tuple:
    old, hidden = old_pass(model, batch["ids"], batch["mask"])
    adv, stats = token_advantages(cfg, batch["rewards"], batch["group_ids"], batch["mask"], hidden)
    return old, adv, stats


def accumulate_grads(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    old: torch.Tensor,
    adv: torch.Tensor,
    cfg: AlgoConfig,
    micro: int,
    global_tokens: torch.Tensor,
    global_seqs: int,
) -> dict[str, torch.Tensor]:
    """Backward over micro-batches of ``micro`` rollouts; returns the accumulated gradients."""
    model.zero_grad(set_to_none=True)
    n = batch["ids"].shape[0]
    for start in range(0, n, micro):
        sl = slice(start, start + micro)
        lp = token_logprobs(model, batch["ids"][sl])
        loss, _ = policy_loss(
            lp,
            old[sl],
            adv[sl],
            batch["mask"][sl],
            cfg,
            global_token_count=global_tokens,
            global_seq_count=global_seqs,
        )
        loss.backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
