"""``benchmarks/learning.py --quick``: the whole experiment at smoke size, and its bootstrap."""

from __future__ import annotations

import json

import numpy as np
import pytest

METHODS = ["GRPO", "Dr.GRPO", "NSR", "W-REINFORCE", "ResRL"]


def test_bootstrap_interval_brackets_the_mean_and_resamples_both_axes(learning):
    rng = np.random.default_rng(0)
    grid = np.array([[0.0, 1.0, 0.5, 0.25], [0.5, 1.0, 0.0, 0.75], [1.0, 1.0, 0.25, 0.5]])
    mean, lo, hi = learning.bootstrap_ci(grid, 2000, rng)
    assert mean == pytest.approx(grid.mean())
    assert lo < mean < hi
    # a grid with no spread has a zero-width interval; spread over seeds alone still gives a width
    assert learning.bootstrap_ci(np.full((3, 4), 0.3), 500, rng)[1:] == pytest.approx((0.3, 0.3))
    seeds_only = np.array([[0.0] * 4, [1.0] * 4, [0.5] * 4])
    _, lo, hi = learning.bootstrap_ci(seeds_only, 2000, rng)
    assert hi - lo > 0.3
    with pytest.raises(ValueError, match="seeds, tasks"):
        learning.bootstrap_ci(np.zeros(3), 10, rng)


def test_per_task_pass_curve_skips_tasks_short_of_samples(learning):
    record = {"method": "m", "seed": 0, "successes": {"a": [True, False, False, False], "b": [True, False]}}
    avg, curves = learning.per_task_scores(record, ["a", "b"], 4)
    assert avg == [0.25, 0.5]
    assert curves[0] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert curves[1][:2] == pytest.approx([0.5, 1.0]) and np.isnan(curves[1][2:]).all()


@pytest.mark.slow
def test_quick_grid_writes_table_plots_and_intervals(learning, tmp_path, capsys):
    out = tmp_path / "learning"
    assert learning.main(["--quick", "--threads", "1", "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    grid = result["grid"]
    assert set(result["summary"]) == {"warm start", *METHODS}
    for name in METHODS:
        s = result["summary"][name]
        assert s["runs"] == grid["seeds"]
        assert len(s["pass_curve"]) == grid["k"]
        for mean, lo, hi in [s["avg_at_k"], *s["pass_curve"]]:
            assert 0.0 <= lo <= mean <= hi <= 1.0
        means = [c[0] for c in s["pass_curve"]]
        assert means == sorted(means)  # Pass@j cannot fall as j grows
        assert s["pass_curve"][0][0] == pytest.approx(s["avg_at_k"][0])  # Pass@1 is the success rate
        for key in ("reward_mean", "token_entropy", "distinct_2"):
            assert len(s["curves"][key]) == grid["steps"]
        assert s["curves"]["token_entropy"][-1][0] > 0
    for name in METHODS:
        runs = sorted((out / "runs").glob(f"{name.replace('.', '')}_*.json"))
        assert len(runs) == grid["seeds"]
        record = json.loads(runs[0].read_text())
        tasks = record["successes"]
        assert all(len(s) == grid["k"] for s in tasks.values())
        assert len(tasks) == grid["heldout_tasks"] * len(result["envs"])
    for png in ("pass_at_k.png", "training.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "results.md").read_text()
    assert all(f"| {name} |" in table for name in METHODS)
    assert "ordering by avg@" in capsys.readouterr().out
    # a second run reuses every finished run instead of training again
    before = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}
    assert learning.main(["--quick", "--out", str(out)]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()} == before
