"""BFCL's summary layout: the leaderboard's aggregation rules and the ``resrl eval`` hook's output."""

from __future__ import annotations

import json

import pytest

from resrl_envs.bfcl.summary import SUMMARY_FILE, Score, bfcl_summary, eval_summary


def test_aggregation_follows_bfcl_rules() -> None:
    s = {
        "simple_python": Score(accuracy=0.9, count=400, complete=True),
        "simple_java": Score(accuracy=0.6, count=100, complete=True),
        "simple_javascript": Score(accuracy=0.3, count=50, complete=True),
        "multiple": Score(accuracy=0.8, count=200, complete=True),
        "parallel": Score(accuracy=0.7, count=200, complete=True),
        "parallel_multiple": Score(accuracy=0.5, count=200, complete=True),
        "live_simple": Score(accuracy=0.5, count=100, complete=True),
        "live_multiple": Score(accuracy=1.0, count=300, complete=True),
        "irrelevance": Score(accuracy=0.2, count=240, complete=True),
        "live_irrelevance": Score(accuracy=0.4, count=884, complete=True),
    }
    out = bfcl_summary(s)
    assert out["non_live_simple"].accuracy == pytest.approx(0.6)  # plain mean of the three languages
    assert out["non_live_ast"].accuracy == pytest.approx((0.6 + 0.8 + 0.7 + 0.5) / 4)
    assert out["non_live_ast"].complete
    assert out["live_ast"].accuracy == pytest.approx((0.5 * 100 + 1.0 * 300) / 400)  # weighted by entries
    assert not out["live_ast"].complete  # live_parallel* were not evaluated
    assert out["irrelevance"].accuracy == pytest.approx(0.3)
    assert out["multi_turn"].accuracy == 0.0 and not out["multi_turn"].complete
    non_live, live, irr = out["non_live_ast"].accuracy, out["live_ast"].accuracy, out["irrelevance"].accuracy
    assert out["overall_bfcl_weights"].accuracy == pytest.approx((10 * non_live + 10 * live + 10 * irr) / 100)
    assert out["overall_served"].accuracy == pytest.approx((10 * non_live + 10 * live + 10 * irr) / 60)


def test_eval_hook_prints_and_writes_json(tmp_path, capsys) -> None:
    result = {
        "envs": {
            "bfcl/simple_python": {"success_rate": 0.5, "tasks": 4},
            "bfcl/multi_turn_base": {"success_rate": 0.25, "tasks": 4},
            "fc/simple": {"success_rate": 1.0, "tasks": 4},
        }
    }
    eval_summary(result, tmp_path)
    data = json.loads((tmp_path / SUMMARY_FILE).read_text())
    assert set(data["categories"]) == {"simple_python", "multi_turn_base"}
    assert data["summary"]["multi_turn"]["accuracy"] == pytest.approx(0.25 / 4)
    assert "non_live_ast" in capsys.readouterr().out
    eval_summary({"envs": {"fc/simple": {"success_rate": 1.0, "tasks": 4}}}, tmp_path / "none")
    assert not (tmp_path / "none").exists()  # no bfcl env evaluated: no BFCL summary
