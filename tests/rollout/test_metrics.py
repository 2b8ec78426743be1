"""Metrics against brute force and closed forms."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from resrl.metrics import (
    avg_at_k,
    distinct_n,
    mean_pass_at_k,
    mean_pass_hat_k,
    pass_at_k,
    pass_hat_k,
    score,
    token_entropy,
)
from resrl.rollout import Trajectory


@given(st.integers(1, 9).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_equals_enumeration(nck):
    n, c, k = nck
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    brute = sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)
    assert math.isclose(pass_at_k(n, c, k), brute, abs_tol=1e-12)


@given(st.integers(1, 9).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_hat_k_equals_enumeration(nck):
    n, c, k = nck
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    brute = sum(all(outcomes[i] for i in s) for s in subsets) / len(subsets)
    assert math.isclose(pass_hat_k(n, c, k), brute, abs_tol=1e-12)


def test_pass_at_k_rejects_bad_input():
    for fn in (pass_at_k, pass_hat_k):
        with pytest.raises(ValueError, match="c <= n"):
            fn(3, 4, 1)
        with pytest.raises(ValueError, match="k <= n"):
            fn(3, 1, 4)


def _traj(group, reward, infra=None, env="e"):
    return Trajectory(
        prompt_ids=[1],
        response_ids=[2],
        loss_mask=[1],
        logprobs=[-0.5],
        reward=reward,
        group_id=group,
        env_id=env,
        task_id=group,
        infra_error=infra,
    )


def test_score_leaves_infra_errors_out_and_skips_short_groups_at_k():
    trajs = [
        *(_traj("a", r) for r in (1.0, 0.0, 0.0)),
        _traj("a", 0.0, infra="down"),  # a: 3 usable samples of 4
        *(_traj("b", r, env="f") for r in (1.0, 1.0, 0.0, 0.5)),
        *(_traj("c", 1.0, infra="down", env="f") for _ in range(4)),  # c: nothing usable, not a task
    ]
    s = score(trajs, k=4, threshold=1.0)
    assert s["episodes"] == 12 and s["infra_errors"] == 5
    assert s["tasks"] == 2 and s["tasks_short"] == 1 and s["k"] == 4
    assert s["success_rate"] == pytest.approx(3 / 7)
    assert s["reward_mean"] == pytest.approx(3.5 / 7)
    assert s["avg_at_k"] == pytest.approx((1 / 3 + 2 / 4) / 2)  # every task with a usable sample
    assert s["pass_at_k/1"] == pytest.approx(s["avg_at_k"])
    assert s["pass_at_k/3"] == pytest.approx((1.0 + 1.0) / 2)
    assert s["pass_hat_k/2"] == pytest.approx((0 / 3 + 1 / 6) / 2)  # C(1,2)/C(3,2) and C(2,2)/C(4,2)
    # at k = 4 only b has 4 usable samples: a is left out, not scored 0
    assert s["pass_at_k"] == s["pass_at_k/4"] == 1.0 and s["pass_hat_k"] == 0.0
    assert s["pass_curve"] == [s[f"pass_at_k/{j}"] for j in range(1, 5)]
    assert s["avg_at_k/e"] == pytest.approx(1 / 3) and s["avg_at_k/f"] == pytest.approx(2 / 4)
    assert score(trajs[:4], k=4)["pass_at_k"] is None  # no task with 4 usable samples: undefined, not 0
    assert score(trajs)["k"] == 4  # default k: the group size asked for, infra errors included
    assert avg_at_k({}) is None and mean_pass_at_k({"a": [True]}, 2) is None and mean_pass_hat_k({}, 1) is None


def test_token_entropy():
    uniform = torch.zeros(2, 3, 8)
    assert token_entropy(uniform) == pytest.approx(math.log(8), rel=1e-6)
    peaked = torch.full((1, 2, 8), -1e4)
    peaked[..., 0] = 0.0
    logits = torch.cat([uniform[:1], peaked[:, :1].expand(1, 3, 8)], dim=0)
    mask = torch.tensor([[0, 0, 0], [1, 1, 1]])
    assert token_entropy(logits, mask) == pytest.approx(0.0, abs=1e-6)
    assert token_entropy(uniform, temperature=0.5) == pytest.approx(math.log(8), rel=1e-6)


def test_distinct_n():
    assert distinct_n([[1, 2, 3, 4]], 2) == 1.0
    assert distinct_n([[1, 1, 1, 1]], 1) == 0.25
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n([[1]], 2) == 0.0
    with pytest.raises(ValueError):
        distinct_n([[1]], 0)
