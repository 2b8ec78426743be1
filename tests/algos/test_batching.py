"""Group-correct batching: weights and gradients do not depend on micro-batch size or data-parallel ranks."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from resrl.algos import policy_loss, token_advantages
from tests.algos.tiny import (
    accumulate_grads,
    advantages,
    cfg_resrl,
    old_pass,
    tiny_batch,
    tiny_model,
    token_logprobs,
)

AGGS = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]


@pytest.mark.parametrize("agg", AGGS)
def test_same_weights_and_gradients_for_micro_batch_sizes(agg):
    model = tiny_model()
    batch = tiny_batch()
    cfg = cfg_resrl(agg=agg)
    old, adv, stats = advantages(model, batch, cfg)
    assert stats["resrl/groups_used"] == 3
    negative = batch["mask"] & (batch["rewards"] < cfg.success_threshold).unsqueeze(1)
    assert (adv[negative] > -1).any()  # ResRL weights are really in play
    n = batch["ids"].shape[0]
    tokens, seqs = batch["mask"].sum(), n
    grads = {m: accumulate_grads(model, batch, old, adv, cfg, m, tokens, seqs) for m in (1, 2, n)}
    for micro in (1, 2):
        for name, g in grads[n].items():
            assert torch.allclose(grads[micro][name], g, atol=1e-6, rtol=1e-4), (micro, name)
    assert any(g.abs().sum() > 0 for g in grads[n].values())


def test_micro_batch_weights_would_differ():
    """Why weights come from whole groups first: a half group alone gets other weights (the reference's flaw)."""
    model = tiny_model()
    batch = tiny_batch()
    cfg = cfg_resrl()
    _, adv, _ = advantages(model, batch, cfg)
    half = {k: v[:2] for k, v in batch.items()}
    _, hidden = old_pass(model, half["ids"], half["mask"])
    split, _ = token_advantages(cfg, half["rewards"], half["group_ids"], half["mask"], hidden)
    assert not torch.allclose(split, adv[:2])


def test_tool_tokens_get_zero_gradient_through_the_model():
    model = tiny_model()
    batch = tiny_batch()
    cfg = cfg_resrl()
    old, adv, _ = advantages(model, batch, cfg)
    lp = token_logprobs(model, batch["ids"])
    lp.retain_grad()
    loss, _ = policy_loss(lp, old, adv, batch["mask"], cfg)
    loss.backward()
    masked = ~batch["mask"]
    assert torch.equal(lp.grad[masked], torch.zeros_like(lp.grad[masked]))
    assert (lp.grad[batch["mask"]] != 0).any()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        model = tiny_model()
        full = tiny_batch()
        cfg = cfg_resrl()
        # Whole groups per rank: rank r takes groups r, r + world, ...
        rows = torch.nonzero(full["group_ids"] % world == rank).squeeze(1)
        batch = {k: v[rows] for k, v in full.items()}
        old, adv, _ = advantages(model, batch, cfg)
        counts = torch.tensor([batch["mask"].sum(), rows.numel()], dtype=torch.float64)
        dist.all_reduce(counts)
        grads = accumulate_grads(model, batch, old, adv, cfg, 2, counts[0], int(counts[1]))
        for g in grads.values():
            dist.all_reduce(g)
        payload = {
            "rows": rows.tolist(),
            "adv": adv.tolist(),
            "grads": {k: v.flatten().tolist() for k, v in grads.items()} if rank == 0 else {},
        }
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(payload))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process(tmp_path):
    model = tiny_model()
    batch = tiny_batch()
    cfg = cfg_resrl()
    old, adv, _ = advantages(model, batch, cfg)
    want = accumulate_grads(model, batch, old, adv, cfg, 4, batch["mask"].sum(), batch["ids"].shape[0])
    mp.spawn(_rank_main, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    got_adv = torch.full_like(adv, float("nan"))
    for rank in range(2):
        payload = json.loads((tmp_path / f"rank{rank}.json").read_text())
        got_adv[payload["rows"]] = torch.tensor(payload["adv"])
    assert torch.allclose(got_adv, adv, atol=1e-6)
    grads = json.loads((tmp_path / "rank0.json").read_text())["grads"]
    assert set(grads) == set(want)
    for name, g in want.items():
        assert torch.allclose(torch.tensor(grads[name]).view_as(g), g, atol=1e-6, rtol=1e-4), name
