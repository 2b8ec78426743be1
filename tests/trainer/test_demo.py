"""``resrl demo --quick``: the demo's whole pipeline, at smoke size, on the real fc environments."""

from __future__ import annotations

import json

from resrl.cli import main


def test_quick_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "warm start (SFT)" in printed and "after ResRL" in printed and "Avg@2" in printed
    result = json.loads((out / "demo_result.json").read_text())
    for side in ("before", "after"):
        assert set(result[side]) >= {"avg_at_k", "pass_at_k", "pass_curve"}
        assert result[side]["tasks"] == 8  # 2 test tasks x (3 single-turn envs + 1 multi-turn domain)
    assert (out / "warm" / "model" / "model.safetensors").is_file()
    for stage in ("stage1_single", "stage2_multi"):
        assert (out / stage / "reward.png").is_file()
        assert (out / stage / "metrics.jsonl").read_text().count('"kind": "train"') >= 1
