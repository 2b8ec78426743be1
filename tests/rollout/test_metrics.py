"""Metrics against brute force and closed forms."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from resrl.metrics import avg_at_k, distinct_n, mean_pass_at_k, pass_at_k, summarize, token_entropy
from resrl.rollout import Trajectory


@given(st.integers(1, 9).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_equals_enumeration(nck):
    n, c, k = nck
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    brute = sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)
    assert math.isclose(pass_at_k(n, c, k), brute, abs_tol=1e-12)


def test_pass_at_k_rejects_bad_input():
    with pytest.raises(ValueError, match="c <= n"):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(3, 1, 4)


def _traj(group, reward, infra=None):
    return Trajectory(
        prompt_ids=[1],
        response_ids=[2],
        loss_mask=[1],
        logprobs=[-0.5],
        reward=reward,
        group_id=group,
        env_id="e",
        task_id=group,
        infra_error=infra,
    )


def test_summary_leaves_infra_errors_out():
    trajs = [_traj("a", 1.0), _traj("a", 0.0), _traj("a", 0.0, infra="down"), _traj("b", 0.0), _traj("b", 0.0)]
    s = summarize(trajs)
    assert s["infra_errors"] == 1 and s["episodes"] == 5
    assert s["success_rate"] == pytest.approx(1 / 4)
    assert s["avg@2"] == pytest.approx((0.5 + 0.0) / 2)
    assert s["pass@2"] == pytest.approx((1.0 + 0.0) / 2)
    assert s["pass@1"] == pytest.approx(s["avg@2"])
    assert avg_at_k({}) == 0.0 and mean_pass_at_k({"a": [True]}, 2) == 0.0


def test_token_entropy():
    uniform = torch.zeros(2, 3, 8)
    assert token_entropy(uniform).item() == pytest.approx(math.log(8), rel=1e-6)
    peaked = torch.full((1, 2, 8), -1e4)
    peaked[..., 0] = 0.0
    logits = torch.cat([uniform[:1], peaked[:, :1].expand(1, 3, 8)], dim=0)
    mask = torch.tensor([[0, 0, 0], [1, 1, 1]])
    assert token_entropy(logits, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert token_entropy(uniform, temperature=0.5).item() == pytest.approx(math.log(8), rel=1e-6)


def test_distinct_n():
    assert distinct_n([[1, 2, 3, 4]], 2) == 1.0
    assert distinct_n([[1, 1, 1, 1]], 1) == 0.25
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n([[1]], 2) == 0.0
    with pytest.raises(ValueError):
        distinct_n([[1]], 0)
