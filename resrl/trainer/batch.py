"""Trajectories to padded tensors, and the forward pass that scores them.

Sequences are prompt + response, right-padded. Token-level tensors have length ``L - 1`` and are aligned to
the *predicted* token: position ``t`` holds the log-prob of token ``t + 1`` given tokens ``0..t``, and the
hidden state at input position ``t`` is the one that produced it. ``mask`` is the trajectory's loss mask moved
onto that grid (prompt and observation tokens are 0), and ``behaviour_logprobs`` the log-probs the rollout engine
recorded when it sampled each token (0 off the mask).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from resrl.rollout.trajectory import Trajectory


@dataclass
class TokenBatch:
    """A batch of whole trajectories as tensors (see the module docstring for the alignment)."""

    input_ids: torch.Tensor  # (B, L) long
    attention_mask: torch.Tensor  # (B, L) long
    mask: torch.Tensor  # (B, L-1) bool: trainable predicted tokens
    rewards: torch.Tensor  # (B,) float
    group_ids: torch.Tensor  # (B,) long
    n_policy_tokens: torch.Tensor  # (B,) long
    behaviour_logprobs: torch.Tensor | None = None  # (B, L-1) float: the sampler's log-probs, 0 off the mask

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def to(self, device: torch.device | str) -> TokenBatch:
        """The same batch with every tensor on ``device`` (tensors already there are not copied)."""
        return TokenBatch(
            **{f.name: None if (t := getattr(self, f.name)) is None else t.to(device) for f in fields(self)}
        )

    def select(self, idx: torch.Tensor) -> TokenBatch:
        """The rows ``idx``, with padding columns no row uses trimmed off."""
        length = max(int(self.attention_mask[idx].sum(dim=1).max()), 2)
        return TokenBatch(
            input_ids=self.input_ids[idx, :length],
            attention_mask=self.attention_mask[idx, :length],
            mask=self.mask[idx, : length - 1],
            rewards=self.rewards[idx],
            group_ids=self.group_ids[idx],
            n_policy_tokens=self.n_policy_tokens[idx],
            behaviour_logprobs=None if self.behaviour_logprobs is None else self.behaviour_logprobs[idx, : length - 1],
        )


def collate(trajectories: list[Trajectory], pad_id: int) -> TokenBatch:
    """Pad trajectories into a :class:`TokenBatch`; group ids are numbered in order of first appearance."""
    if not trajectories:
        raise ValueError("cannot build a batch from zero trajectories")
    seqs = [t.prompt_ids + t.response_ids for t in trajectories]
    length = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), length), dtype=torch.long)
    mask = torch.zeros((len(seqs), length - 1), dtype=torch.bool)
    behaviour = torch.zeros((len(seqs), length - 1), dtype=torch.float32)
    for row, (traj, seq) in enumerate(zip(trajectories, seqs, strict=True)):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        attn[row, : len(seq)] = 1
        start = len(traj.prompt_ids) - 1  # predicting response token 0 happens at the last prompt position
        mask[row, start : start + len(traj.loss_mask)] = torch.tensor(traj.loss_mask, dtype=torch.bool)
        behaviour[row, start : start + len(traj.logprobs)] = torch.tensor(traj.logprobs, dtype=torch.float32)
    numbering: dict[str, int] = {}
    groups = [numbering.setdefault(t.group_id, len(numbering)) for t in trajectories]
    return TokenBatch(
        input_ids=ids,
        attention_mask=attn,
        mask=mask,
        rewards=torch.tensor([t.reward for t in trajectories], dtype=torch.float32),
        group_ids=torch.tensor(groups, dtype=torch.long),
        n_policy_tokens=torch.tensor([t.n_policy_tokens for t in trajectories], dtype=torch.long),
        behaviour_logprobs=behaviour,
    )


def token_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    entropy: bool = False,
    entropy_grad: bool = True,
    mask: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of each next token (B, L-1) and, if asked, the entropy of each next-token distribution.

    ``temperature`` scales the logits first (``logits / T``): the trainer scores and trains the distribution
    the rollouts were sampled from, so on-policy ratios are 1 and the recorded behaviour log-probs compare.

    ``entropy_grad=False`` computes the entropy outside autograd (a metric only: no (B, L, V) graph is kept).

    With ``mask`` (B, L-1), logits are computed only from the first position any row trains on (long prompts
    of tool schemas cost the LM head and the softmax nothing); earlier positions read 0.
    """
    width = input_ids.shape[1] - 1
    start = 0
    if mask is not None and bool(mask.any()):
        start = int(mask.any(dim=0).nonzero()[0])
    keep = torch.arange(start, width, device=input_ids.device)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, logits_to_keep=keep).logits
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, input_ids[:, start + 1 :].unsqueeze(-1)).squeeze(-1)
    ent = None
    if entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            ent = -(logp_all.exp() * logp_all).sum(-1)
    if start:
        logp = torch.nn.functional.pad(logp, (start, 0))
        ent = torch.nn.functional.pad(ent, (start, 0)) if ent is not None else None
    return logp, ent
